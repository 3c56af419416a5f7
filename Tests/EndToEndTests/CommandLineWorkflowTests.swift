import Foundation
import XCTest
import TestSupport
import MedSegData
import Torch
@testable import MedSegTrain

/// The user's workflow through the `medseg` executable: synthesize, train, SIGKILL the training,
/// resume it, predict and evaluate.
final class CommandLineWorkflowTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("cli")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    func testSynthesizeTrainKillResumePredictEvaluate() throws {
        let data = temp.appendingPathComponent("data").path, run = temp.appendingPathComponent("run").path
        try medseg(["data", "synth", "--dim", "2", "--cases", "8", "--test-cases", "2", "--size", "48,48", "--out", data])
        try medseg(["data", "check", data])

        // Start a training run and kill it hard once it has written a checkpoint.
        let train = Process()
        train.executableURL = try XCTUnwrap(Executables.medseg())
        train.arguments = ["train", "--dataset", data, "--out", run, "--epochs", "200", "--iterations", "2", "--batch-size", "2",
                           "--patch-size", "32,32", "--features", "4", "--threads", "1", "--lr", "0.01"]
        train.standardOutput = FileHandle.nullDevice
        train.standardError = FileHandle.nullDevice
        try train.run()
        let latest = RunFolder(URL(fileURLWithPath: run)).checkpoint(.latest)
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: latest.path) && Date() < deadline { usleep(50_000) }
        usleep(300_000)
        kill(train.processIdentifier, SIGKILL)
        train.waitUntilExit()
        XCTAssertEqual(train.terminationReason, .uncaughtSignal)
        let killedAt = try Checkpoint.load(latest).state.epoch
        XCTAssertGreaterThanOrEqual(killedAt, 1)
        XCTAssertLessThan(killedAt, 200)

        // Resume, asking for a shorter run than first planned.
        let resumed = try medseg(["train", "--resume", run, "--epochs", "\(killedAt + 2)"])
        XCTAssertTrue(resumed.output.contains("resuming"), resumed.output)
        let final = try Checkpoint.load(RunFolder(URL(fileURLWithPath: run)).checkpoint(.latest))
        XCTAssertEqual(final.state.epoch, killedAt + 2)
        XCTAssertEqual(final.state.progress.history.map(\.epoch), Array(1...final.state.epoch), "no epoch lost or repeated across the kill")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run + "/checkpoint_final.safetensors"))

        let pred = temp.appendingPathComponent("pred").path
        try medseg(["predict", "--run", run, "--checkpoint", "latest", "--input", data + "/imagesTs", "--out", pred, "--overlay"])
        for id in ["synth_008", "synth_009"] {
            let mask = try ImageIO.read(URL(fileURLWithPath: "\(pred)/\(id).png"))
            XCTAssertEqual(mask.size, [48, 48])
            XCTAssertTrue(Set(mask.voxels).isSubset(of: [0, 1]))
            XCTAssertTrue(FileManager.default.fileExists(atPath: "\(pred)/\(id)_overlay.png"))
        }
        let evaluation = try medseg(["evaluate", "--pred", pred, "--ref", data + "/labelsTs", "--nsd-tolerance", "2"])
        XCTAssertTrue(evaluation.output.contains("foreground mean") && evaluation.output.contains("NSD@2mm"), evaluation.output)
        let summary = try JSONDecoder().decode(EvaluationSummary.self, from: Data(contentsOf: URL(fileURLWithPath: pred + "/summary.json")))
        XCTAssertEqual(summary.metric_per_case.count, 2)
        XCTAssertEqual(summary.nsd_tolerance_mm, 2)
        XCTAssertNotNil(summary.foreground_mean.NSD)
        let badTolerance = try medseg(["evaluate", "--pred", pred, "--ref", data + "/labelsTs", "--nsd-tolerance", "-1"], expectSuccess: false)
        XCTAssertTrue(badTolerance.output.contains("--nsd-tolerance must be a distance in mm"), badTolerance.output)

        // Errors name the problem instead of crashing.
        let bad = try medseg(["train", "--dataset", temp.path, "--out", run + "2"], expectSuccess: false)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("dataset.json"), bad.output)
    }

    /// Spinning OpenMP workers starve OpenBLAS's threads on few cores: medseg waits passively
    /// unless the user set a policy.
    func testOpenMPWaitsPassivelyUnlessTheUserChose() throws {
        let plain = try Executables.runMedSeg(["doctor"], environment: ["OMP_WAIT_POLICY": nil])
        XCTAssertTrue(plain.output.contains("OMP_WAIT_POLICY=PASSIVE"), plain.output)
        let chosen = try Executables.runMedSeg(["doctor"], environment: ["OMP_WAIT_POLICY": "ACTIVE"])
        XCTAssertTrue(chosen.output.contains("OMP_WAIT_POLICY=ACTIVE"), chosen.output)
        // The scan's implementation on the training device is named (the fused kernel on a CPU build).
        XCTAssertTrue(plain.output.contains("selective scan"), plain.output)
        XCTAssertTrue(plain.output.contains(Torch.cudaAvailable ? "cuda:0 " : "fused CPU kernel"), plain.output)
    }

    func testPlanThenPreprocessTwice() throws {
        let data = temp.appendingPathComponent("vol").path
        try medseg(["data", "synth", "--dim", "3", "--cases", "4", "--test-cases", "1", "--size", "32,32,16", "--out", data])
        let plan = try medseg(["plan", data])
        XCTAssertTrue(plan.output.contains("3d_fullres: spacing [2.5, 0.8, 0.8]"), plan.output)
        let plans = try ExperimentPlans.load(URL(fileURLWithPath: data + "/plans.json"))
        XCTAssertEqual(Set(plans.configurations.keys), ["2d", "3d_fullres"])
        XCTAssertTrue(FileManager.default.fileExists(atPath: data + "/dataset_fingerprint.json"))
        let first = try medseg(["preprocess", data, "--config", "3d_fullres"])
        XCTAssertTrue(first.output.contains("4 case(s) preprocessed, 0 already up to date"), first.output)
        let second = try medseg(["preprocess", data, "--config", "3d_fullres"])
        XCTAssertTrue(second.output.contains("0 case(s) preprocessed, 4 already up to date"), second.output)
        let missing = try medseg(["preprocess", data, "--config", "3d_lowres"], expectSuccess: false)
        XCTAssertTrue(missing.output.contains("no configuration '3d_lowres'"), missing.output)
    }
}
