import Foundation
import XCTest
import MedSegData
import Torch
import TestSupport
@testable import MedSegTrain

final class ProbabilityEnsembleTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("ens")
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
            XCTAssertTrue("\($0)".contains("`save_probabilities: true`"), "\($0)")
        }
    }

    /// nnU-Net's `CASE.npz` (numpy's savez_compressed, here float16 and float32) ensembles with
    /// MedSeg's files, case by case; a region-based folder paints with its dataset.json's order.
    func testNNUNetsNpzProbabilitiesEnsembleWithMedSegs() throws {
        let a: [Float] = [0.6, 0.1, 0.3, 0.2, 0.5, 0.0,   0.3, 0.8, 0.3, 0.7, 0.1, 0.0,   0.1, 0.1, 0.4, 0.1, 0.4, 1.0]
        let b: [Float] = [0.0, 0.1, 0.5, 0.2, 0.1, 0.0,   0.9, 0.1, 0.2, 0.1, 0.2, 0.4,   0.1, 0.8, 0.3, 0.7, 0.7, 0.6]
        let medseg = try folder("medseg", ["c1": a, "c2": b])
        let nnunet = temp.appendingPathComponent("nnunet")
        try FileManager.default.createDirectory(at: nnunet, withIntermediateDirectories: true)
        for id in ["c1", "c2"] {
            try ImageIO.write(MedicalImage(size: [3, 2], voxels: Array(repeating: 0, count: 6), pixelType: .uint8), to: nnunet.appendingPathComponent(id + ".nii.gz"))
        }
        let stored = try Python.run("""
        import sys, numpy as np
        folder, values = sys.argv[1], np.array([float(v) for v in sys.argv[2].split(",")])
        np.savez_compressed(folder + "/c1.npz", probabilities=values.reshape(3, 2, 3).astype(np.float16))
        np.savez_compressed(folder + "/c2.npz", probabilities=values.reshape(3, 2, 3).astype(np.float32))
        print(",".join(repr(float(v)) for v in values.astype(np.float16)))
        """, [nnunet.path, b.map { String($0) }.joined(separator: ",")])
        let half = stored.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map { Float(String($0))! }
        let out = temp.appendingPathComponent("out")
        XCTAssertEqual(try ProbabilityEnsemble.run(folders: [medseg, nnunet], out: out, saveProbabilities: true), ["c1", "c2"])
        let c1 = try ProbabilityFile.read(ProbabilityFile.url(for: "c1", in: out)).floats()
        XCTAssertEqual(c1, zip(a, half).map { ($0 + $1) / 2 }, "float16 values as numpy stored them")
        // The argmax of that mean (float16 decides voxel 3, a tie in exact arithmetic).
        let argmax = (0..<6).map { v in Float([0, 1, 2].max { c1[$0 * 6 + v] < c1[$1 * 6 + v] }!) }
        XCTAssertEqual(try ImageIO.read(out.appendingPathComponent("c1.nii.gz")).voxels, argmax)
        let c2 = try ProbabilityFile.read(ProbabilityFile.url(for: "c2", in: out)).floats()
        XCTAssertEqual(c2, zip(b, b).map { ($0 + $1) / 2 })

        // Regions: three sigmoid channels painted in dataset.json's regions_class_order.
        let regions = temp.appendingPathComponent("regions")
        try FileManager.default.createDirectory(at: regions, withIntermediateDirectories: true)
        try ImageIO.write(MedicalImage(size: [3, 2], voxels: Array(repeating: 0, count: 6), pixelType: .uint8), to: regions.appendingPathComponent("c1.nii.gz"))
        try Data(#"{"channel_names": {"0": "T1"}, "labels": {"background": 0, "whole": [1, 2, 3], "core": [2, 3], "active": 3}, "regions_class_order": [1, 2, 3], "numTraining": 1, "file_ending": ".nii.gz"}"#.utf8)
            .write(to: regions.appendingPathComponent("dataset.json"))
        _ = try Python.run("import numpy as np, sys; np.savez_compressed(sys.argv[1] + '/c1.npz', probabilities=np.array([[[0.9, 0.9, 0.2], [0.9, 0.1, 0.9]], [[0.8, 0.1, 0.1], [0.7, 0.1, 0.2]], [[0.6, 0.1, 0.1], [0.1, 0.1, 0.1]]], dtype=np.float32))", [regions.path])
        let painted = temp.appendingPathComponent("painted")
        try ProbabilityEnsemble.run(folders: [regions], out: painted)
        XCTAssertEqual(try ImageIO.read(painted.appendingPathComponent("c1.nii.gz")).voxels, [3, 1, 0, 2, 0, 1])

        // Not C order, or not a float array: one line naming the file.
        _ = try Python.run("import numpy as np, sys; np.savez_compressed(sys.argv[1] + '/c1.npz', probabilities=np.asfortranarray(np.ones((3, 2, 3), np.float32)))", [regions.path])
        XCTAssertThrowsError(try ProbabilityEnsemble.run(folders: [regions], out: temp.appendingPathComponent("x"))) {
            XCTAssertTrue("\($0)".contains("c1.npz: probabilities: a Fortran-order array"), "\($0)")
        }
    }
}
