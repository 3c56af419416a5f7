import Foundation
import XCTest
@testable import MedSegTrain

final class MetricsTests: XCTestCase {
    func testConfusionCountsAndOverlapMetrics() {
        let pred: [Int32] = [0, 1, 1, 0, 2, 1]
        let ref: [Int32] = [0, 1, 0, 1, 2, 1]
        let c = ConfusionCounts(prediction: pred, reference: ref, label: 1)
        XCTAssertEqual(c, ConfusionCounts(tp: 2, fp: 1, fn: 1, tn: 2))
        XCTAssertEqual(c.dice, 4.0 / 6.0, accuracy: 1e-12)
        XCTAssertEqual(c.iou, 2.0 / 4.0, accuracy: 1e-12)
        XCTAssertEqual(c.accuracy, 4.0 / 6.0, accuracy: 1e-12)
        XCTAssertEqual(c.sensitivity, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(c.specificity, 2.0 / 3.0, accuracy: 1e-12)
        XCTAssertEqual(c.nPred, 3)
        XCTAssertEqual(c.nRef, 3)
        XCTAssertTrue(ConfusionCounts(prediction: pred, reference: ref, label: 5).dice.isNaN, "absent from both: NaN")
    }

    func testHD95MatchesScipyReference() throws {
        let data = try Data(contentsOf: fixtures.root.appendingPathComponent("surface_distance.json"))
        let cases = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        XCTAssertEqual(cases.count, 6)
        for c in cases {
            let size = c["size"] as! [Int], spacing = c["spacing"] as! [Double]
            let pred = (c["prediction"] as! [Int]).map { $0 != 0 }, ref = (c["reference"] as! [Int]).map { $0 != 0 }
            let hd = SurfaceDistance.hd95(prediction: pred, reference: ref, size: size, spacing: spacing)
            XCTAssertEqual(hd, c["hd95"] as! Double, accuracy: 1e-6, "size \(size) spacing \(spacing)")
            let counts = ConfusionCounts(prediction: pred.map { $0 ? 1 : 0 }, reference: ref.map { $0 ? 1 : 0 }, label: 1)
            XCTAssertEqual(counts.dice, c["dice"] as! Double, accuracy: 1e-12)
        }
    }

    func testHD95EdgeCases() {
        let mask = [Bool](repeating: true, count: 9)
        XCTAssertEqual(SurfaceDistance.hd95(prediction: mask, reference: mask, size: [3, 3], spacing: [1, 1]), 0)
        XCTAssertTrue(SurfaceDistance.hd95(prediction: mask, reference: .init(repeating: false, count: 9), size: [3, 3], spacing: [1, 1]).isNaN)
    }
}
