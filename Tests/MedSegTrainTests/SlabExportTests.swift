import XCTest
import Torch
import MedSegModels
import TestSupport
@testable import MedSegData
@testable import MedSegTrain

/// `SlabExport` on a device (tensor ops: what a GPU runs) gives the labels and probabilities of the
/// CPU's Double arrays, and `Predictor.exportDevice` keeps the export on a GPU only within its budget.
final class SlabExportTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("slab-export")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: temp) }

    /// One export's outcome: the label map (x first, whole grid) and the probabilities file read back.
    private struct Outcome {
        let labels: [Float]
        let probabilities: [Float]
    }

    /// Feeds `logits` [K, slices, rest...] to an export in pieces of `piece` slices.
    private func export(_ logits: Tensor, classes: Int, sigmoid: Bool = false, regions: [Int]? = nil, stored: [Int], cropped: [Int],
                        box: CropBox?, orders: [Resampling.Order], device: Device?, piece: Int = 3) throws -> Outcome {
        let url = temp.appendingPathComponent("p-\(device.map { "\($0)" } ?? "arrays").safetensors")
        let export = try SlabExport(classes: classes, sigmoid: sigmoid, regionsClassOrder: regions, stored: stored, cropped: cropped, box: box,
                                    orders: orders, probabilities: url, probabilitiesDType: .float32, device: device)
        let slices = logits.size(1)
        for start in stride(from: 0, to: slices, by: piece) {
            try export.add(start: start, logits: logits.narrow(dim: 1, start: start, length: min(piece, slices - start)).to(device: device ?? .cpu))
        }
        let labels = try export.finish()
        defer { try? FileManager.default.removeItem(at: url) }
        return Outcome(labels: labels, probabilities: try ProbabilityFile.read(url).floats())
    }

    /// The cases: (what, classes, sigmoid, regions, stored, cropped, box, orders), sizes x first.
    private var cases: [(String, Int, Bool, [Int]?, [Int], [Int], CropBox?, [Resampling.Order])] {
        let box = CropBox(lower: [2, 1, 3], upper: [19, 15, 22], originalSize: [23, 18, 26])
        return [
            // A CT-like plan: separate z (nearest, slices copied), linear in plane, cropped.
            ("separate z", 5, false, nil, [13, 11, 9], [17, 14, 19], box, [.linear, .linear, .nearest]),
            // Linear along z too (two slices per output), downsampled in x.
            ("linear z", 4, false, nil, [21, 11, 9], [17, 14, 19], box, [.linear, .linear, .linear]),
            ("binary", 1, true, nil, [13, 11, 9], [17, 14, 19], nil, [.linear, .linear, .nearest]),
            ("regions", 3, true, [1, 2, 3], [13, 14, 25], [17, 14, 19], box, [.linear, .nearest, .linear]),
            // A 2D plan: the first axis is y, each slice a row.
            ("2D", 3, false, nil, [19, 9], [24, 13], CropBox(lower: [1, 2], upper: [25, 15], originalSize: [27, 16]), [.linear, .linear]),
        ]
    }

    /// Each case's random logits exported by the CPU's arrays and with tensor ops on `device`
    /// (in pieces of another size).
    private func forEachCase(on device: Device, _ body: (_ what: String, _ arrays: Outcome, _ tensors: Outcome) throws -> Void) throws {
        for (what, classes, sigmoid, regions, stored, cropped, box, orders) in cases {
            Torch.manualSeed(5)
            let logits = try Tensor.randn([classes] + stored.reversed()) * 3
            let arrays = try export(logits, classes: classes, sigmoid: sigmoid, regions: regions, stored: stored, cropped: cropped,
                                    box: box, orders: orders, device: nil)
            let tensors = try export(logits, classes: classes, sigmoid: sigmoid, regions: regions, stored: stored, cropped: cropped,
                                     box: box, orders: orders, device: device, piece: 2)
            XCTAssertEqual(tensors.labels.count, (box?.originalSize ?? cropped).reduce(1, *), what)
            XCTAssertGreaterThan(Set(arrays.labels).count, 1, "\(what): more than one label")
            try body(what, arrays, tensors)
        }
    }

    /// On the CPU, the tensor path takes the same taps in the same order in Double as the arrays:
    /// labels and probabilities equal bit for bit.
    func testTensorOpsExportAsTheDoubleArrays() throws {
        try forEachCase(on: .cpu) { what, arrays, tensors in
            XCTAssertEqual(tensors.labels, arrays.labels, what)
            XCTAssertEqual(tensors.probabilities, arrays.probabilities, what)
        }
    }

    /// On a GPU the resampled logits are the same Double sums; softmax and sigmoid are the GPU's own
    /// kernels, so a label may differ where classes are tied to the last bit: those are listed.
    func testGPUExportEqualsTheCPUExport() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        try forEachCase(on: .cuda(0)) { what, cpu, gpu in
            let differing = cpu.labels.indices.filter { cpu.labels[$0] != gpu.labels[$0] }
            XCTAssertLessThanOrEqual(differing.count * 1000, cpu.labels.count, "\(what): labels differ at \(differing.prefix(20))")
            let worst = zip(cpu.probabilities, gpu.probabilities).map { abs($0 - $1) }.max() ?? 0
            XCTAssertLessThan(worst, 1e-6, "\(what): probabilities")
        }
    }

    /// The export goes to the GPU only when the slab's sums and the export's slices fit the budget
    /// together; never from the CPU. Float32 sums take their weights beside them, float16 sums the
    /// image's total weights. (No GPU is touched: the budget is given.)
    func testExportStaysOnTheGPUOnlyWithinTheBudget() throws {
        let network = ModelFactory.Spec(name: "plainunet", dims: 3, inChannels: 1, outChannels: 9, features: 4, depth: 2)
        let spec = ModelSpecRecord(network: network, patchSize: [8, 16, 16], normalization: "zscore", intensityStatistics: nil,
                                   labels: Array(0..<9), binary: false, configuration: nil, labelTargets: nil)
        let model = try ModelFactory.make(network)
        let spatial = [40, 64, 64]
        let export = SlabExport.deviceBytes(classes: 9, stored: [64, 64, 40], cropped: [80, 80, 50])
        XCTAssertEqual(export, 64 * 9 * 80 * 80)
        let sums: [DType: Int] = [.float32: 4 * 10 * 8 * 64 * 64,               // 9 classes and the weights, 8 slices deep
                                  .float16: 2 * 9 * 8 * 64 * 64 + 4 * 40 * 64 * 64]  // 9 classes; the whole image's total weights
        for (dtype, bytes) in sums {
            for (budget, expected) in [(bytes + export, Device.cuda(0)), (bytes + export - 1, nil), (bytes, nil)] {
                let predictor = Predictor(model: model, spec: spec, device: .cuda(0), window: WindowSettings(logitsBudget: budget))
                XCTAssertEqual(predictor.streamSums(spatial: spatial, chosen: dtype).bytes, bytes, "\(dtype)")
                XCTAssertEqual(predictor.exportDevice(spatial: spatial, chosen: dtype, exportBytes: export), expected, "\(dtype), budget \(budget)")
            }
        }
        let cpu = Predictor(model: model, spec: spec)
        XCTAssertNil(cpu.exportDevice(spatial: spatial, chosen: nil, exportBytes: 0), "a CPU predictor exports on the CPU")
        XCTAssertEqual(cpu.streamSums(spatial: [40, 448, 448], chosen: nil).dtype, .float32, "auto: 9 classes over a 448 x 448 plane stay float32")
        // An image thinner than the patch gets a window as thin as it (what the network divides).
        XCTAssertEqual(cpu.streamSums(spatial: [4, 64, 64], chosen: .float16).bytes, 2 * 9 * 4 * 64 * 64 + 4 * 4 * 64 * 64)
    }
}
