import Foundation
import XCTest
import TestSupport
import MedSegTrain
import MedSegModels
import MedSegData
import Torch

/// `medseg train`'s checks before anything is written: choices, an existing run, small data sets.
final class TrainCommandTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("traincmd")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func synth(_ cases: Int) throws -> String {
        let data = temp.appendingPathComponent("data\(cases)").path
        try medseg(["data", "synth", "--dim", "2", "--cases", "\(cases)", "--test-cases", "0", "--size", "32,32", "--out", data])
        return data
    }

    private let small = ["--epochs", "1", "--iterations", "1", "--batch-size", "2", "--patch-size", "32,32", "--features", "4",
                         "--depth", "3", "--threads", "1"]

    /// `medseg train > train.log`: lines reach the file as they are printed, so a run killed
    /// mid-way (or watched with tail -f) has its log up to that point.
    func testEveryLineReachesARedirectedLogAsItIsPrinted() throws {
        let data = try synth(6)
        let run = temp.appendingPathComponent("run")
        let redirected = temp.appendingPathComponent("train.log")
        XCTAssertTrue(FileManager.default.createFile(atPath: redirected.path, contents: nil))
        let process = Process()
        process.executableURL = try XCTUnwrap(Executables.medseg())
        process.arguments = ["train", "--dataset", data, "--out", run.path, "--epochs", "1000", "--iterations", "1", "--batch-size", "2",
                             "--patch-size", "32,32", "--features", "4", "--depth", "3", "--threads", "1", "--val-every", "1000"]
        let output = try FileHandle(forWritingTo: redirected)
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { try? output.close() }
        let runLog = RunFolder(run).url.appendingPathComponent("log.txt")
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning, Date() < deadline,
              !((try? String(contentsOf: runLog, encoding: .utf8))?.contains("epoch 3:") ?? false) {
            usleep(50_000)
        }
        XCTAssertTrue(process.isRunning, "the run is still training")
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        let written = try String(contentsOf: redirected, encoding: .utf8)
        XCTAssertTrue(written.contains("parameters") && written.contains("epoch 2:"), "killed after epoch 3, the log holds: \(written)")
    }

    func testUnknownModelFailsBeforeAnyDataLoads() throws {
        let out = temp.appendingPathComponent("run")
        let r = try medseg(["train", "--dataset", "/no/such/dataset", "--model", "resnet9000", "--out", out.path], expectSuccess: false)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("resnet9000"), r.output)
        XCTAssertTrue(r.output.contains("ultralight_vmunet"), "the error lists the models: \(r.output)")
        XCTAssertFalse(r.output.contains("/no/such/dataset"), "nothing was read: \(r.output)")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        let help = try medseg(["train", "--help"])
        for model in ModelName.allCases { XCTAssertTrue(help.output.contains(model.rawValue), "train --help lists \(model.rawValue)") }
    }

    func testAFinishedRunIsNotReplacedWithoutOverwrite() throws {
        let data = try synth(6)
        let run = temp.appendingPathComponent("run")
        try medseg(["train", "--dataset", data, "--out", run.path] + small)
        let final = RunFolder(run).checkpoint(.final)
        let before = try Data(contentsOf: final)
        let again = try medseg(["train", "--dataset", data, "--out", run.path, "--lr", "0.5"] + small, expectSuccess: false)
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.output.contains(run.path) && again.output.contains("--overwrite"), again.output)
        XCTAssertEqual(try Data(contentsOf: final), before, "the finished run is untouched")
        func savedLR() throws -> Double {
            try TrainingConfig().merging(yaml: String(contentsOf: RunFolder(run).config, encoding: .utf8), source: "config.yaml").lr
        }
        XCTAssertNotEqual(try savedLR(), 0.5)
        try medseg(["train", "--dataset", data, "--out", run.path, "--lr", "0.5", "--overwrite"] + small)
        XCTAssertEqual(try savedLR(), 0.5)
    }

    func testARunThatCannotStartLeavesNothingBehind() throws {
        let data = try synth(6)
        let run = temp.appendingPathComponent("bad-run")
        // A patch the 3-level network cannot halve twice: refused once the data set is read.
        let r = try medseg(["train", "--dataset", data, "--out", run.path, "--epochs", "1", "--patch-size", "30,30", "--depth", "3",
                            "--features", "4"], expectSuccess: false)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.output.contains("patch_size"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: run.path), "no stray files: \(r.output)")
    }

    func testSmallDataSetsTrainWithFoldAllAndFewerFolds() throws {
        let data = try synth(3)
        let all = temp.appendingPathComponent("all")
        try medseg(["train", "--dataset", data, "--out", all.path, "--fold", "all"] + small)
        XCTAssertTrue(RunFolder(all).hasCheckpoint(.final))
        let fold = temp.appendingPathComponent("fold2")
        let r = try medseg(["train", "--dataset", data, "--out", fold.path, "--fold", "2"] + small)
        XCTAssertTrue(r.output.contains("3-fold cross-validation instead of 5"), r.output)
        XCTAssertTrue(RunFolder(fold).hasCheckpoint(.final))
        let splits = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: data).appendingPathComponent("splits_final.json"))) as! [[String: Any]]
        XCTAssertEqual(splits.count, 3)
        XCTAssertEqual(splits.map { ($0["val"] as! [String]).count }, [1, 1, 1])
    }

    func testBenchmarkBuildsEachModelAtItsPublishedWidth() throws {
        let r = try medseg(["benchmark", "--model", "ultralight_vmunet", "--mode", "infer", "--size", "64", "--batch-size", "1",
                            "--in-channels", "3", "--warmup", "0", "--steps", "1", "--threads", "1", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(r.output.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual(json["params"] as? Int, 49_457, "UltraLight VM-UNet's published parameter count")
    }

    /// Numbers no run can use are refused in one line naming the option or key, before any data
    /// is read or any folder made.
    /// MONAI's SegResNet trains on a 3D data set and predicts its test cases (`--model segresnet`).
    func testSegResNetTrainsAndPredictsIn3D() throws {
        let data = temp.appendingPathComponent("data3d").path
        try medseg(["data", "synth", "--dim", "3", "--cases", "5", "--test-cases", "2", "--size", "16,16,16", "--out", data])
        let run = temp.appendingPathComponent("segresnet").path
        let (_, log) = try medseg(["train", "--dataset", data, "--model", "segresnet", "--patch-size", "16,16,16", "--epochs", "1",
                                   "--iterations", "1", "--batch-size", "2", "--threads", "1", "--out", run])
        XCTAssertTrue(log.contains("segresnet 3D: 1176195 parameters"), log)  // MONAI: SegResNet(spatial_dims=3, in_channels=1, out_channels=3)
        let (_, predicted) = try medseg(["predict", "--run", run, "--input", data + "/imagesTs", "--out", temp.appendingPathComponent("pred").path])
        XCTAssertTrue(predicted.contains("wrote 2 prediction(s)"), predicted)
    }

    func testImpossibleNumbersAreRefusedBeforeAnythingRuns() throws {
        let yaml = temp.appendingPathComponent("bad.yaml")
        let cases: [([String], String)] = [
            (["--num-folds", "1"], "key 'num_folds': must be at least 2"),
            (["--fold", "7"], "key 'fold': must be 0 to 4, or -1 for all, got 7"),
            (["--kernel-size", "4"], "key 'kernel_size': must be odd"),
            (["--optimizer", "rmsprop"], "choose one of sgd, adam, adamw, sophiag"),
            (["--batchsize", "2"], "unknown option '--batchsize' (did you mean '--batch-size'?)"),
            (["--epochs"], "missing value for '--epochs N'"),
            (["--deep-supervision=maybe"], "the value 'maybe' is invalid for '--deep-supervision"),
            (["--epochs", "-1"], "key 'epochs': must be positive, got -1"),
            (["--master-port", "70000"], "--master-port must be a TCP port"),
            (["--nnodes", "0"], "--nnodes must be at least 1"),
            (["--nproc-per-node", "0"], "--nproc-per-node must be at least 1"),
            (["--lr", "inf"], "key 'lr': must be a positive number"),
            (["--threads", "100000"], "key 'threads'"),
            (["--config", yaml.path], "key 'grad_clip': must be a finite number"),
        ]
        try "grad_clip: .nan\n".write(to: yaml, atomically: true, encoding: .utf8)
        for (i, (args, message)) in cases.enumerated() {
            let out = temp.appendingPathComponent("run\(i)")
            let r = try medseg(["train", "--dataset", "/no/such/dataset", "--out", out.path] + args, expectSuccess: false)
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.output.contains(message), "\(args): \(r.output)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(args)")
        }
    }

    /// SETR-MLA (seed 002): the encoder is frozen by default, with a warning when it has no
    /// pretrained weights; `freeze_encoder: false` (or --no-freeze-encoder) trains it too, as the
    /// seed's `default` config trains from scratch.
    func testSETREncoderFreezesOnlyWhenAsked() throws {
        let data = try synth(4)
        let setr = ["--model", "setr_mla", "--features", "64", "--depth", "4", "--epochs", "1", "--iterations", "2", "--batch-size", "2",
                    "--patch-size", "32,32", "--threads", "1", "--seed", "3"]
        let frozen = temp.appendingPathComponent("frozen"), trained = temp.appendingPathComponent("trained")
        let a = try medseg(["train", "--dataset", data, "--out", frozen.path] + setr)
        XCTAssertTrue(a.output.contains("encoder is frozen but has no pretrained weights") && a.output.contains("--no-freeze-encoder"), a.output)
        let yaml = temp.appendingPathComponent("scratch.yaml")
        try "freeze_encoder: false\n".write(to: yaml, atomically: true, encoding: .utf8)
        let b = try medseg(["train", "--dataset", data, "--out", trained.path, "--config", yaml.path] + setr)
        XCTAssertFalse(b.output.contains("encoder is frozen"), b.output)
        func encoderWeight(_ run: URL) throws -> Tensor {
            let (tensors, _) = try Safetensors.load(RunFolder(run).checkpoint(.final))
            let key = try XCTUnwrap(tensors.keys.first { $0.hasSuffix("encoder.patch_embed.proj.weight") }, "\(tensors.keys.sorted().prefix(5))")
            return tensors[key]!
        }
        XCTAssertFalse(try encoderWeight(frozen).allClose(encoderWeight(trained), rtol: 0, atol: 0), "the unfrozen encoder trained")
        let config = try String(contentsOf: RunFolder(trained).config, encoding: .utf8)
        XCTAssertTrue(config.contains("freeze_encoder: false"), config)
        XCTAssertTrue(try medseg(["train", "--help"]).output.contains("--freeze-encoder/--no-freeze-encoder"))
    }

    /// Sophia-G is a choice on the command line (seed 000 calls it "sophia") and in YAML.
    func testSophiaIsAnOptimizerChoice() throws {
        let data = try synth(4)
        let cli = temp.appendingPathComponent("cli"), yamlRun = temp.appendingPathComponent("yaml")
        try medseg(["train", "--dataset", data, "--out", cli.path, "--optimizer", "sophia", "--lr", "0.0003"] + small)
        let saved = try TrainingConfig().merging(yaml: String(contentsOf: RunFolder(cli).config, encoding: .utf8), source: "config.yaml")
        XCTAssertEqual(saved.optimizer, .sophiag)
        XCTAssertEqual(saved.rho, 0.01)
        // Every option of the config is a flag, with its key and default in --help: those that had
        // no flag of their own before the options were declared once too.
        let help = try medseg(["train", "--help"]).output
        for (key, option) in TrainingConfig.options where option.onCommandLine {
            XCTAssertTrue(help.contains("--\(key.replacingOccurrences(of: "_", with: "-"))"), "train --help lists \(key)")
        }
        let flags = temp.appendingPathComponent("flags")
        try medseg(["train", "--dataset", data, "--out", flags.path, "--optimizer=sophia", "--rho", "0.02", "--hessian-interval", "3",
                    "--no-batch-dice", "--warmup-epochs", "1", "--fold", "all"] + small)
        let viaFlags = try self.saved(flags)
        XCTAssertEqual([viaFlags.rho, Double(viaFlags.hessian_interval), Double(viaFlags.warmup_epochs), Double(viaFlags.fold)], [0.02, 3, 1, -1])
        XCTAssertFalse(viaFlags.batch_dice)
        let yaml = temp.appendingPathComponent("sophia.yaml")
        try "optimizer: sophiag\nrho: 0.02\nhessian_interval: 1\n".write(to: yaml, atomically: true, encoding: .utf8)
        try medseg(["train", "--dataset", data, "--out", yamlRun.path, "--config", yaml.path] + small)
        let (state, _) = try Safetensors.load(RunFolder(yamlRun).checkpoint(.final))
        XCTAssertTrue(state.keys.contains { $0.contains("hessian") }, "Sophia's Hessian is checkpointed: \(state.keys.sorted().prefix(8))")
        XCTAssertTrue(try medseg(["train", "--help"]).output.contains("sophiag"))
    }

    /// nnU-Net's 2D patches are not square (BraTS: 192x160): --size takes one value per axis.
    func testBenchmarkTakesOneSizePerAxis() throws {
        let r = try medseg(["benchmark", "--model", "plainunet", "--dim", "2", "--size", "40,24", "--depth", "3", "--features", "4",
                            "--in-channels", "4", "--classes", "4", "--warmup", "0", "--steps", "1", "--threads", "1", "--json"])
        let json = try JSONSerialization.jsonObject(with: Data(r.output.split(separator: "\n").last!.utf8)) as! [String: Any]
        XCTAssertEqual(json["size"] as? [Int], [40, 24])
        XCTAssertNil(json["gpu_peak_mem_mb"], "no GPU figure on the CPU")
        let bad = try medseg(["benchmark", "--dim", "2", "--size", "40,24,8", "--steps", "1"], expectSuccess: false)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("--size needs 1 or 2 values for --dim 2, got 3"), bad.output)
    }

    private func saved(_ run: URL) throws -> TrainingConfig {
        try TrainingConfig().merging(yaml: String(contentsOf: RunFolder(run).config, encoding: .utf8), source: "config.yaml")
    }

    private let tiny = ["--batch-size", "2", "--patch-size", "32,32", "--features", "4", "--depth", "3", "--threads", "1"]

    /// Options that were YAML-only or missing (seeds 000, 002, 003): they reach the run, and the
    /// profiler writes a Chrome trace of real training iterations.
    func testPerRunOptionsReachTheRun() throws {
        let data = try synth(6)
        let run = temp.appendingPathComponent("run")
        let r = try medseg(["train", "--dataset", data, "--out", run.path, "--epochs", "1", "--iterations", "3", "--workers", "0",
                            "--loss", "dice_ce", "--weight-decay", "0.001", "--val-batch-size", "4", "--grad-accumulation", "2", "--profile"] + tiny)
        let c = try saved(run)
        XCTAssertEqual(c.workers, 0)
        XCTAssertEqual(c.loss, .dice_ce)
        XCTAssertEqual(c.weight_decay, 0.001)
        XCTAssertEqual(c.val_batch_size, 4)
        XCTAssertEqual(c.grad_accumulation, 2)
        XCTAssertEqual(c.profile_steps, 5)
        XCTAssertTrue(r.output.contains("batch 2, 2 accumulated per step (4 images a step)"), r.output)
        let trace = run.appendingPathComponent("profile_trace.json")
        XCTAssertTrue(r.output.contains(trace.path), r.output)
        let events = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: trace)) as? [[String: Any]])
        let names = Set(events.compactMap { $0["name"] as? String })
        XCTAssertTrue(names.contains("aten::convolution") && names.contains("aten::convolution_backward"), "\(names.sorted().prefix(20))")
        for (args, expected) in [(["--grad-accumulation", "0"], "key 'grad_accumulation': must be at least 1"),
                                 (["--patience", "-1"], "key 'patience': cannot be negative"),
                                 (["--loss", "focal"], "focal"),
                                 (["--deterministic", "--cudnn-benchmark"], "choose one"),
                                 (["--benchmark"], "medseg benchmark --dataset")] {
            let bad = try medseg(["train", "--dataset", data, "--out", temp.appendingPathComponent("bad").path] + args + tiny, expectSuccess: false)
            XCTAssertNotEqual(bad.status, 0, "\(args)")
            XCTAssertTrue(bad.output.contains(expected), "\(args): \(bad.output)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("bad").path))
    }

    /// --patience ends a run whose validation metric stopped improving; the run is finished
    /// (final checkpoint, final validation), and resuming it trains no further.
    func testPatienceStopsARunThatNoLongerImproves() throws {
        let data = try synth(6)
        let run = temp.appendingPathComponent("run")
        // A learning rate too small to change any prediction: the EMA Dice settles at once.
        let r = try medseg(["train", "--dataset", data, "--out", run.path, "--epochs", "30", "--iterations", "1", "--lr", "1e-12",
                            "--patience", "2"] + tiny)
        XCTAssertTrue(r.output.contains("early stop after epoch"), r.output)
        let log = try String(contentsOf: run.appendingPathComponent("training_log.csv"), encoding: .utf8)
        let epochs = log.split(separator: "\n").count - 1
        XCTAssertLessThan(epochs, 30, log)
        XCTAssertGreaterThanOrEqual(epochs, 3, log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: RunFolder(run).checkpoint(.final).path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("validation/summary.json").path), r.output)
        let again = try medseg(["train", "--resume", run.path])
        XCTAssertTrue(again.output.contains("had already finished (stopped early)"), again.output)
        XCTAssertEqual(try String(contentsOf: run.appendingPathComponent("training_log.csv"), encoding: .utf8), log)
    }

    /// --deterministic: the same seed gives bit-identical weights (with background workers making
    /// the batches); another seed does not.
    func testDeterministicRunsWithOneSeedGiveIdenticalWeights() throws {
        let data = try synth(6)
        func weights(seed: Int, _ name: String) throws -> [String: [Float]] {
            let run = temp.appendingPathComponent(name)
            try medseg(["train", "--dataset", data, "--out", run.path, "--epochs", "2", "--iterations", "2", "--workers", "2",
                        "--deterministic", "--seed", "\(seed)"] + tiny)
            XCTAssertTrue(try saved(run).deterministic)
            let (tensors, _) = try Safetensors.load(RunFolder(run).checkpoint(.final))
            return Dictionary(uniqueKeysWithValues: try tensors.keys.filter { $0.hasPrefix("model.") }.map { ($0, try tensors[$0]!.floats()) })
        }
        let a = try weights(seed: 5, "a"), b = try weights(seed: 5, "b"), c = try weights(seed: 6, "c")
        XCTAssertFalse(a.isEmpty)
        XCTAssertEqual(a, b, "same seed, same weights, bit for bit")
        XCTAssertNotEqual(a, c, "another seed trains other weights")
    }

    /// `medseg benchmark --dataset` times training on a data set's own batches (seed 003's
    /// --benchmark): its channels and classes decide the network.
    func testBenchmarkTimesADataSetsBatches() throws {
        let data = try synth(4)
        let args = ["benchmark", "--size", "32", "--batch-size", "2", "--features", "4", "--depth", "3", "--warmup", "1", "--steps", "2",
                    "--threads", "1", "--json"]
        func result(_ extra: [String]) throws -> [String: Any] {
            let r = try medseg(args + extra)
            return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.output.split(separator: "\n").last!.utf8)) as? [String: Any])
        }
        let real = try result(["--dataset", data]), random = try result(["--in-channels", "3"])
        XCTAssertEqual(real["dataset"] as? String, data)
        XCTAssertGreaterThan(real["img_per_s"] as? Double ?? 0, 0)
        XCTAssertNil(random["dataset"])
        XCTAssertNotEqual(real["params"] as? Int, random["params"] as? Int, "the data set's one channel, not --in-channels 3")
        let missing = try medseg(args + ["--dataset", temp.appendingPathComponent("none").path], expectSuccess: false)
        XCTAssertNotEqual(missing.status, 0)
        XCTAssertTrue(missing.output.contains(temp.appendingPathComponent("none").path), missing.output)
    }

    /// Prediction at scale: processes (and nodes) share the cases and write what one process
    /// writes; --continue-prediction redoes only what is missing; --step-size and --window-batch.
    func testPredictionShardsOverProcessesAndContinues() throws {
        let root = temp.appendingPathComponent("data")
        try medseg(["data", "synth", "--dim", "2", "--cases", "6", "--test-cases", "5", "--size", "32,32", "--out", root.path])
        let run = temp.appendingPathComponent("run")
        try medseg(["train", "--dataset", root.path, "--out", run.path] + small)
        let input = root.appendingPathComponent("imagesTs").path
        func predict(_ name: String, _ extra: [String]) throws -> (output: String, masks: [String: [Float]]) {
            let out = temp.appendingPathComponent(name)
            let r = try medseg(["predict", "--run", run.path, "--input", input, "--out", out.path, "--threads", "1"] + extra)
            let files = try FileManager.default.contentsOfDirectory(atPath: out.path).filter { $0.hasSuffix(".png") }
            return (r.output, Dictionary(uniqueKeysWithValues: try files.map { ($0, try ImageIO.read(out.appendingPathComponent($0)).voxels) }))
        }
        let single = try predict("single", [])
        XCTAssertEqual(single.masks.count, 5)
        let shared = try predict("shared", ["--nproc-per-node", "2"])
        XCTAssertTrue(shared.output.contains("rank 0 of 2: wrote 3 prediction(s)") && shared.output.contains("rank 1 of 2: wrote 2 prediction(s)"),
                      shared.output)
        XCTAssertEqual(shared.masks, single.masks, "two processes write what one writes")
        // Two nodes of one process each, started separately (as on two machines).
        _ = try predict("nodes", ["--nnodes", "2", "--node-rank", "0", "--nproc-per-node", "1"])
        let nodes = try predict("nodes", ["--nnodes", "2", "--node-rank", "1", "--nproc-per-node", "1"])
        XCTAssertEqual(nodes.masks, single.masks)

        let out = temp.appendingPathComponent("single")
        let removed = single.masks.keys.sorted()[1]
        try FileManager.default.removeItem(at: out.appendingPathComponent(removed))
        let again = try predict("single", ["--continue-prediction"])
        XCTAssertTrue(again.output.contains("wrote 1 prediction(s)") && again.output.contains("4 already there"), again.output)
        XCTAssertEqual(again.masks, single.masks)

        // One case that cannot be read is reported and skipped; the others are written, and the
        // command fails at the end naming it.
        let mixed = temp.appendingPathComponent("mixed")
        try FileManager.default.copyItem(atPath: input, toPath: mixed.path)
        try Data("not a PNG".utf8).write(to: mixed.appendingPathComponent("broken.png"))
        let mixedOut = temp.appendingPathComponent("mixed-out")
        let partly = try medseg(["predict", "--run", run.path, "--input", mixed.path, "--out", mixedOut.path, "--threads", "1"], expectSuccess: false)
        XCTAssertNotEqual(partly.status, 0)
        XCTAssertTrue(partly.output.contains("Error: case broken: ") && partly.output.contains("broken.png"), partly.output)
        XCTAssertTrue(partly.output.contains("wrote 5 prediction(s)"), partly.output)
        XCTAssertTrue(partly.output.contains("Error: 1 of 6 case(s) could not be predicted (each named above): broken"), partly.output)
        for (name, mask) in single.masks { XCTAssertEqual(try ImageIO.read(mixedOut.appendingPathComponent(name)).voxels, mask, name) }

        let coarse = try predict("coarse", ["--step-size", "1", "--window-batch", "4"])
        XCTAssertEqual(coarse.masks.count, 5)
        for (args, expected) in [(["--step-size", "0"], "--step-size must be from 0.05 to 1"), (["--step-size", "1e-9"], "--step-size must be from 0.05 to 1"), (["--window-batch", "0"], "--window-batch must be at least 1")] {
            let bad = try medseg(["predict", "--run", run.path, "--input", input, "--out", temp.appendingPathComponent("bad").path] + args,
                                 expectSuccess: false)
            XCTAssertTrue(bad.output.contains(expected), bad.output)
        }
    }
}
