import Foundation
import XCTest
import MedSegData
import Torch
@testable import MedSegTrain

final class ProbabilityEnsembleTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("ens-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// A prediction folder: for each case a label image (3 x 2 voxels, spacing 0.5 x 2) and probabilities.
    private func folder(_ name: String, _ probabilities: [String: [Float]]) throws -> URL {
        let url = temp.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (id, p) in probabilities {
            let geometry = ImageGeometry(spacing: [0.5, 2], origin: [3, 4])
            try ImageIO.write(MedicalImage(size: [3, 2], voxels: Array(repeating: 0, count: 6), pixelType: .uint8, geometry: geometry),
                              to: url.appendingPathComponent(id + ".nii.gz"))
            try ProbabilityFile.write(try Tensor(p, shape: [3, 2, 3]), to: ProbabilityFile.url(for: id, in: url))
        }
        return url
    }

    func testAveragedProbabilitiesDecideTheLabels() throws {
        // Per voxel (x fastest) three class probabilities; the two folders disagree, their mean decides.
        let a: [Float] = [0.6, 0.1, 0.3, 0.2, 0.5, 0.0,   0.3, 0.8, 0.3, 0.7, 0.1, 0.0,   0.1, 0.1, 0.4, 0.1, 0.4, 1.0]
        let b: [Float] = [0.0, 0.1, 0.5, 0.2, 0.1, 0.0,   0.9, 0.1, 0.2, 0.1, 0.2, 0.4,   0.1, 0.8, 0.3, 0.7, 0.7, 0.6]
        // Means: class 0 [.3 .1 .4 .2 .3 0], class 1 [.6 .45 .25 .4 .15 .2], class 2 [.1 .45 .35 .4 .55 .8];
        // argmax with ties to the lower class: [1 1 0 1 2 2].
        let out = temp.appendingPathComponent("out")
        let ids = try ProbabilityEnsemble.run(folders: [try folder("a", ["c1": a]), try folder("b", ["c1": b])], out: out, saveProbabilities: true)
        XCTAssertEqual(ids, ["c1"])
        let label = try ImageIO.read(out.appendingPathComponent("c1.nii.gz"))
        XCTAssertEqual(label.voxels, [1, 1, 0, 1, 2, 2])
        XCTAssertEqual(label.geometry.spacing, [0.5, 2])
        XCTAssertEqual(label.geometry.origin, [3, 4])
        let mean = try ProbabilityFile.read(ProbabilityFile.url(for: "c1", in: out))
        XCTAssertTrue(try mean.allClose(Tensor(zip(a, b).map { ($0 + $1) / 2 }, shape: [3, 2, 3]), rtol: 1e-6, atol: 1e-7))
    }

    func testMissingCaseNamesTheFolderAndTheCase() throws {
        let p = [Float](repeating: 1.0 / 3, count: 18)
        let a = try folder("a", ["c1": p, "c2": p]), b = try folder("b", ["c1": p])
        XCTAssertThrowsError(try ProbabilityEnsemble.run(folders: [a, b], out: temp.appendingPathComponent("out"))) {
            let text = "\($0)"
            XCTAssertTrue(text.contains(b.path) && text.contains("c2"), text)
        }
        let empty = temp.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        XCTAssertThrowsError(try ProbabilityEnsemble.run(folders: [empty, a], out: temp.appendingPathComponent("out2"))) {
            XCTAssertTrue("\($0)".contains("--save-probabilities"), "\($0)")
        }
    }
}
