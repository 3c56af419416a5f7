import Foundation
import XCTest
import MedSegData
import Torch
import TestSupport
@testable import MedSegTrain

final class TrainingRunTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("train")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func smallDataset() throws -> URL {
        let root = temp.appendingPathComponent("data")
        try SyntheticCases(.init(dims: 2, size: [48, 48], classes: 1, seed: 1)).write(to: root, training: 10, test: 2)
        return root
    }

    private func smallConfig() throws -> TrainingConfig {
        try TrainingConfig().merging(yaml: """
        features: 4
        depth: 3
        patch_size: [32, 32]
        batch_size: 2
        epochs: 4
        iterations: 3
        lr: 0.01
        augmentation: nnunet
        save_every: 2
        threads: 1
        workers: 0
        """, source: "test")
    }

    private func finalWeights(_ run: URL) throws -> [String: [Float]] {
        let loaded = try Checkpoint.load(RunFolder(run).checkpoint(.final))
        return Dictionary(uniqueKeysWithValues: try loaded.model.filter { $0.tensor.dtype == .float32 }.map { ($0.name, try $0.tensor.floats()) })
    }

    /// Train, stop half-way (as a killed run would), resume, and check every output and its numbers.
    func testInterruptedRunResumesAndWritesEveryOutput() throws {
        let data = try smallDataset()
        let runURL = temp.appendingPathComponent("run")
        let first = TrainingRun(config: try smallConfig(), datasetFolder: data, runFolder: runURL,
                                options: .init(verbose: false, stopAfterEpochs: 2))
        XCTAssertEqual(try first.run().epochsCompleted, 2)
        XCTAssertFalse(FileManager.default.fileExists(atPath: RunFolder(runURL).checkpoint(.final).path))

        // A different learning rate asked for on resume is reported, not silently dropped.
        var other = try smallConfig()
        other.lr = 0.5
        let second = TrainingRun(config: other, datasetFolder: data, runFolder: runURL, start: .resume(from: runURL, overrides: ["lr"]),
                                 options: .init(verbose: false))
        let summary = try second.run()
        XCTAssertEqual(second.ignoredOverrides.count, 1)
        XCTAssertTrue(second.ignoredOverrides[0].hasPrefix("lr: 0.5 was asked for, the run continues with its saved 0.01"), second.ignoredOverrides[0])
        XCTAssertTrue(try String(contentsOf: runURL.appendingPathComponent("log.txt"), encoding: .utf8).contains("resume: lr: 0.5"))
        XCTAssertEqual(summary.epochsCompleted, 4)

        for name in ["config.yaml", "log.txt", "training_log.csv", "progress.png", "validation/summary.json",
                     "checkpoint_latest.safetensors", "checkpoint_best.safetensors", "checkpoint_final.safetensors",
                     "checkpoint_epoch_2.safetensors", "checkpoint_epoch_4.safetensors"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: runURL.appendingPathComponent(name).path), name)
        }
        let events = try FileManager.default.contentsOfDirectory(atPath: runURL.path).filter { $0.hasPrefix("events.out.tfevents.") }
        XCTAssertFalse(events.isEmpty)

        let csv = try String(contentsOf: runURL.appendingPathComponent("training_log.csv"), encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 5, "header and one row per epoch, across the interruption")
        XCTAssertTrue(csv[0].hasPrefix("epoch,train_loss,val_loss,val_dice"))
        let checkpoint = try Checkpoint.load(RunFolder(runURL).checkpoint(.latest))
        XCTAssertEqual(checkpoint.state.epoch, 4)
        XCTAssertEqual(checkpoint.state.progress.history.map(\.epoch), [1, 2, 3, 4])
        for r in checkpoint.state.progress.history {
            XCTAssertTrue(r.trainLoss.isFinite && r.trainLoss > 0)
            XCTAssertTrue((0...1).contains(try XCTUnwrap(r.valDice)))
        }

        // The summary's Dice is the one recomputed from the written predictions and references.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: runURL.appendingPathComponent("validation/summary.json"))) as! [String: Any]
        let perCase = json["metric_per_case"] as! [[String: Any]]
        XCTAssertEqual(perCase.count, 2, "fold 0 of 10 cases validates 2")
        for c in perCase {
            let pred = try ImageIO.read(runURL.appendingPathComponent("validation/\(c["prediction_file"] as! String)"))
            let ref = try ImageIO.read(data.appendingPathComponent("labelsTr/\(c["reference_file"] as! String)"))
            let counts = ConfusionCounts(prediction: pred.voxels.map { Int32($0) }, reference: ref.voxels.map { Int32($0) }, label: 1)
            let dice = ((c["metrics"] as! [String: Any])["1"] as! [String: Any])["Dice"] as? Double
            if let dice { XCTAssertEqual(dice, counts.dice, accuracy: 1e-12) } else { XCTAssertTrue(counts.dice.isNaN) }
        }
    }

    /// N epochs straight and N/2 + resume + N/2 give the same weights, also when the resumed run
    /// makes its batches on background workers.
    func testResumeIsExact() throws {
        let data = try smallDataset()
        let straightURL = temp.appendingPathComponent("straight")
        let straight = TrainingRun(config: try smallConfig(), datasetFolder: data, runFolder: straightURL, options: .init(verbose: false))
        try straight.run()

        let splitURL = temp.appendingPathComponent("split")
        var prefetching = try smallConfig()
        prefetching.workers = 2
        let firstHalf = TrainingRun(config: prefetching, datasetFolder: data, runFolder: splitURL, options: .init(verbose: false, stopAfterEpochs: 2))
        try firstHalf.run()
        let secondHalf = TrainingRun(config: try smallConfig(), datasetFolder: data, runFolder: splitURL, start: .resume(from: splitURL),
                                     options: .init(verbose: false))
        try secondHalf.run()

        let a = try finalWeights(straightURL), b = try finalWeights(splitURL)
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        for (name, values) in a { XCTAssertEqual(values, b[name], name) }
    }

    /// A checkpoint written before some settings existed (its config lacks their keys) resumes,
    /// with those settings at their defaults.
    func testCheckpointWithoutNewerSettingsResumes() throws {
        let data = try smallDataset()
        let run = temp.appendingPathComponent("older")
        try TrainingRun(config: try smallConfig(), datasetFolder: data, runFolder: run, options: .init(verbose: false, stopAfterEpochs: 2)).run()
        let latest = RunFolder(run).checkpoint(.latest)
        let (tensors, metadata) = try Safetensors.load(latest)
        var state = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(try XCTUnwrap(metadata["trainer"]).utf8)) as? [String: Any])
        var config = try XCTUnwrap(state["config"] as? [String: Any])
        for key in ["patience", "val_batch_size", "grad_accumulation", "profile_steps"] { XCTAssertNotNil(config.removeValue(forKey: key), key) }
        state["config"] = config
        state.removeValue(forKey: "bestEpoch")
        var older = metadata
        older["trainer"] = String(decoding: try JSONSerialization.data(withJSONObject: state), as: UTF8.self)
        try Safetensors.save(tensors, metadata: older, to: latest)

        let loaded = try Checkpoint.load(latest)
        XCTAssertEqual(loaded.state.config.patience, 0)
        XCTAssertEqual(loaded.state.config.grad_accumulation, 1)
        XCTAssertEqual(loaded.state.config.lr, 0.01, "the saved settings stay")
        let summary = try TrainingRun(config: try smallConfig(), datasetFolder: data, runFolder: run, start: .resume(from: run),
                                      options: .init(verbose: false)).run()
        XCTAssertEqual(summary.epochsCompleted, 4)
    }

    /// SIGKILL in the middle of writing a checkpoint leaves the previous one loadable and whole.
    func testKilledWriterLeavesAWholeCheckpoint() throws {
        let binary = try XCTUnwrap(Executables.medseg(), "the medseg executable is built next to the tests")
        let out = temp.appendingPathComponent("stress.safetensors")
        for attempt in 0..<3 {
            let process = Process()
            process.executableURL = binary
            process.arguments = ["checkpoint-stress", "--out", out.path, "--megabytes", "48"]
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            // Let it complete at least one version, then kill it at an arbitrary point of a later write.
            let deadline = Date().addingTimeInterval(60)
            while !FileManager.default.fileExists(atPath: out.path) && Date() < deadline { usleep(20_000) }
            usleep(UInt32(150_000 + attempt * 70_000))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()

            let (tensors, metadata) = try Safetensors.load(out)
            let version = try XCTUnwrap(metadata["version"].flatMap(Double.init))
            for (name, t) in tensors {
                XCTAssertEqual(try t.min().item(), version, name)
                XCTAssertEqual(try t.max().item(), version, name)
            }
        }
    }
}
