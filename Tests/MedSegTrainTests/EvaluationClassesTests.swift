import Foundation
import XCTest
import MedSegData
@testable import MedSegTrain

final class EvaluationClassesTests: XCTestCase {
    // Reference: 0 0 1 2 2 3 ; prediction: 1 0 1 1 2 2 (3 = ignore).
    private let reference: [Int32] = [0, 0, 1, 2, 2, 3]
    private let prediction: [Int32] = [1, 0, 1, 1, 2, 2]

    func testIgnoredVoxelsAreLeftOutOfEveryCount() {
        let counts = EvaluationClasses(labels: [1, 2], ignoreLabel: 3).counts(prediction: prediction, reference: reference)
        // Label 1: tp at 2, fp at 0 and 3, tn at 1 and 4; voxel 5 is ignored.
        XCTAssertEqual(counts[0], ConfusionCounts(tp: 1, fp: 2, fn: 0, tn: 2))
        // Label 2: tp at 4, fn at 3; the prediction of 2 at the ignored voxel does not count.
        XCTAssertEqual(counts[1], ConfusionCounts(tp: 1, fp: 0, fn: 1, tn: 3))
        let plain = EvaluationClasses(labels: [2]).counts(prediction: prediction, reference: reference)
        XCTAssertEqual(plain[0], ConfusionCounts(tp: 1, fp: 1, fn: 1, tn: 3))
    }

    func testRegionsCountTheirMembersAndAreKeyedAsNNUNetDoes() throws {
        let classes = EvaluationClasses(regions: [[1, 2], [2]])
        XCTAssertEqual(classes.keys, ["(1, 2)", "(2,)"])
        let counts = classes.counts(prediction: prediction, reference: reference)
        XCTAssertEqual(counts[0], ConfusionCounts(tp: 3, fp: 2, fn: 0, tn: 1))
        let image = { (v: [Int32]) in MedicalImage(size: [6, 1], voxels: v.map(Float.init)) }
        let summary = try EvaluationSummary.evaluate(cases: [(image(prediction), image(reference), "p", "r")], classes: classes, surfaceDistance: false)
        XCTAssertEqual(summary.mean["(1, 2)"]?.Dice ?? 0, 6.0 / 8.0, accuracy: 1e-12)
    }

    func testFromADatasetDescription() throws {
        let d = try DatasetDescription.decode(Data(#"{"channel_names": {"0": "T2"}, "numTraining": 1, "file_ending": ".nii.gz", "labels": {"background": 0, "b": 2, "a": 1, "ignore": 3}}"#.utf8))
        XCTAssertEqual(EvaluationClasses(d), EvaluationClasses(labels: [1, 2], ignoreLabel: 3))
    }
}
