import ArgumentParser
import Foundation
import MedSegDist
import MedSegModels
import MedSegTrain
import Torch

struct TrainCommand: ParsableCommand {
    static var configuration: CommandConfiguration { CommandConfiguration(
        commandName: "train",
        abstract: "Train a segmentation network on a data set in the raw layout.",
        discussion: """
            Settings come from --preset, then --config FILE.yaml, then the options given here. The fully resolved config is written to RUN/config.yaml.

            TRAINING OPTIONS (each also a key of config files):
            \(TrainingOptionArguments.help)
            """) }

    @Option(help: "Data set folder (dataset.json, imagesTr, labelsTr).") var dataset: String?
    @Option(help: "Run folder for checkpoints and logs.") var out: String?
    @Option(help: "A configuration of plans.json (2d, 3d_fullres: its network, patch and batch on the preprocessed cases; the run goes to OUT/fold_N), or a YAML file with settings.") var config: String?
    @Option(help: "plans.json for --config NAME, MedSeg's or nnU-Net's own (default: DATASET/plans.json).") var plans: String?
    @Option(help: "Named recipe: \(TrainingPresets.names.joined(separator: ", ")).") var preset: String?
    /// Every option of `TrainingConfig`, by its flag (listed under TRAINING OPTIONS in --help).
    @Argument(parsing: .allUnrecognized, help: .hidden) var trainingOptions: [String] = []
    @Flag(name: .customLong("dbs"), help: "Data-parallel runs: the configured (or planned) batch size is the global batch, split over the processes (seed 001's --dbs).")
    var distributeBatch = false
    @Flag(help: "Record 5 training iterations with libtorch's profiler (--profile-steps N for another count).") var profile = false
    @Flag(help: "Final validation without mirror test-time augmentation (8x fewer passes in 3D; --no-validation-mirroring).") var noMirror = false
    @Option(help: "Continue a run: its folder or a checkpoint file.") var resume: String?
    @Flag(name: .customLong("continue"), help: "Continue the run in --out (OUT/fold_N with a planned --config) from its latest checkpoint.") var continueTraining = false
    @Flag(help: "Only validate the trained run in --out (final checkpoint, else latest) into its validation/ folder.") var validationOnly = false
    @Flag(help: "Start afresh in an --out folder that holds a run (its checkpoints are replaced).") var overwrite = false
    @Option(help: "auto (cuda:LOCAL_RANK where CUDA is available, else cpu), cpu, cuda or cuda:N.") var device = "auto"
    /// Seed 003's --benchmark is a throughput run: that is `medseg benchmark --dataset`.
    @Flag(name: .customLong("benchmark"), help: .hidden) var throughputRun = false
    @Option(parsing: .unconditional, help: "Processes to start on this node (data-parallel ranks; --batch-size is per process).") var nprocPerNode: Int?
    @Option(parsing: .unconditional, help: "Nodes taking part.") var nnodes = 1
    @Option(parsing: .unconditional, help: "This node's index, 0..nnodes-1.") var nodeRank = 0
    @Option(help: "Address of node 0, where rank 0 hosts the rendezvous.") var masterAddr = "127.0.0.1"
    @Option(parsing: .unconditional, help: "Rendezvous port on the master (0: pick a free one, single node only; default 29500, under srun derived from the job id).") var masterPort: Int?
    @Option(parsing: .unconditional, help: "Restart the whole group from the latest checkpoint up to this many times when a rank fails.") var maxRestarts = 0
    @Option(help: "Seconds a rank waits for the others in a collective before it gives up.") var distTimeout: Double = 120

    /// Options that concern only the launcher; launched ranks get the rest of the command line.
    static let launcherOptions: Set<String> = ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port", "--max-restarts"]

