import ArgumentParser
import Foundation
import MedSegDist
import MedSegModels
import MedSegTrain
import Torch

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a segmentation network on a data set in the raw layout.",
        discussion: "Settings come from --preset, then --config FILE.yaml, then the options given here. The fully resolved config is written to RUN/config.yaml.")

    @Option(help: "Data set folder (dataset.json, imagesTr, labelsTr).") var dataset: String?
    @Option(help: "Model: \(ModelName.allCases.map(\.rawValue).joined(separator: ", ")).") var model: ModelName?
    @Option(help: "Run folder for checkpoints and logs.") var out: String?
    @Option(help: "A configuration of plans.json (2d, 3d_fullres: its network, patch and batch on the preprocessed cases; the run goes to OUT/fold_N), or a YAML file with settings.") var config: String?
    @Option(help: "plans.json for --config NAME, MedSeg's or nnU-Net's own (default: DATASET/plans.json).") var plans: String?
    @Option(help: "For --config 3d_cascade_fullres: the experiment folder of the trained 3d_lowres folds.") var previousStage: String?
    @Option(help: "Named recipe: \(TrainingPresets.names.joined(separator: ", ")).") var preset: String?
    @Option(parsing: .unconditional, help: "Epochs.") var epochs: Int?
    @Option(parsing: .unconditional, help: "Iterations per epoch.") var iterations: Int?
    @Option(parsing: .unconditional, help: "Batch size (per process).") var batchSize: Int?
    @Option(parsing: .unconditional, help: "Data-parallel runs: the batch of all processes together, split over them (nnU-Net's DDP trainer).")
    var globalBatchSize: Int?
    @Flag(name: .customLong("dbs"), help: "Data-parallel runs: the configured (or planned) batch size is the global batch, split over the processes (seed 001's --dbs).")
    var distributeBatch = false
    @Option(help: "Patch size, e.g. 128,128.", transform: parseInts) var patchSize: [Int]?
    @Option(help: "mednext: its published size, S, B, M or L (default B).") var modelSize: ModelSize?
    @Option(parsing: .unconditional, help: "mednext: its kernel size, 3 or 5 (default 3).") var kernelSize: Int?
    @Option(parsing: .unconditional, help: "Base width of the network (ViT width for setr_mla; default: the model's published width).") var features: Int?
    @Option(parsing: .unconditional, help: "Levels of the network (ViT blocks for setr_mla; default: the model's).") var depth: Int?
    @Flag(help: "Train the lower-resolution outputs too (unetpp, plainunet).") var deepSupervision = false
    @Option(parsing: .unconditional, help: "Learning rate.") var lr: Double?
    @Option(help: "sgd, adam, adamw or sophiag (Sophia-G, also \"sophia\"; keys rho and hessian_interval).") var optimizer: OptimizerName?
    @Option(help: "poly, cosine, step or constant.") var scheduler: SchedulerName?
    @Option(parsing: .unconditional, help: "Weight decay (L2 for sgd/adam, decoupled for adamw/sophiag).") var weightDecay: Double?
    @Option(help: "\(LossName.allCases.map(\.rawValue).joined(separator: ", ")) (auto: dice_ce for classes, bce_dice for binary or region outputs).")
    var loss: LossName?
    @Option(parsing: .unconditional, help: "Micro-batches whose gradients add up to one optimizer step (effective batch: batch size x N).")
    var gradAccumulation: Int?
    @Option(parsing: .unconditional, help: "Background threads making training batches (0: on the training thread).") var workers: Int?
    @Option(parsing: .unconditional, help: "Windows per network call when validating.") var valBatchSize: Int?
    @Option(parsing: .unconditional, help: "Tolerance in mm of the normalized surface Dice (NSD) in the final validation's summary (default 1).")
    var nsdTolerance: Double?
    @Option(parsing: .unconditional, help: "Early stopping: end the run when the validation metric has not improved for N epochs (0: never).")
    var patience: Int?
    @Flag(help: "Record 5 training iterations with libtorch's profiler into RUN/profile_trace.json (Chrome trace; key profile_steps for another count).")
    var profile = false
    @Flag(help: "Deterministic algorithms only: the same seed gives bit-identical weights (slower on GPUs; no --cudnn-benchmark).")
    var deterministic = false
    @Option(help: "Cross-validation fold: 0..4, or all (train and validate on every case).", transform: parseFold) var fold: Int?
    @Option(parsing: .unconditional, help: "Cross-validation folds (default 5; data sets with fewer cases get one fold per case).") var numFolds: Int?
    @Option(parsing: .unconditional, help: "Validate every N epochs.") var valEvery: Int?
    @Option(parsing: .unconditional, help: "Keep a checkpoint every N epochs.") var saveEvery: Int?
    @Option(parsing: .unconditional, help: "Random seed.") var seed: Int?
    @Option(parsing: .unconditional, help: "Intra-op threads (default: all cores).") var threads: Int?
    @Option(help: "Continue a run: its folder or a checkpoint file.") var resume: String?
    @Flag(name: .customLong("continue"), help: "Continue the run in --out (OUT/fold_N with a planned --config) from its latest checkpoint.") var continueTraining = false
    @Flag(help: "Only validate the trained run in --out (final checkpoint, else latest) into its validation/ folder.") var validationOnly = false
    @Flag(help: "Also write the final validation's probabilities (for ensembles in `medseg find-best`).") var saveProbabilities = false
    @Flag(help: "Final validation without mirror test-time augmentation (8x fewer passes in 3D).") var noMirror = false
    @Flag(help: "Start afresh in an --out folder that holds a run (its checkpoints are replaced).") var overwrite = false
    @Option(help: "auto (cuda:LOCAL_RANK where CUDA is available, else cpu), cpu, cuda or cuda:N.") var device = "auto"
    @Option(help: "fp32, or mixed precision: bf16 or fp16 (autocast, float32 weights; fp16 with loss scaling).") var precision: Precision?
    @Flag(help: "Channels-last memory layout of weights and batches.") var channelsLast = false
    @Flag(help: "SyncBatchNorm: batch statistics over all ranks of a data-parallel run (BatchNorm models).") var syncBn = false
    @Flag(help: "cuDNN benchmark mode: the fastest convolution algorithms for the run's shapes (GPU).") var cudnnBenchmark = false
    /// Seed 003's --benchmark is a throughput run: that is `medseg benchmark --dataset`.
    @Flag(name: .customLong("benchmark"), help: .hidden) var throughputRun = false
    @Option(help: "Pretrained encoder weights (.pth or .safetensors) for setr_mla's ViT-B/16.") var encoderWeights: String?
    @Option(help: "Fine-tune: start the whole network from these weights (a MedSeg checkpoint, .safetensors, or a PyTorch .pth such as nnU-Net's checkpoint_final.pth); tensors whose name and shape match are loaded, the log lists the rest.")
    var pretrainedWeights: String?
    @Flag(inversion: .prefixedNo, help: "setr_mla: keep the ViT encoder fixed (default), or train it too (--no-freeze-encoder, e.g. from scratch).")
    var freezeEncoder: Bool?
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
        if let numFolds, numFolds < 2 { throw ValidationError("--num-folds must be at least 2 (train on every case with --fold all), got \(numFolds)") }
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
        var given: Set<String> = []
        func set<T>(_ value: T?, _ key: String, _ apply: (inout TrainingConfig, T) -> Void) {
            guard let value else { return }
            apply(&c, value)
            given.insert(key)
        }
        set(model, "model") { $0.model = $1 }
        set(epochs, "epochs") { $0.epochs = $1 }
        set(iterations, "iterations") { $0.iterations = $1 }
        set(batchSize, "batch_size") { $0.batch_size = $1 }
        set(patchSize, "patch_size") { $0.patch_size = $1; $0.dims = $1.count }
        set(features, "features") { $0.features = $1 }
        set(depth, "depth") { $0.depth = $1 }
        set(deepSupervision ? true : nil, "deep_supervision") { $0.deep_supervision = $1 }
        set(lr, "lr") { $0.lr = $1 }
        set(optimizer, "optimizer") { $0.optimizer = $1 }
        set(scheduler, "scheduler") { $0.scheduler = $1 }
        set(fold, "fold") { $0.fold = $1 }
        set(numFolds, "num_folds") { $0.num_folds = $1 }
        set(valEvery, "val_every") { $0.val_every = $1 }
        set(saveEvery, "save_every") { $0.save_every = $1 }
        set(seed, "seed") { $0.seed = $1 }
        set(threads ?? SLURMEnvironment.cpusPerTask(ProcessInfo.processInfo.environment), "threads") { $0.threads = $1 }
        set(encoderWeights, "encoder_weights") { $0.encoder_weights = $1 }
        set(pretrainedWeights, "pretrained_weights") { $0.pretrained_weights = URL(fileURLWithPath: $1).standardizedFileURL.path }
        set(freezeEncoder, "freeze_encoder") { $0.freeze_encoder = $1 }
        set(modelSize, "model_size") { $0.model_size = $1 }
        set(kernelSize, "kernel_size") { $0.kernel_size = $1 }
        set(saveProbabilities ? true : nil, "save_probabilities") { $0.save_probabilities = $1 }
        set(noMirror ? false : nil, "validation_mirroring") { $0.validation_mirroring = $1 }
        set(precision, "precision") { $0.precision = $1 }
        set(channelsLast ? true : nil, "channels_last") { $0.channels_last = $1 }
        set(syncBn ? true : nil, "sync_bn") { $0.sync_bn = $1 }
        set(cudnnBenchmark ? true : nil, "cudnn_benchmark") { $0.cudnn_benchmark = $1 }
        set(weightDecay, "weight_decay") { $0.weight_decay = $1 }
        set(loss, "loss") { $0.loss = $1 }
        set(gradAccumulation, "grad_accumulation") { $0.grad_accumulation = $1 }
        set(workers, "workers") { $0.workers = $1 }
        set(valBatchSize, "val_batch_size") { $0.val_batch_size = $1 }
        set(nsdTolerance, "nsd_tolerance") { $0.nsd_tolerance = $1 }
        set(patience, "patience") { $0.patience = $1 }
        set(profile && c.profile_steps == 0 ? 5 : nil, "profile_steps") { $0.profile_steps = $1 }
        set(deterministic ? true : nil, "deterministic") { $0.deterministic = $1 }
        set(previousStage, "previous_stage") { $0.previous_stage = URL(fileURLWithPath: $1).standardizedFileURL.path }
        set(globalBatchSize, "global_batch_size") { $0.global_batch_size = $1 }
        if distributeBatch {
            guard globalBatchSize == nil else { throw ValidationError("give --global-batch-size N or --dbs, not both") }
            set(c.batch_size, "global_batch_size") { $0.global_batch_size = $1 }
        }
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
        let runFolder = out.map { planned ? ExperimentFolder(URL(fileURLWithPath: $0)).fold(fold ?? 0).url : URL(fileURLWithPath: $0) }
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
