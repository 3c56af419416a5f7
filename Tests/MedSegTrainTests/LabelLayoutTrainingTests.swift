import Foundation
import XCTest
import MedSegData
import Torch
import TestSupport
@testable import MedSegTrain

/// Training, validation and inference on data sets with an ignore label (partial annotation) and
/// with regions, as their dataset.json declares them.
final class LabelLayoutTrainingTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("layout")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// Synthetic 2D data with two classes whose dataset.json "labels" object is `labelsJSON`;
    /// `edit` may change each label map.
    private func dataset(labelsJSON: String, extra: String = "", edit: (inout MedicalImage) -> Void = { _ in }) throws -> URL {
        let root = temp.appendingPathComponent("data")
        try SyntheticCases(.init(dims: 2, size: [48, 48], classes: 2, seed: 3)).write(to: root, training: 6, test: 0)
        for files in try RawDataset(root).trainingCases() {
            var label = try ImageIO.read(files.label!)
            edit(&label)
            try ImageIO.write(label, to: files.label!)
        }
        let url = root.appendingPathComponent("dataset.json")
        var d = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        d.removeValue(forKey: "labels")
        let rest = String(decoding: try JSONSerialization.data(withJSONObject: d), as: UTF8.self).dropFirst()
        try Data(("{\"labels\": \(labelsJSON), \(extra)" + rest).utf8).write(to: url)
        return root
    }

    private func config() throws -> TrainingConfig {
        try TrainingConfig().merging(yaml: """
        features: 4
        depth: 3
        patch_size: [32, 32]
        batch_size: 2
        epochs: 2
        iterations: 2
        lr: 0.01
        threads: 1
        workers: 0
        save_probabilities: true
        """, source: "test")
    }

    /// The ignore label's stripe: the first 8 rows of every label map.
    private static let ignoredRows = 8

    func testIgnoreLabelIsNeitherAnOutputNorCountedNorPredicted() throws {
        let data = try dataset(labelsJSON: #"{"background": 0, "class1": 1, "class2": 2, "ignore": 3}"#) { label in
            for i in 0..<(Self.ignoredRows * label.size[0]) { label.voxels[i] = 3 }
        }
        let run = temp.appendingPathComponent("run")
        let summary = try TrainingRun(config: try config(), datasetFolder: data, runFolder: run, options: .init(verbose: false)).run()
        XCTAssertNotNil(summary.finalValidationDice)

        let spec = try Checkpoint.load(RunFolder(run).checkpoint(.final)).state.model
        XCTAssertEqual(spec.outChannels, 3, "background and two classes; the ignore label is not an output")
        XCTAssertEqual(spec.labelTargets?.ignoreLabel, 3)

        let folder = RunFolder(run).validation
        let written = try JSONDecoder().decode(EvaluationSummary.self, from: Data(contentsOf: folder.appendingPathComponent("summary.json")))
        XCTAssertEqual(Set(written.mean.keys), ["1", "2"])
        for c in written.metric_per_case {
            let m = c.metrics["1"]!
            XCTAssertEqual(m.TP + m.FP + m.FN + m.TN, Double(48 * (48 - Self.ignoredRows)), "ignored voxels are left out of every count")
            let prediction = try ImageIO.read(folder.appendingPathComponent(c.prediction_file))
            XCTAssertFalse(prediction.voxels.contains(3), "\(c.prediction_file): the ignore label is never predicted")
        }
    }

    func testRegionsTrainOneSigmoidPerRegionAndPaintInClassOrder() throws {
        // Keys out of alphabetical order: the regions are paired with regions_class_order by file order.
        let data = try dataset(labelsJSON: #"{"background": 0, "whole": [1, 2], "core": [2]}"#, extra: #""regions_class_order": [1, 2], "#)
        let run = temp.appendingPathComponent("run")
        _ = try TrainingRun(config: try config(), datasetFolder: data, runFolder: run, options: .init(verbose: false)).run()

        let spec = try Checkpoint.load(RunFolder(run).checkpoint(.final)).state.model
        XCTAssertEqual(spec.outChannels, 2)
        XCTAssertEqual(spec.labelTargets?.regions, [[1, 2], [2]])
        XCTAssertEqual(spec.regionsClassOrder, [1, 2])

        let folder = RunFolder(run).validation
        let written = try JSONDecoder().decode(EvaluationSummary.self, from: Data(contentsOf: folder.appendingPathComponent("summary.json")))
        XCTAssertEqual(Set(written.mean.keys), ["(1, 2)", "(2,)"])
        let c = written.metric_per_case[0]
        let id = ImageIO.stem(of: URL(fileURLWithPath: c.prediction_file))
        let (p, order) = try ProbabilityFile.load(ProbabilityFile.url(for: id, in: folder))
        XCTAssertEqual(order, [1, 2])
        XCTAssertEqual(p.size(0), 2)
        // The label image is the probabilities painted: "core" (> 0.5) over "whole" (> 0.5).
        let probs = try p.floats(), n = p.numel / 2
        let expected = (0..<n).map { i -> Float in probs[n + i] > 0.5 ? 2 : probs[i] > 0.5 ? 1 : 0 }
        XCTAssertEqual(try ImageIO.read(folder.appendingPathComponent(c.prediction_file)).voxels, expected)
    }

    func testLossesThatCannotHonourTheLayoutAreRefused() throws {
        let regions = LabelTargets(regions: [[1, 2], [2]], usesRegions: true, regionsClassOrder: [1, 2], ignoreLabel: nil, labelValues: [0, 1, 2])
        XCTAssertThrowsError(try TrainingSetup.makeLoss(.ce, binary: false, targets: regions)) {
            XCTAssertTrue("\($0)".contains("'ce'") && "\($0)".contains("bce_dice"), "\($0)")
        }
        XCTAssertNoThrow(try TrainingSetup.makeLoss(.bce_dice, binary: false, targets: regions))
    }

    /// Through deep supervision (labels resized by nearest neighbour) the ignored voxels still
    /// get no gradient, and changing the logits there leaves the loss as it is.
    func testIgnoredVoxelsGetNoGradientUnderDeepSupervision() throws {
        let targets = LabelTargets(regions: [[1], [2]], usesRegions: false, regionsClassOrder: [1, 2], ignoreLabel: 3, labelValues: [0, 1, 2])
        let loss = try TrainingSetup.makeLoss(.auto, binary: false, targets: targets)
        var labels = [Float](repeating: 0, count: 64)
        for i in 0..<64 { labels[i] = i < 16 ? 3 : Float((i / 3) % 3) }
        let labelMap = try Tensor(labels, shape: [1, 1, 8, 8])
        func run(_ values: [Float]) throws -> (Double, [Float]) {
            let full = try Tensor(values, shape: [1, 3, 8, 8]).requiresGrad(true)
            let half = try F.avgPool2d(full, kernel: 2)
            let total = try DeepSupervisionLoss(loss, weights: [0.7, 0.3])([full, half], labelMap)
            try total.backward()
            return (try total.item(), try full.grad!.floats())
        }
        let logits = (0..<192).map { Float(sin(Double($0) * 0.37)) }
        let (base, grad) = try run(logits)
        for c in 0..<3 { for i in 0..<16 { XCTAssertEqual(grad[c * 64 + i], 0, "class \(c) voxel \(i)") } }
        var changed = logits
        for c in 0..<3 { for i in 0..<16 { changed[c * 64 + i] += 5 } }
        XCTAssertEqual(try run(changed).0, base, accuracy: 1e-6)
    }
}