    func validate() throws {
        if let nprocPerNode, nprocPerNode < 1 { throw ValidationError("--nproc-per-node must be at least 1, got \(nprocPerNode)") }
        guard nnodes >= 1 else { throw ValidationError("--nnodes must be at least 1, got \(nnodes)") }
        guard (0..<nnodes).contains(nodeRank) else { throw ValidationError("--node-rank must be 0 to \(nnodes - 1) for --nnodes \(nnodes), got \(nodeRank)") }
        if let masterPort, !(0...65535).contains(masterPort) {
            throw ValidationError("--master-port must be a TCP port, 0 to 65535 (0: a free one), got \(masterPort)")
        }
        if throughputRun {
            throw ValidationError("train has no --benchmark: time training on a data set's batches with `medseg benchmark --dataset DIR`, "
                                  + "or pick cuDNN's fastest convolutions with --cudnn-benchmark")
        }
    }

    func run() throws {
        // srun's tasks are ranks themselves, unless this command line starts its own.
        let ownLauncher = nprocPerNode != nil || nnodes > 1
        let environment = try DistributedEnvironment.fromEnvironment(slurm: !ownLauncher, masterPort: masterPort)
        if environment == nil, ownLauncher {
            try launch()
            return
        }
        var c = TrainingConfig()
        var notes: [String] = []
        if let preset, plannedName == nil { c = try TrainingPresets.config(preset) }
        if let plannedName {
            guard let dataset else { throw ValidationError("--config \(plannedName) needs --dataset DIR (where plans.json is)") }
            let root = URL(fileURLWithPath: dataset)
            let plansURL = plans.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent("plans.json")
            let setup = try PlannedSetup.load(plans: plansURL, configuration: plannedName,
                                              fingerprint: root.appendingPathComponent("dataset_fingerprint.json"))
            if let preset {
                let merged = try PresetOnPlan(preset: preset, setup: setup, plansFile: plansURL)
                c = merged.config
                notes = merged.report.map { "preset \(preset) on plan \(plannedName): \($0)" }
            } else {
                c = c.applying(setup, plansFile: plansURL)
            }
        } else if let config {
            let text: String
            do { text = try String(contentsOfFile: config, encoding: .utf8) } catch { throw ValidationError("\(config): cannot read the config file") }
            c = try c.merging(yaml: text, source: config)
        }
        // The keys this command line sets: on resume the saved run's settings win, and these are reported.
        var options = try TrainingOptionArguments(parsing: trainingOptions)
        if let patch = options.values["patch_size"] as? [Int] { options.set("dims", patch.count) }
        if options.values["threads"] == nil, let threads = SLURMEnvironment.cpusPerTask(ProcessInfo.processInfo.environment) { options.set("threads", threads) }
        if noMirror { options.set("validation_mirroring", false) }
        if profile, c.profile_steps == 0, options.values["profile_steps"] == nil { options.set("profile_steps", 5) }
        if distributeBatch {
            guard options.values["global_batch_size"] == nil else { throw ValidationError("give --global-batch-size N or --dbs, not both") }
            options.set("global_batch_size", options.values["batch_size"] ?? c.batch_size)
        }
        do {
            c = try c.setting(options.values, source: "command line")
        } catch let error as ConfigError {
            throw ValidationError(error.description)
        }
        let given = options.keys.subtracting(["dims"])
        if plannedName != nil && preset == nil { c = c.ownNetworkOnPlan(keeping: given) }
        try c.validate(source: "command line")

        // A planned configuration's runs are folds of one experiment folder, as nnU-Net lays them out.
        let outURL = out.map { URL(fileURLWithPath: $0) }.map { plannedName == nil ? $0 : ExperimentFolder($0).fold(c.fold).url }
        if continueTraining || validationOnly {
            guard let outURL, resume == nil else { throw ValidationError("--continue and --validation-only take the run from --out RUN (not --resume)") }
            guard RunFolder(outURL).hasCheckpoint(.latest) else {
                throw ValidationError("\(outURL.path) holds no checkpoint to \(validationOnly ? "validate" : "continue from")")
            }
        }
        let resumeURL = resume.map { URL(fileURLWithPath: $0) } ?? ((continueTraining || validationOnly) ? outURL : nil)
        guard let runFolder = outURL ?? resumeURL.map({ RunFolder.containing($0).url }) else {
            throw ValidationError("--out RUN is required (or --resume RUN)")
        }
        if resumeURL == nil, environment == nil { try Self.refuseToReplace(RunFolder(runFolder), overwrite: overwrite) }
        let datasetURL: URL
        if let dataset { datasetURL = URL(fileURLWithPath: dataset) } else if let saved = RunFolder(runFolder).savedDataset { datasetURL = saved } else {
            throw ValidationError("--dataset DIR is required")
        }
        // Each local rank of a data-parallel run trains on its own GPU ("cuda" means cuda:LOCAL_RANK there).
        let dev = try Device.resolve(device, localRank: environment?.localRank ?? 0)
        let start: TrainingRun.Start = validationOnly ? .validateOnly(resumeURL!) : resumeURL.map { .resume(from: $0, overrides: given) } ?? .fresh
        let run = TrainingRun(config: c, datasetFolder: datasetURL, runFolder: runFolder, start: start, device: dev,
                              options: .init(distributed: environment, distributedTimeout: distTimeout, notes: notes))
        do {
            try run.run()
        } catch let error as TorchError where environment != nil && Self.isLostPeer(error.message) {
            throw TorchError("rank \(environment!.rank) lost contact with the other ranks (one of them stopped or is unreachable): "
                             + (error.message.split(separator: "\n").first.map(String.init) ?? ""))
        }
    }

