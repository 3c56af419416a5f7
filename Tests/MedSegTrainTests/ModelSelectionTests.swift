import Foundation
import XCTest
import MedSegData
import Torch
@testable import MedSegTrain

/// find-best's choice on hand-made cross-validation results: two "configurations" whose
/// validation predictions are each wrong on half of the cases in ways their average corrects.
final class ModelSelectionTests: XCTestCase {
    private var temp: URL!
    private var dataset: RawDataset!
    private var splits: CrossValidationSplits!

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("sel-\(UUID().uuidString)")
        let root = temp.appendingPathComponent("data")
        try SyntheticCases(SyntheticCases.Options(dims: 2, size: [32, 32], classes: 1, seed: 5)).write(to: root, training: 10, test: 0)
        dataset = try RawDataset(root)
        splits = try CrossValidationSplits.loadOrCreate(root.appendingPathComponent("splits_final.json"),
                                                        identifiers: try dataset.trainingCases().map(\.identifier))
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// A 3x3 block of background at least one voxel away from the foreground (x-first indices).
    private func backgroundBlock(_ label: MedicalImage) throws -> [Int] {
        let (w, h) = (label.size[0], label.size[1])
        for y in 1..<(h - 4) {
            for x in 1..<(w - 4) {
                let around = (y - 1...y + 3).flatMap { yy in (x - 1...x + 3).map { yy * w + $0 } }
                if around.allSatisfy({ label.voxels[$0] == 0 }) { return (y...y + 2).flatMap { yy in (x...x + 2).map { yy * w + $0 } } }
            }
        }
        throw XCTSkip("no background block in this synthetic case")
    }

    /// An experiment folder whose fold validations hold the reference (or only its largest
    /// component), plus a false-positive block of probability 0.7 in the cases `wrong` picks;
    /// probabilities 0.9 / 0.1 elsewhere.
    private func experiment(_ name: String, largestOnly: Bool = false, wrong: (Int) -> Bool) throws -> URL {
        let exp = temp.appendingPathComponent(name)
        let cases = try dataset.trainingCases()
        let index = Dictionary(uniqueKeysWithValues: cases.enumerated().map { ($0.element.identifier, $0.offset) })
        for (f, fold) in splits.folds.enumerated() {
            let folder = exp.appendingPathComponent("fold_\(f)/validation")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            for id in fold.val {
                let files = cases[index[id]!]
                let reference = try ImageIO.read(try XCTUnwrap(files.label))
                let foreground = reference.voxels.map { $0 > 0 }
                let kept = largestOnly ? ConnectedComponents.largestComponentMask(foreground, size: reference.size) : foreground
                var p = kept.map { $0 ? Float(0.9) : Float(0.1) }
                if wrong(index[id]!) { for i in try backgroundBlock(reference) { p[i] = 0.7 } }
                let label = MedicalImage(size: reference.size, voxels: p.map { $0 > 0.5 ? 1 : 0 }, pixelType: .uint8, geometry: reference.geometry)
                try ImageIO.write(label, to: folder.appendingPathComponent(id + dataset.description.file_ending))
                try ProbabilityFile.write(try Tensor(p, shape: [1] + reference.size.reversed()), to: ProbabilityFile.url(for: id, in: folder))
            }
        }
        return exp
    }

    func testTheEnsembleThatCancelsBothErrorsWins() throws {
        let a = try experiment("a") { $0 < 5 }, b = try experiment("b") { $0 >= 5 }
        let outcome = try ModelSelection(dataset: dataset, folds: [0, 1, 2, 3, 4]).run(experiments: [a, b], root: temp)
        XCTAssertEqual(outcome.candidates.map(\.name), ["a", "b", "ensemble(a, b)"])
        XCTAssertEqual(outcome.candidates[0].summary.metric_per_case.count, 10, "every case once")
        XCTAssertLessThan(outcome.candidates[0].dice, 1)
        XCTAssertLessThan(outcome.candidates[1].dice, 1)
        XCTAssertEqual(outcome.best.name, "ensemble(a, b)")
        XCTAssertEqual(outcome.best.dice, 1, accuracy: 1e-12, "0.7 and 0.1 average below 0.5")
        XCTAssertEqual(outcome.postprocessing, Postprocessing(connectivity: .full), "nothing left to remove")
        let text = try String(contentsOf: temp.appendingPathComponent("inference_instructions.txt"), encoding: .utf8)
        XCTAssertTrue(text.contains("medseg ensemble --inputs OUTPUT_FOLDER_1 OUTPUT_FOLDER_2"), text)
        XCTAssertTrue(text.contains("medseg predict --run \(a.path) --folds 0 1 2 3 4"), text)
    }

    func testASpuriousBlobChoosesKeepingTheLargestComponent() throws {
        let a = try experiment("a", largestOnly: true) { _ in true }
        let outcome = try ModelSelection(dataset: dataset, folds: [0, 1, 2, 3, 4]).run(experiments: [a], root: temp)
        XCTAssertEqual(outcome.best.name, "a")
        // The predictions are one blob each plus the false block, so dropping the block helps.
        XCTAssertTrue(outcome.postprocessing.foreground_as_one, outcome.postprocessingReport.joined(separator: "\n"))
        XCTAssertEqual(try Postprocessing.load(temp.appendingPathComponent(Postprocessing.fileName)), outcome.postprocessing)
    }

    func testAFoldWithoutValidationIsAClearError() throws {
        let a = try experiment("a") { _ in false }
        try FileManager.default.removeItem(at: a.appendingPathComponent("fold_3"))
        XCTAssertThrowsError(try ModelSelection(dataset: dataset, folds: [0, 1, 2, 3, 4]).run(experiments: [a], root: temp)) {
            XCTAssertTrue("\($0)".contains("fold_3/validation") && "\($0)".contains("fold 3"), "\($0)")
        }
    }
}
