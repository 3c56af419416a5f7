import ArgumentParser
import Foundation
import MedSegDist
import MedSegTrain
import Torch

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a segmentation network on a data set in the raw layout.",
        discussion: "Settings come from --preset, then --config FILE.yaml, then the options given here. The fully resolved config is written to RUN/config.yaml.")

    @Option(help: "Data set folder (dataset.json, imagesTr, labelsTr).") var dataset: String?
    @Option(help: "Model: unet.") var model: String?
    @Option(help: "Run folder for checkpoints and logs.") var out: String?
    @Option(help: "A configuration of plans.json (2d, 3d_fullres: its network, patch and batch on the preprocessed cases; the run goes to OUT/fold_N), or a YAML file with settings.") var config: String?
    @Option(help: "plans.json for --config NAME (default: DATASET/plans.json).") var plans: String?
    @Option(help: "For --config 3d_cascade_fullres: the experiment folder of the trained 3d_lowres folds.") var previousStage: String?
    @Option(help: "Named recipe: \(TrainingPresets.names.joined(separator: ", ")).") var preset: String?
    @Option(help: "Epochs.") var epochs: Int?
    @Option(help: "Iterations per epoch.") var iterations: Int?
    @Option(help: "Batch size (per process).") var batchSize: Int?
    @Option(help: "Patch size, e.g. 128,128.", transform: parseInts) var patchSize: [Int]?
    @Option(help: "Base width of the network (ViT width for setr_mla).") var features: Int?
    @Option(help: "Levels of the network (ViT blocks for setr_mla).") var depth: Int?
    @Flag(help: "Train the lower-resolution outputs too (unetpp, plainunet).") var deepSupervision = false
    @Option(help: "Learning rate.") var lr: Double?
    @Option(help: "sgd, adam or adamw.") var optimizer: String?
    @Option(help: "poly, cosine, step or constant.") var scheduler: String?
    @Option(help: "Cross-validation fold: 0..4, or all (train and validate on every case).", transform: parseFold) var fold: Int?
    @Option(help: "Validate every N epochs.") var valEvery: Int?
    @Option(help: "Keep a checkpoint every N epochs.") var saveEvery: Int?
    @Option(help: "Random seed.") var seed: Int?
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?
    @Option(help: "Continue a run: its folder or a checkpoint file.") var resume: String?
    @Flag(name: .customLong("continue"), help: "Continue the run in --out (OUT/fold_N with a planned --config) from its latest checkpoint.") var continueTraining = false
    @Flag(help: "Only validate the trained run in --out (final checkpoint, else latest) into its validation/ folder.") var validationOnly = false
    @Flag(help: "Also write the final validation's probabilities (for ensembles in `medseg find-best`).") var saveProbabilities = false
    @Flag(help: "Final validation without mirror test-time augmentation (8x fewer passes in 3D).") var noMirror = false
    @Option(help: "cpu, cuda or cuda:N.") var device = "cpu"
    @Option(help: "Pretrained encoder weights (.pth or .safetensors) for setr_mla's ViT-B/16.") var encoderWeights: String?
    @Option(help: "Processes to start on this node (data-parallel ranks; --batch-size is per process).") var nprocPerNode: Int?
    @Option(help: "Nodes taking part.") var nnodes = 1
    @Option(help: "This node's index, 0..nnodes-1.") var nodeRank = 0
    @Option(help: "Address of node 0, where rank 0 hosts the rendezvous.") var masterAddr = "127.0.0.1"
    @Option(help: "Rendezvous port on the master (0: pick a free one, single node only).") var masterPort = 29500
    @Option(help: "Restart the whole group from the latest checkpoint up to this many times when a rank fails.") var maxRestarts = 0
    @Option(help: "Seconds a rank waits for the others in a collective before it gives up.") var distTimeout: Double = 120

    /// Options that concern only the launcher; launched ranks get the rest of the command line.
    static let launcherOptions: Set<String> = ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port", "--max-restarts"]

    func run() throws {
        let environment = try DistributedEnvironment.fromEnvironment()
        if environment == nil, nprocPerNode != nil || nnodes > 1 {
            try launch()
            return
        }
        var c = TrainingConfig()
        if let preset { c = try TrainingPresets.config(preset) }
        if let plannedName {
            guard let dataset else { throw ValidationError("--config \(plannedName) needs --dataset DIR (where plans.json is)") }
            let root = URL(fileURLWithPath: dataset)
            let plansURL = plans.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent("plans.json")
            c = c.applying(try PlannedSetup.load(plans: plansURL, configuration: plannedName,
                                                 fingerprint: root.appendingPathComponent("dataset_fingerprint.json")), plansFile: plansURL)
        } else if let config {
            let text: String
            do { text = try String(contentsOfFile: config, encoding: .utf8) } catch { throw ValidationError("\(config): cannot read the config file") }
            c = try c.merging(yaml: text, source: config)
        }
        if let model { c.model = model }
        if let epochs { c.epochs = epochs }
        if let iterations { c.iterations = iterations }
        if let batchSize { c.batch_size = batchSize }
        if let patchSize { c.patch_size = patchSize; c.dims = patchSize.count }
        if let features { c.features = features }
        if let depth { c.depth = depth }
        if deepSupervision { c.deep_supervision = true }
        if let lr { c.lr = lr }
        if let optimizer { c.optimizer = optimizer }
        if let scheduler { c.scheduler = scheduler }
        if let fold { c.fold = fold }
        if let valEvery { c.val_every = valEvery }
        if let saveEvery { c.save_every = saveEvery }
        if let seed { c.seed = seed }
        if let threads { c.threads = threads }
        if let encoderWeights { c.encoder_weights = encoderWeights }
        if saveProbabilities { c.save_probabilities = true }
        if noMirror { c.validation_mirroring = false }
        if let previousStage { c.previous_stage = URL(fileURLWithPath: previousStage).standardizedFileURL.path }
        try c.validate(source: "command line")

        // A planned configuration's runs are folds of one experiment folder, as nnU-Net lays them out.
        let outURL = out.map { URL(fileURLWithPath: $0) }.map { plannedName == nil ? $0 : $0.appendingPathComponent(Self.foldFolder(c.fold)) }
        if continueTraining || validationOnly {
            guard let outURL, resume == nil else { throw ValidationError("--continue and --validation-only take the run from --out RUN (not --resume)") }
            guard FileManager.default.fileExists(atPath: TrainingRun.checkpointURL(outURL, "checkpoint_latest").path) else {
                throw ValidationError("\(outURL.path) holds no checkpoint to \(validationOnly ? "validate" : "continue from")")
            }
        }
        let resumeURL = resume.map { URL(fileURLWithPath: $0) } ?? ((continueTraining || validationOnly) ? outURL : nil)
        guard let runFolder = outURL ?? resumeURL.map(Self.runFolder(of:)) else {
            throw ValidationError("--out RUN is required (or --resume RUN)")
        }
        let datasetURL: URL
        if let dataset { datasetURL = URL(fileURLWithPath: dataset) } else if let saved = Self.savedDataset(runFolder) { datasetURL = saved } else {
            throw ValidationError("--dataset DIR is required")
        }
        try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
        try Data(datasetURL.path.utf8).write(to: runFolder.appendingPathComponent("dataset_path.txt"))
        // Each local rank of a data-parallel run trains on its own GPU ("cuda" means cuda:LOCAL_RANK there).
        var dev = try Device(parsing: device)
        if let environment, dev.isCUDA, device.lowercased() == "cuda" { dev = .cuda(environment.localRank) }
        let run = TrainingRun(config: c, datasetFolder: datasetURL, runFolder: runFolder, resume: resumeURL, device: dev)
        run.epochsOverride = resumeURL == nil ? nil : epochs
        run.distributed = environment
        run.distributedTimeout = distTimeout
        run.validationOnly = validationOnly
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
        var args = Array(CommandLine.arguments.dropFirst())
        var i = 0
        while i < args.count {
            let a = args[i]
            if let eq = a.firstIndex(of: "="), Self.launcherOptions.contains(String(a[..<eq])) { args.remove(at: i); continue }
            if Self.launcherOptions.contains(a) { args.removeSubrange(i..<min(i + 2, args.count)); continue }
            i += 1
        }
        let planned = plannedName != nil
        let runFolder = out.map { planned ? URL(fileURLWithPath: $0).appendingPathComponent(Self.foldFolder(fold ?? 0)).path : $0 }
            ?? resume.map { Self.runFolder(of: URL(fileURLWithPath: $0)).path }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let launcher = Launcher(executable: executable,
                                options: .init(nprocPerNode: nproc, nnodes: nnodes, nodeRank: nodeRank, masterAddress: masterAddr,
                                               masterPort: masterPort, maxRestarts: maxRestarts)) { restart in
            // After a failure the group continues from the latest checkpoint of the run.
            guard restart > 0, let runFolder, resume == nil, !continueTraining,
                  FileManager.default.fileExists(atPath: TrainingRun.checkpointURL(URL(fileURLWithPath: runFolder), "checkpoint_latest").path)
            else { return args }
            return args + (planned ? ["--continue"] : ["--resume", runFolder])
        }
        let status = try launcher.run()
        if status != 0 { throw ExitCode(status) }
    }

    /// --config names a configuration of plans.json (else it is a YAML file).
    var plannedName: String? { config.flatMap { PlannedSetup.configurationNames.contains($0) ? $0 : nil } }

    static func foldFolder(_ fold: Int) -> String { fold < 0 ? "fold_all" : "fold_\(fold)" }

    static func isLostPeer(_ message: String) -> Bool {
        ["Connection reset", "Connection closed", "Broken pipe", "Timed out", "timed out", "gloo"].contains { message.contains($0) }
    }

    static func runFolder(of resume: URL) -> URL {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: resume.path, isDirectory: &isDir)
        return isDir.boolValue ? resume : resume.deletingLastPathComponent()
    }

    static func savedDataset(_ run: URL) -> URL? {
        (try? String(contentsOf: run.appendingPathComponent("dataset_path.txt"), encoding: .utf8)).map { URL(fileURLWithPath: $0) }
    }
}