    /// Starts the local ranks of this node with the same command line and supervises them.
    private func launch() throws {
        let nproc = nprocPerNode ?? 1
        guard nproc >= 1, nnodes >= 1, (0..<nnodes).contains(nodeRank) else {
            throw ValidationError("--nproc-per-node must be at least 1 and --node-rank within 0..<--nnodes")
        }
        let args = SelfLaunch.arguments(removing: Self.launcherOptions)
        let planned = plannedName != nil
        let launchedFold = try TrainingOptionArguments(parsing: trainingOptions).values["fold"] as? Int ?? 0
        let runFolder = out.map { planned ? ExperimentFolder(URL(fileURLWithPath: $0)).fold(launchedFold).url : URL(fileURLWithPath: $0) }
            ?? resume.map { RunFolder.containing(URL(fileURLWithPath: $0)).url }
        if let runFolder, resume == nil, !continueTraining, !validationOnly { try Self.refuseToReplace(RunFolder(runFolder), overwrite: overwrite) }
        try SelfLaunch.ranks(.init(nprocPerNode: nproc, nnodes: nnodes, nodeRank: nodeRank, masterAddress: masterAddr,
                                   masterPort: masterPort ?? 29500, maxRestarts: maxRestarts)) { restart in
            // After a failure the group continues from the latest checkpoint of the run.
            guard restart > 0, let runFolder, resume == nil, !continueTraining, RunFolder(runFolder).hasCheckpoint(.latest) else { return args }
            return args + (planned ? ["--continue"] : ["--resume", runFolder.path])
        }
    }

    /// --config names a configuration of plans.json (else it is a YAML file).
    var plannedName: String? { config.flatMap { PlannedSetup.configurationNames.contains($0) ? $0 : nil } }

    /// A fresh start must not silently replace a run: refuse unless --overwrite, which removes
    /// the old run's checkpoints so that none of them can be mistaken for the new run's.
    static func refuseToReplace(_ folder: RunFolder, overwrite: Bool) throws {
        guard folder.holdsRun else { return }
        guard overwrite else {
            throw ValidationError("\(folder.url.path) already holds a training run (\(folder.hasCheckpoint(.final) ? "finished" : "checkpoints, config.yaml")); "
                                  + "continue it with --continue (planned --config) or --resume \(folder.url.path), or start afresh with --overwrite")
        }
        try folder.removeCheckpoints()
    }

    static func isLostPeer(_ message: String) -> Bool {
        ["Connection reset", "Connection closed", "Broken pipe", "Timed out", "timed out", "gloo"].contains { message.contains($0) }
    }
}
