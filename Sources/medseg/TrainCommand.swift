import ArgumentParser
import Foundation
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
    @Option(help: "YAML file with settings.") var config: String?
    @Option(help: "Named recipe: \(Presets.names.joined(separator: ", ")).") var preset: String?
    @Option(help: "Epochs.") var epochs: Int?
    @Option(help: "Iterations per epoch.") var iterations: Int?
    @Option(help: "Batch size (per process).") var batchSize: Int?
    @Option(help: "Patch size, e.g. 128,128.", transform: parseInts) var patchSize: [Int]?
    @Option(help: "Base width of the network.") var features: Int?
    @Option(help: "Learning rate.") var lr: Double?
    @Option(help: "sgd, adam or adamw.") var optimizer: String?
    @Option(help: "poly, cosine, step or constant.") var scheduler: String?
    @Option(help: "Cross-validation fold.") var fold: Int?
    @Option(help: "Validate every N epochs.") var valEvery: Int?
    @Option(help: "Keep a checkpoint every N epochs.") var saveEvery: Int?
    @Option(help: "Random seed.") var seed: Int?
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?
    @Option(help: "Continue a run: its folder or a checkpoint file.") var resume: String?
    @Option(help: "cpu, cuda or cuda:N.") var device = "cpu"

    func run() throws {
        var c = TrainingConfig()
        if let preset {
            guard let yaml = Presets.yaml[preset] else { throw ValidationError("unknown preset '\(preset)'; available: \(Presets.names.joined(separator: ", "))") }
            c = try c.merging(yaml: yaml, source: "preset \(preset)")
        }
        if let config {
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
        if let lr { c.lr = lr }
        if let optimizer { c.optimizer = optimizer }
        if let scheduler { c.scheduler = scheduler }
        if let fold { c.fold = fold }
        if let valEvery { c.val_every = valEvery }
        if let saveEvery { c.save_every = saveEvery }
        if let seed { c.seed = seed }
        if let threads { c.threads = threads }
        try c.validate(source: "command line")

        let resumeURL = resume.map { URL(fileURLWithPath: $0) }
        guard let runFolder = out.map({ URL(fileURLWithPath: $0) }) ?? resumeURL.map(Self.runFolder(of:)) else {
            throw ValidationError("--out RUN is required (or --resume RUN)")
        }
        let datasetURL: URL
        if let dataset { datasetURL = URL(fileURLWithPath: dataset) } else if let saved = Self.savedDataset(runFolder) { datasetURL = saved } else {
            throw ValidationError("--dataset DIR is required")
        }
        try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
        try Data(datasetURL.path.utf8).write(to: runFolder.appendingPathComponent("dataset_path.txt"))
        let run = TrainingRun(config: c, datasetFolder: datasetURL, runFolder: runFolder, resume: resumeURL, device: try Device(parsing: device))
        run.epochsOverride = resumeURL == nil ? nil : epochs
        try run.run()
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
