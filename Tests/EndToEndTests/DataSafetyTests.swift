import Foundation
import XCTest
import TestSupport
import MedSegData
import MedSegTrain

/// No command writes over what it reads or over another run's results: each refusal is one line
/// naming the file, and the file is unchanged afterwards.
final class DataSafetyTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("safety")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private let small = ["--epochs", "1", "--iterations", "1", "--batch-size", "2", "--patch-size", "32,32", "--features", "4",
                         "--depth", "3", "--threads", "1"]

    private func synth(_ name: String = "data", cases: Int = 6, test: Int = 2) throws -> URL {
        let data = temp.appendingPathComponent(name)
        try medseg(["data", "synth", "--dim", "2", "--cases", "\(cases)", "--test-cases", "\(test)", "--size", "32,32", "--out", data.path])
        return data
    }

    /// Every file under `folder` with its contents.
    private func snapshot(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let e = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: nil)!
        for case let url as URL in e where !url.hasDirectoryPath {
            out[url.path] = try Data(contentsOf: url)
        }
        return out
    }

    /// A refusal is one line, "Error: ...", naming `fragment`. A mistake in the arguments themselves
    /// (`usage`: the command's name) is followed by that subcommand's usage, and only by that.
    private func assertRefused(_ r: (status: Int32, output: String), naming fragment: String, usage: String? = nil,
                               file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertNotEqual(r.status, 0, r.output, file: file, line: line)
        XCTAssertTrue(r.output.contains(fragment), "the refusal names \(fragment): \(r.output)", file: file, line: line)
        let lines = r.output.split(separator: "\n").filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        XCTAssertTrue(lines.first?.hasPrefix("Error: ") == true, r.output, file: file, line: line)
        XCTAssertEqual(lines.filter { $0.contains("Error") || $0.contains("error") }.count, 1, "one error: \(r.output)", file: file, line: line)
        if let usage {
            XCTAssertTrue(lines.contains { $0.hasPrefix("Usage: medseg \(usage) ") }, "\(usage)'s usage: \(r.output)", file: file, line: line)
        } else {
            XCTAssertEqual(lines.count, 1, "one line, no usage after a well-formed command: \(r.output)", file: file, line: line)
        }
    }

    func testPredictNeverWritesIntoItsInput() throws {
        let data = try synth()
        let run = temp.appendingPathComponent("run")
        try medseg(["train", "--dataset", data.path, "--out", run.path] + small)
        // Single images not named CASE_0000: a mask would have the image's own name.
        let images = temp.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: data.appendingPathComponent("imagesTs/synth_006_0000.png"), to: images.appendingPathComponent("scan.png"))
        let before = try snapshot(images)
        assertRefused(try medseg(["predict", "--run", run.path, "--input", images.path, "--out", images.path], expectSuccess: false),
                      naming: images.path)
        // The same folder through a symbolic link.
        let alias = temp.appendingPathComponent("alias")
        try FileManager.default.createSymbolicLink(at: alias, withDestinationURL: images)
        assertRefused(try medseg(["predict", "--run", run.path, "--input", images.path, "--out", alias.path], expectSuccess: false),
                      naming: "--input folder")
        // Another folder whose file is a hard link to the input: caught file by file.
        let other = temp.appendingPathComponent("other")
        try FileManager.default.createDirectory(at: other, withIntermediateDirectories: true)
        XCTAssertEqual(link(images.appendingPathComponent("scan.png").path, other.appendingPathComponent("scan.png").path), 0)
        let hard = try medseg(["predict", "--run", run.path, "--input", images.path, "--out", other.path], expectSuccess: false)
        assertRefused(hard, naming: other.appendingPathComponent("scan.png").path)
        XCTAssertTrue(hard.output.contains("an input image"), hard.output)
        XCTAssertEqual(try snapshot(images), before, "the input images are unchanged")
        // A separate folder works.
        try medseg(["predict", "--run", run.path, "--input", images.path, "--out", temp.appendingPathComponent("pred").path])
    }

    func testEnsembleAndEvaluateAndConvertKeepTheirInputs() throws {
        let data = try synth()
        let a = temp.appendingPathComponent("a"), b = temp.appendingPathComponent("b")
        for folder in [a, b] { try FileManager.default.copyItem(at: data.appendingPathComponent("labelsTs"), to: folder) }
        let before = try snapshot(a)
        assertRefused(try medseg(["ensemble", "--inputs", a.path, b.path, "--out", a.path], expectSuccess: false), naming: a.path)
        let reference = data.appendingPathComponent("labelsTs/synth_006.png")
        let refBytes = try Data(contentsOf: reference)
        let evaluate = try medseg(["evaluate", "--pred", a.path, "--ref", data.appendingPathComponent("labelsTs").path,
                                   "--out", reference.path], expectSuccess: false)
        assertRefused(evaluate, naming: reference.path)
        XCTAssertTrue(evaluate.output.contains("a reference label"), evaluate.output)
        XCTAssertEqual(try Data(contentsOf: reference), refBytes)
        let image = a.appendingPathComponent("synth_006.png")
        assertRefused(try medseg(["data", "convert", image.path, image.path], expectSuccess: false), naming: image.path)
        XCTAssertEqual(try snapshot(a), before)
    }

    func testSynthRefusesAnExistingDataSetAndEmptyCounts() throws {
        let data = try synth(cases: 4, test: 1)
        let before = try snapshot(data)
        let again = try medseg(["data", "synth", "--dim", "2", "--cases", "3", "--size", "32,32", "--seed", "5", "--out", data.path], expectSuccess: false)
        assertRefused(again, naming: "--overwrite")
        XCTAssertEqual(try snapshot(data), before, "the data set is unchanged")
        // --overwrite replaces it whole: no old case is left among the new ones.
        try medseg(["data", "synth", "--dim", "2", "--cases", "3", "--test-cases", "0", "--size", "32,32", "--out", data.path, "--overwrite"])
        XCTAssertEqual(try RawDataset(data).description.numTraining, 3)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: data.appendingPathComponent("imagesTr").path).count, 3)
        XCTAssertFalse(FileManager.default.fileExists(atPath: data.appendingPathComponent("imagesTs").path))
        // A file where the output folder should be: one line naming it, not Foundation's error dump.
        let file = temp.appendingPathComponent("a-file")
        try Data("x".utf8).write(to: file)
        let blocked = try medseg(["data", "synth", "--cases", "2", "--out", file.path], expectSuccess: false)
        assertRefused(blocked, naming: "a file is in the way where a folder is expected")
        XCTAssertFalse(blocked.output.contains("NSCocoaErrorDomain"), blocked.output)
        for (flag, value) in [("--cases", "0"), ("--test-cases", "-3")] {
            let r = try medseg(["data", "synth", flag, value, "--out", temp.appendingPathComponent("x\(value)").path], expectSuccess: false)
            assertRefused(r, naming: flag, usage: "data synth")
            XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("x\(value)").path))
        }
    }

    /// A checkpoint of another network in a run folder is refused before anything is rewritten;
    /// resuming a finished run trains nothing and keeps its final checkpoint.
    func testResumeRefusesAnotherNetworksCheckpoint() throws {
        let data = try synth()
        let unet = temp.appendingPathComponent("unet"), unetpp = temp.appendingPathComponent("unetpp")
        try medseg(["train", "--dataset", data.path, "--out", unet.path] + small)
        try medseg(["train", "--dataset", data.path, "--out", unetpp.path, "--model", "unetpp"] + small)
        let finalBytes = try Data(contentsOf: RunFolder(unet).checkpoint(.final))
        let again = try medseg(["train", "--resume", unet.path, "--epochs", "2"])
        XCTAssertTrue(again.output.contains("resuming"), again.output)
        let finished = try Data(contentsOf: RunFolder(unet).checkpoint(.final))
        XCTAssertNotEqual(finished, finalBytes, "two epochs now: a new final checkpoint")
        let noop = try medseg(["train", "--resume", unet.path])
        XCTAssertTrue(noop.output.contains("already finished"), noop.output)
        XCTAssertEqual(try Data(contentsOf: RunFolder(unet).checkpoint(.final)), finished, "nothing trained: final kept")

        // A UNet++ checkpoint put in the U-Net run as its latest.
        try FileManager.default.removeItem(at: RunFolder(unet).checkpoint(.latest))
        try FileManager.default.copyItem(at: RunFolder(unetpp).checkpoint(.latest), to: RunFolder(unet).checkpoint(.latest))
        let before = try snapshot(unet)
        let r = try medseg(["train", "--resume", unet.path, "--epochs", "3"], expectSuccess: false)
        assertRefused(r, naming: RunFolder(unet).checkpoint(.latest).path)
        XCTAssertTrue(r.output.contains("model unetpp in the checkpoint, unet in the run"), r.output)
        XCTAssertEqual(try snapshot(unet), before, "config.yaml and the checkpoints are unchanged")
    }
}
