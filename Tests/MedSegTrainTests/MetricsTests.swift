import Foundation
import XCTest
import TestSupport
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

    /// Normalized surface Dice against MONAI's compute_surface_dice, on the anisotropic 2D and 3D
    /// cases of the HD95 fixture, at several tolerances.
    func testSurfaceDiceMatchesMONAI() throws {
        guard (try? Python.run("import monai.metrics, scipy", interpreter: "/usr/bin/python3")) != nil else {
            throw XCTSkip("/usr/bin/python3 has no MONAI (the set-up installs it)")
        }
        let data = try Data(contentsOf: fixtures.root.appendingPathComponent("surface_distance.json"))
        let cases = try JSONSerialization.jsonObject(with: data) as! [[String: Any]]
        let tolerances = [0.5, 1.0, 2.0, 3.5]
        let script = """
        import json, sys, numpy as np, torch
        from monai.metrics import compute_surface_dice
        out = []
        for c in json.load(open(sys.argv[1])):
            shape = c["size"][::-1]
            p = torch.tensor(np.array(c["prediction"]).reshape(shape) != 0, dtype=torch.float32)
            r = torch.tensor(np.array(c["reference"]).reshape(shape) != 0, dtype=torch.float32)
            onehot = lambda m: torch.stack([1 - m, m])[None]
            out.append([compute_surface_dice(onehot(p), onehot(r), [t], spacing=c["spacing"][::-1]).item() for t in json.loads(sys.argv[2])])
        print(json.dumps(out))
        """
        let output = try Python.run(script, [fixtures.root.appendingPathComponent("surface_distance.json").path, "\(tolerances)"],
                                    interpreter: "/usr/bin/python3")
        let expected = try JSONDecoder().decode([[Double]].self, from: Data(output.split(separator: "\n").last!.utf8))
        var distinct = Set<Double>()
        for (c, row) in zip(cases, expected) {
            let size = c["size"] as! [Int], spacing = c["spacing"] as! [Double]
            let pred = (c["prediction"] as! [Int]).map { $0 != 0 }, ref = (c["reference"] as! [Int]).map { $0 != 0 }
            for (tolerance, monai) in zip(tolerances, row) {
                let nsd = SurfaceDistance.surfaceDice(prediction: pred, reference: ref, size: size, spacing: spacing, tolerance: tolerance)
                XCTAssertEqual(nsd, monai, accuracy: 1e-6, "MONAI returns float32; size \(size) spacing \(spacing) tolerance \(tolerance)")
                distinct.insert((monai * 1000).rounded())
            }
        }
        XCTAssertGreaterThan(distinct.count, 8, "tolerances and cases that tell the values apart")
        let empty = [Bool](repeating: false, count: 9), full = [Bool](repeating: true, count: 9)
        XCTAssertTrue(SurfaceDistance.surfaceDice(prediction: empty, reference: empty, size: [3, 3], spacing: [1, 1], tolerance: 1).isNaN)
        XCTAssertEqual(SurfaceDistance.surfaceDice(prediction: full, reference: empty, size: [3, 3], spacing: [1, 1], tolerance: 1), 0)
    }
}
