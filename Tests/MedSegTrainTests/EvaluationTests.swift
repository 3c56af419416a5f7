import Foundation
import XCTest
import MedSegData
@testable import MedSegTrain
import Torch
import TestSupport

final class EvaluationTests: XCTestCase {
    private func image(_ v: [Float], _ size: [Int]) -> MedicalImage {
        MedicalImage(size: size, voxels: v, pixelType: .uint8)
    }

    func testSummaryMatchesHandCountsAndNnUNetLayout() throws {
        let ref1 = image([0, 1, 1, 0, 2, 2, 0, 0, 0], [3, 3]), pred1 = image([0, 1, 0, 0, 2, 2, 2, 0, 0], [3, 3])
        let ref2 = image([1, 1, 0, 0, 0, 0, 0, 0, 0], [3, 3]), pred2 = image([1, 1, 0, 0, 0, 0, 0, 0, 0], [3, 3])
        let summary = try EvaluationSummary.evaluate(cases: [(pred1, ref1, "a.png", "a_ref.png"), (pred2, ref2, "b.png", "b_ref.png")],
                                                     classes: EvaluationClasses(labels: [1, 2]))
        let c1 = summary.metric_per_case[0].metrics
        XCTAssertEqual(c1["1"]?.Dice ?? -1, 2.0 / 3.0, accuracy: 1e-12)   // tp 1, fn 1
        XCTAssertEqual(c1["2"]?.Dice ?? -1, 0.8, accuracy: 1e-12)        // tp 2, fp 1
        XCTAssertEqual(c1["2"]?.FP, 1)
        XCTAssertNil(summary.metric_per_case[1].metrics["2"]?.Dice, "label absent from both is undefined")
        XCTAssertEqual(summary.mean["1"]?.Dice ?? -1, (2.0 / 3.0 + 1) / 2, accuracy: 1e-12)
        XCTAssertEqual(summary.mean["2"]?.Dice ?? -1, 0.8, accuracy: 1e-12, "undefined values are skipped in the mean")
        XCTAssertEqual(summary.foreground_mean.Dice ?? -1, ((2.0 / 3.0 + 1) / 2 + 0.8) / 2, accuracy: 1e-12)
        XCTAssertEqual(summary.metric_per_case[1].metrics["1"]?.HD95, 0)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("summary-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try summary.write(to: url)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        // nnU-Net's three keys, and the surface Dice's tolerance beside them.
        XCTAssertEqual(Set(json.keys), ["metric_per_case", "mean", "foreground_mean", "nsd_tolerance_mm"])
        XCTAssertEqual(json["nsd_tolerance_mm"] as? Double, EvaluationSummary.defaultNSDTolerance)
        let first = (json["metric_per_case"] as! [[String: Any]])[0]
        XCTAssertEqual(first["prediction_file"] as? String, "a.png")
        let m = (first["metrics"] as! [String: Any])["1"] as! [String: Any]
        for key in ["Dice", "IoU", "TP", "FP", "FN", "TN", "n_pred", "n_ref", "NSD"] { XCTAssertNotNil(m[key], key) }
        XCTAssertTrue(summary.table().contains("foreground mean"))
    }

    func testSizeMismatchIsAnError() {
        XCTAssertThrowsError(try EvaluationSummary.evaluate(cases: [(image([0, 1], [2, 1]), image([0, 1, 0], [3, 1]), "p.nii.gz", "r.nii.gz")],
                                                            classes: EvaluationClasses(labels: [1]))) { XCTAssertTrue("\($0)".contains("p.nii.gz")) }
    }

    /// A reference with 40 instance values against a binary prediction is flagged (naming the file);
    /// ordinary class maps and references with few values are not; `medseg evaluate` prints it.
    func testInstanceMapReferenceIsFlagged() throws {
        let instances = MedicalImage(size: [10, 8], voxels: (0..<80).map { Float($0 / 2) }, pixelType: .uint16)
        let binary = image((0..<80).map { $0 > 1 ? 1 : 0 }, [10, 8])
        let warning = try XCTUnwrap(EvaluationSummary.instanceMapWarning(prediction: binary, reference: instances, referenceFile: "ref/c1.png"))
        XCTAssertTrue(warning.contains("ref/c1.png") && warning.contains("instance map") && warning.contains("39 labels"), warning)
        XCTAssertNil(EvaluationSummary.instanceMapWarning(prediction: binary, reference: binary, referenceFile: "x"))
        let threeClasses = image((0..<80).map { Float($0 % 4) }, [10, 8])
        XCTAssertNil(EvaluationSummary.instanceMapWarning(prediction: binary, reference: threeClasses, referenceFile: "x"))

        guard Executables.medseg() != nil else { throw XCTSkip("medseg executable not built") }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("eval-inst-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: root) }
        for dir in ["pred", "ref"] { try FileManager.default.createDirectory(at: root.appendingPathComponent(dir), withIntermediateDirectories: true) }
        try ImageIO.write(binary, to: root.appendingPathComponent("pred/c1.png"))
        try ImageIO.write(instances, to: root.appendingPathComponent("ref/c1.png"))
        let (_, output) = try Executables.runMedSeg(["evaluate", "--pred", root.appendingPathComponent("pred").path,
                                                     "--ref", root.appendingPathComponent("ref").path, "--no-hd95"])
        XCTAssertTrue(output.contains("c1.png") && output.contains("looks like an instance map"), output)
    }

    func testAtomicWriteReplacesWholeFile() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID().uuidString)/f.txt")
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        try AtomicFile.write(Data("first version".utf8), to: url)
        try AtomicFile.write(Data("second".utf8), to: url)
        XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), "second")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path)
        XCTAssertEqual(leftovers, ["f.txt"], "no temporary files remain")
    }

    func testProgressPlotDrawsSeries() {
        let plot = ProgressPlot(series: [
            .init(name: "train loss", color: (0, 0, 255), points: [(0, 1.0), (1, 0.5), (2, 0.3)]),
            .init(name: "dice", color: (0, 160, 0), points: [(0, 0.2), (1, 0.6), (2, 0.9)], unitRange: true),
        ])
        let pixels = plot.render()
        XCTAssertEqual(pixels.count, plot.width * plot.height * 3)
        var blue = 0, green = 0
        for i in stride(from: 0, to: pixels.count, by: 3) {
            if pixels[i] == 0 && pixels[i + 1] == 0 && pixels[i + 2] == 255 { blue += 1 }
            if pixels[i] == 0 && pixels[i + 1] == 160 && pixels[i + 2] == 0 { green += 1 }
        }
        XCTAssertGreaterThan(blue, 500)
        XCTAssertGreaterThan(green, 500)
    }
}
