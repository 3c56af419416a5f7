import XCTest
import Torch
import MedSegModels
import TestSupport
@testable import MedSegData
@testable import MedSegTrain

/// Prediction slab by slab (`SlidingWindow.stream`, `SlabExport`, `CaseInference.predict`) gives
/// the values of the whole-volume path (`SlidingWindow.callAsFunction`,
/// `CaseInference.probabilities(of:)`) on anisotropic multi-class cases that are cropped and
/// resampled both ways.
final class StreamedPredictionTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("streamed")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: temp) }

    private let conv: Conv3d = {
        Torch.manualSeed(11)
        return try! Conv3d(2, 4, kernelSize: 3, padding: 1)
    }()

    /// The slab-wise window sum equals the whole image's, bit for bit: images smaller and larger than
    /// the patch along each axis, overlapping and touching windows, batches crossing slabs.
    func testStreamedWindowsEqualTheWholeImage() throws {
        for (size, patch, step, batch) in [([21, 14, 30], [8, 16, 12], 0.5, 1), ([5, 20, 9], [8, 8, 8], 1.0, 3), ([17, 9, 9], [6, 9, 9], 0.33, 2)] {
            let image = try Tensor.randn([2] + size)
            var window = SlidingWindow(patchSize: patch, stepFraction: step, mirrorAxes: [0, 2], batchSize: batch)
            window.gaussian = true
            let whole = try window(image) { try self.conv($0) }
            var pieces: [(Int, Tensor)] = []
            // A tiny emit size: one slice per piece, so the pieces' joins are exercised.
            try window.stream(image, networks: [{ try window.predictMirrored($0) { try self.conv($0) } }], emitBytes: 1) { pieces.append(($0, $1)) }
            XCTAssertEqual(pieces.map(\.0), Array(0..<size[0]), "each slice once, in order (\(size))")
            let joined = try Tensor.cat(pieces.map(\.1), dim: 1)
            XCTAssertEqual(joined.shape, whole.shape)
            let worst = try (joined - whole).abs().max().item()
            XCTAssertTrue(try joined.equal(whole), "size \(size), patch \(patch): largest difference \(worst)")
        }
    }

    /// float16 sums hold the logits to half precision everywhere, the image's corners too, where
    /// only a window's corner covers a voxel (Gaussian weight 4e-11: weight times logit is below
    /// float16's range, and such sums had rounded to zero).
    func testHalfPrecisionSumsHoldTheImagesCorners() throws {
        let image = try Tensor.randn([2, 20, 24, 40])
        var window = SlidingWindow(patchSize: [8, 16, 16], stepFraction: 0.5)
        let network = { (x: Tensor) throws -> Tensor in try self.conv(x) * 100 + 50 }
        var results: [Tensor] = []
        for dtype in [DType.float32, .float16] {
            window.accumulationDType = dtype
            var pieces: [Tensor] = []
            let member = window
            try window.stream(image, networks: [{ try member.predictMirrored($0, network: network) }]) { pieces.append($1) }
            results.append(try Tensor.cat(pieces, dim: 1))
        }
        let (full, half) = (results[0], results[1])
        XCTAssertEqual(full.dtype, .float32)
        XCTAssertTrue(try full.equal(window.callAsFunction(image, network: network)), "float32 sums are the whole image's")
        // Each voxel adds at most 8 windows' shares, each rounded to 11 bits.
        let worst = try (full - half).abs().max().item(), scale = try full.abs().max().item()
        XCTAssertLessThan(worst, 8 * scale / 2048, "float16 sums differ by \(worst) where logits reach \(scale)")
        for corner in [[0, 0, 0], [19, 23, 39], [0, 23, 0]] {
            let a = try full[0][corner[0]][corner[1]][corner[2]].item(), b = try half[0][corner[0]][corner[1]][corner[2]].item()
            XCTAssertEqual(b, a, accuracy: abs(a) / 1024, "corner \(corner)")
        }
    }

    // MARK: - Whole cases

    private func fingerprint() -> DatasetFingerprint {
        let intensity = DatasetFingerprint.IntensityProperties(mean: 0, median: 0, std: 1, min: -3, max: 3, percentile99_5: 2.5, percentile00_5: -2.5)
        return DatasetFingerprint(caseIdentifiers: ["a"], spacings: [[3, 0.8, 0.8]], shapesAfterCrop: [[10, 20, 20]],
                                  foregroundIntensityPropertiesPerChannel: ["0": intensity], medianRelativeSizeAfterCropping: 1,
                                  medianSpacing: [3, 0.8, 0.8], medianShape: [10, 20, 20], samplesPerCase: 100)
    }

    private func predictor(classes: Int, binary: Bool = false, seed: UInt64 = 3, patch: [Int] = [8, 16, 16]) throws -> Predictor {
        Torch.manualSeed(seed)
        let network = ModelFactory.Spec(name: "plainunet", dims: 3, inChannels: 1, outChannels: classes, features: 4, depth: 2)
        let spec = ModelSpecRecord(network: network, patchSize: patch, normalization: "zscore", intensityStatistics: nil,
                                   labels: Array(0..<max(2, classes)), binary: binary, configuration: nil, labelTargets: nil)
        var predictor = Predictor(model: try ModelFactory.make(network), spec: spec, mirror: true)
        predictor.mirrorAxes = [1, 2]
        return predictor
    }

    /// A case of `size` (x first) at `spacing` with a zero border (so it is cropped), written as NIfTI.
    private func writeCase(size: [Int], spacing: [Double]) throws -> CaseFiles {
        var generator = SplitMix64(seed: 7)
        var voxels = [Float](repeating: 0, count: size.reduce(1, *))
        for z in 0..<size[2] {
            for y in 2..<(size[1] - 1) {
                for x in 1..<(size[0] - 3) {
                    let blob = Float((x / 6 + y / 5 + z / 3) % 4) * 40
                    voxels[(z * size[1] + y) * size[0] + x] = 20 + blob + Float(generator.next() % 1000) / 50
                }
            }
        }
        let url = temp.appendingPathComponent("case_0000.nii.gz")
        try ImageIO.write(MedicalImage(size: size, voxels: voxels, geometry: ImageGeometry(spacing: spacing)), to: url)
        return CaseFiles(identifier: "case", images: [url], label: nil)
    }

    /// Streams `inference` over `files` and checks the labels and the written probabilities against
    /// the whole-volume path. The logits are the same bit for bit (`exact`), but libtorch's softmax
    /// and sigmoid take a few values of each call (the tail past its vector width) through a scalar
    /// exp, and a slice's tail is not the volume's: those differ in the last bit, and are listed.
    /// Where not `exact` (folds added in another order), values agree within `tolerance`.
    private func assertStreamedEqualsWhole(_ inference: CaseInference, _ files: CaseFiles, exact: Bool = true, tolerance: Float = 1e-5,
                                           _ what: String, line: UInt = #line) throws {
        let (whole, size, geometry) = try inference.probabilities(of: files)
        let wholeLabels = try inference.predictors[0].labels(fromProbabilities: whole).to(dtype: .float32).floats()
        let url = temp.appendingPathComponent("p.safetensors")
        let (label, times) = try inference.predict(files, probabilities: url)
        XCTAssertEqual(label.size, size, what, line: line)
        XCTAssertEqual(label.geometry, geometry, what, line: line)
        XCTAssertGreaterThan(times.network, 0, line: line)
        let streamed = try ProbabilityFile.read(url)
        XCTAssertEqual(streamed.shape, whole.shape, what, line: line)
        let a = try streamed.floats(), b = try whole.floats()
        let differing = a.indices.filter { a[$0] != b[$0] }
        let limit = exact ? 2 * Float.ulpOfOne : tolerance
        let far = differing.filter { abs(a[$0] - b[$0]) > limit * max(1, abs(b[$0])) }
        XCTAssertTrue(far.isEmpty, "\(what): \(far.count) of \(a.count) probabilities differ by more than \(limit): \(far.prefix(5).map { "\($0): \(a[$0]) vs \(b[$0])" })", line: line)
        if exact {
            XCTAssertLessThan(differing.count * 100, a.count, "\(what): last-bit differences at \(differing.count) of \(a.count): \(differing.prefix(20))", line: line)
        }
        let labelDifferences = wholeLabels.indices.filter { wholeLabels[$0] != label.voxels[$0] }
        XCTAssertTrue(exact ? labelDifferences.isEmpty : labelDifferences.count * 1000 < wholeLabels.count,
                      "\(what): labels differ at \(labelDifferences.count) voxels: \(labelDifferences.prefix(10))", line: line)
        XCTAssertGreaterThan(Set(label.voxels).count, 1, "\(what): the network paints more than one label", line: line)
        try FileManager.default.removeItem(at: url)
    }

    /// Slices 1.25 mm to the plan's 3 mm (a separate z, nearest), 0.7 to 0.8 mm in plane (linear),
    /// cropped, 5 classes: one network, then two folds.
    func testAnisotropicCaseStreamsAsTheWholeVolume() throws {
        let files = try writeCase(size: [26, 23, 29], spacing: [0.7, 0.7, 1.25])
        let preprocessor = Preprocessor(targetSpacing: [3, 0.8, 0.8], normalization: .zscore, fingerprint: fingerprint())
        let one = try predictor(classes: 5)
        try assertStreamedEqualsWhole(try CaseInference(predictors: [one], preprocessor: preprocessor), files, "one network")
        let folds = try CaseInference(predictors: [one, try predictor(classes: 5, seed: 4)], preprocessor: preprocessor)
        // Two folds add up in one buffer here, each whole there: the same sums in another order.
        try assertStreamedEqualsWhole(folds, files, exact: false, "two folds")
    }

    /// Isotropic enough for no separate axis: z resampled linearly too (2 taps per slice), and a
    /// binary (sigmoid) model; then float16 probabilities and accumulation.
    func testLinearSlicesAndBinaryModelsStreamAsTheWholeVolume() throws {
        let files = try writeCase(size: [24, 21, 19], spacing: [0.7, 0.7, 1.25])
        let preprocessor = Preprocessor(targetSpacing: [1.6, 0.9, 0.9], normalization: .zscore, fingerprint: fingerprint())
        XCTAssertNil(Resampling.separateAxis(spacing: [0.7, 0.7, 1.25], target: [0.9, 0.9, 1.6]))
        let multi = try CaseInference(predictors: [try predictor(classes: 3)], preprocessor: preprocessor)
        try assertStreamedEqualsWhole(multi, files, "linear z")
        let binary = try CaseInference(predictors: [try predictor(classes: 1, binary: true)], preprocessor: preprocessor)
        try assertStreamedEqualsWhole(binary, files, "binary")

        // float16 files round each probability to half precision; float16 sums round the logits
        // (this untrained network's reach the hundreds, 0.25 apart in half precision), so the
        // labels agree where the classes are not that close.
        let full = temp.appendingPathComponent("full.safetensors"), half = temp.appendingPathComponent("half.safetensors")
        let (reference, _) = try multi.predict(files, probabilities: full)
        _ = try multi.predict(files, probabilities: half, probabilitiesDType: .float16)
        XCTAssertEqual(try Safetensors.load(half).tensors["probabilities"]!.dtype, .float16)
        let worst = zip(try ProbabilityFile.read(half).floats(), try ProbabilityFile.read(full).floats()).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(worst, 1.0 / 2048, "float16 files hold each probability to half precision")
        let (label, _) = try multi.predict(files, accumulationDType: .float16)
        let agreeing = zip(label.voxels, reference.voxels).filter { $0 == $1 }.count
        XCTAssertGreaterThan(Double(agreeing) / Double(label.voxels.count), 0.98, "float16 sums give the same labels nearly everywhere")
        XCTAssertEqual(label.pixelType, .uint8)
    }

    /// `--accumulate auto`: float32 sums while the slab buffer stays within 1 GiB, float16 beyond
    /// (101 classes over a 40-slice slab of a 448 x 448 plane: 3.2 GB in float32); a choice is kept.
    func testAutomaticAccumulationHalvesOnlyLargeSlabs() {
        let slab = 40 * 448 * 448
        XCTAssertEqual(Predictor.accumulationDType(nil, classes: 101, voxels: slab), .float16)
        XCTAssertEqual(Predictor.accumulationDType(nil, classes: 4, voxels: slab), .float32)
        XCTAssertEqual(Predictor.accumulationDType(.float32, classes: 101, voxels: slab), .float32)
        XCTAssertEqual(Predictor.accumulationDType(.float16, classes: 4, voxels: slab), .float16)
        XCTAssertEqual(Predictor.accumulationDType(nil, classes: 1, voxels: Predictor.float32SlabLimit / 4), .float32)
        XCTAssertEqual(Predictor.accumulationDType(nil, classes: 1, voxels: Predictor.float32SlabLimit / 4 + 1), .float16)
    }

    /// On a GPU (the device check) a whole case's sliding window and export run there, within the
    /// default budget, and give the CPU's labels but where classes tie to the last bit.
    func testGPUPredictionExportsOnTheDevice() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        let files = try writeCase(size: [26, 23, 29], spacing: [0.7, 0.7, 1.25])
        let preprocessor = Preprocessor(targetSpacing: [3, 0.8, 0.8], normalization: .zscore, fingerprint: fingerprint())
        var predictor = try predictor(classes: 5)
        let cpu = try CaseInference(predictors: [predictor], preprocessor: preprocessor).predict(files)
        try predictor.model.to(device: .cuda(0))
        predictor.device = .cuda(0)
        let gpu = try CaseInference(predictors: [predictor], preprocessor: preprocessor).predict(files)
        XCTAssertNil(cpu.times.exportDevice)
        XCTAssertEqual(gpu.times.exportDevice, .cuda(0), "a small case's export fits the default budget")
        let differing = cpu.label.voxels.indices.filter { cpu.label.voxels[$0] != gpu.label.voxels[$0] }
        XCTAssertLessThanOrEqual(differing.count * 1000, cpu.label.voxels.count, "labels differ at \(differing.prefix(20))")
        XCTAssertGreaterThan(Set(gpu.label.voxels).count, 1)
    }

    /// Without a plan (a network trained on raw images): no resampling, no crop, slab by slab all the same.
    func testRawImageModelStreamsAsTheWholeVolume() throws {
        let files = try writeCase(size: [20, 18, 13], spacing: [1, 1, 1])
        try assertStreamedEqualsWhole(try CaseInference(predictors: [try predictor(classes: 4, patch: [8, 8, 8])], preprocessor: nil), files, "raw")
    }

    /// A plan that resamples logits with cubic splines is exported from the whole volume's logits.
    func testCubicLogitsFallBackToTheWholeVolume() throws {
        let files = try writeCase(size: [24, 21, 19], spacing: [0.7, 0.7, 1.25])
        var preprocessor = Preprocessor(targetSpacing: [1.6, 0.9, 0.9], normalization: .zscore, fingerprint: fingerprint())
        preprocessor.orders.logits = .cubic
        try assertStreamedEqualsWhole(try CaseInference(predictors: [try predictor(classes: 3)], preprocessor: preprocessor), files, "cubic")
    }

    /// Probabilities written plane by plane in any order read back as one tensor; planes never
    /// written are zeros; an uncommitted writer leaves no file behind.
    func testProbabilityWriterWritesPlanesInAnyOrder() throws {
        let url = temp.appendingPathComponent("planes.safetensors")
        let writer = try ProbabilityFile.Writer(url, shape: [2, 3, 2, 2], dtype: .float32, regionsClassOrder: [1, 2])
        try writer.write(channel: 1, slice: 2, plane: [0.1, 0.2, 0.3, 0.4])
        try writer.write(channel: 0, slice: 0, plane: [0.5, 0.6, 0.7, 0.8])
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "nothing at the final name before commit")
        try writer.commit()
        let (p, order) = try ProbabilityFile.load(url)
        XCTAssertEqual(order, [1, 2])
        XCTAssertEqual(p.shape, [2, 3, 2, 2])
        XCTAssertEqual(try p.floats(), [0.5, 0.6, 0.7, 0.8] + [Float](repeating: 0, count: 16) + [0.1, 0.2, 0.3, 0.4])

        let dropped = temp.appendingPathComponent("dropped.safetensors")
        do {
            let abandoned = try ProbabilityFile.Writer(dropped, shape: [1, 1, 1])
            try abandoned.write(channel: 0, slice: 0, plane: [1])
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp.path).filter { $0.contains("dropped") }, [])
    }
}
