import Foundation
import XCTest
import MedSegTrain
import TestSupport

final class ModelArchiveTests: XCTestCase {
    private var folder: URL!

    override func setUpWithError() throws {
        folder = try makeTemporaryFolder("model-archive")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: folder) }

    /// A zip written by Python's zipfile holding `members` (name: text).
    private func zip(_ name: String, _ members: [String: String]) throws -> URL {
        let url = folder.appendingPathComponent(name)
        let json = String(decoding: try JSONSerialization.data(withJSONObject: members), as: UTF8.self)
        _ = try Python.run("import json, sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    [z.writestr(k, v) for k, v in json.loads(sys.argv[2]).items()]",
                           [url.path, json])
        return url
    }

    private func openError(_ url: URL) -> String {
        do {
            let opened = try ModelArchive.open(url)
            opened.remove()
            return "opened"
        } catch { return "\(error)" }
    }

    func testOpenReadsTheManifestAndUnpacksBesideIt() throws {
        let manifest = ModelArchive.Manifest(folds: ["0", "1"], checkpoint: "final", configuration: "3d_fullres", mirror: false,
                                             step_size: 0.75, postprocessing: true, created_by: "test")
        let text = String(decoding: try JSONEncoder().encode(manifest), as: UTF8.self)
        let url = try zip("model.zip", [ModelArchive.Manifest.fileName: text, "fold_0/config.yaml": "seed: 1\n"])
        let opened = try ModelArchive.open(url)
        XCTAssertEqual(opened.manifest, manifest)
        XCTAssertEqual(opened.modelFolder, opened.root)
        XCTAssertEqual(opened.postprocessing?.lastPathComponent, "postprocessing.json")
        XCTAssertEqual(try String(contentsOf: opened.root.appendingPathComponent("fold_0/config.yaml"), encoding: .utf8), "seed: 1\n")
        opened.remove()
        XCTAssertFalse(FileManager.default.fileExists(atPath: opened.root.path))
    }

    func testForeignFilesAreRefusedNamingTheFile() throws {
        let missing = folder.appendingPathComponent("absent.zip")
        XCTAssertTrue(openError(missing).contains("\(missing.path): no such model file"))
        let noManifest = try zip("plain.zip", ["readme.txt": "hello"])
        XCTAssertTrue(openError(noManifest).contains("\(noManifest.path): no medseg_model.json inside"))
        let future = try zip("future.zip", [ModelArchive.Manifest.fileName:
            #"{"format":"medseg-model-9","folds":[],"checkpoint":"final","mirror":true,"step_size":0.5,"postprocessing":false,"created_by":"x"}"#])
        XCTAssertTrue(openError(future).contains("model format 'medseg-model-9'; this MedSeg reads medseg-model-1"), openError(future))
    }
}
