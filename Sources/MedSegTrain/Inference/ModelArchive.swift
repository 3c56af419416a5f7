import Foundation
import MedSegData
import Torch
import ZIPFoundation

/// One deployable model file (`medseg export RUN model.zip`, `medseg predict --model model.zip`):
/// the chosen folds' checkpoints with their copies of plans.json and the fingerprint, the data
/// set's dataset.json, optional post-processing and the inference settings, in one zip that
/// `predict` uses directly. Prediction from it runs the very code of prediction from the run
/// folders, so the masks are the same, bit for bit.
public enum ModelArchive {
    /// `medseg_model.json`: what the archive holds and how it predicts.
    public struct Manifest: Codable, Equatable, Sendable {
        public static let fileName = "medseg_model.json"
        public static let currentFormat = "medseg-model-1"

        public var format = currentFormat
        /// The folds (fold_N folders in the archive), or empty for a single run in `run/`.
        public var folds: [String]
        /// The checkpoint each fold folder holds, as `predict --checkpoint` names it (best, final, latest).
        public var checkpoint: String
        public var configuration: String?
        public var mirror: Bool
        public var step_size: Double
        public var postprocessing: Bool
        public var created_by: String

        /// What `export` would never write, in words (nil: nothing): the command line's checks on
        /// the step size, and fold and checkpoint names of the archive's own folders only.
        public var problem: String? {
            if let problem = SlidingWindow.stepProblem(step_size) { return "has a step_size that \(problem), as \(Setting.named("step_size"))" }
            guard folds.count <= 100, Set(folds).count == folds.count else { return "lists \(folds.count) folds, or one twice" }
            for fold in folds where !(fold == "all" || (fold.count <= 4 && fold.allSatisfy(\.isASCII) && fold.allSatisfy(\.isNumber))) {
                return "names fold '\(fold.prefix(100))'; export writes fold numbers or 'all'"
            }
            let epochFile = checkpoint.hasPrefix("checkpoint_epoch_") && checkpoint.hasSuffix(".\(Checkpoint.fileExtension)")
                && checkpoint.dropFirst("checkpoint_epoch_".count).dropLast(Checkpoint.fileExtension.count + 1).allSatisfy { $0.isASCII && $0.isNumber }
            guard CheckpointName(named: checkpoint) != nil || epochFile else {
                return "names checkpoint '\(checkpoint.prefix(100))'; export writes best, final, latest or checkpoint_epoch_N.\(Checkpoint.fileExtension)"
            }
            if let configuration, configuration.isEmpty || configuration.count > 100 || configuration.contains("/") || configuration.contains("..") {
                return "names configuration '\(configuration.prefix(100))', not a configuration of plans.json"
            }
            return nil
        }

        public init(folds: [String], checkpoint: String, configuration: String?, mirror: Bool, step_size: Double, postprocessing: Bool,
                    created_by: String) {
            self.folds = folds
            self.checkpoint = checkpoint
            self.configuration = configuration
            self.mirror = mirror
            self.step_size = step_size
            self.postprocessing = postprocessing
            self.created_by = created_by
        }
    }

    /// Files a fold folder keeps beside its checkpoint (the planned preprocessing, the settings).
    static let companions = [ExperimentPlans.fileName, DatasetFingerprint.fileName, "config.yaml"]

    /// Writes `destination` (refused if it exists) from experiment or run folder `run`.
    public static func export(run: URL, folds requested: [String], checkpoint: CheckpointName, postprocessing: URL?, mirror: Bool,
                              stepSize: Double, version: String, to destination: URL) throws -> Manifest {
        guard !FileManager.default.fileExists(atPath: destination.path) else {
            throw TrainingError("\(destination.path) already exists; choose another file or remove it")
        }
        let staging = FileManager.default.temporaryDirectory.appendingPathComponent("medseg-export-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: staging) }
        if NNUNetModelFolder.isModelFolder(run) {
            return try exportNNUNet(NNUNetModelFolder(run), folds: requested, checkpoint: checkpoint, postprocessing: postprocessing, mirror: mirror,
                                    stepSize: stepSize, version: version, staging: staging, to: destination)
        }
        let folds = try TrainedModels.defaultFolds(run: run, folds: requested, checkpoint: checkpointArgument(checkpoint))
        let sources = folds.isEmpty ? [("run", run)] : folds.map { ("fold_\($0)", ExperimentFolder(run).fold(named: $0).url) }
        var configuration: String?
        var datasetJSON: URL?
        for (name, folder) in sources {
            let file = RunFolder(folder).checkpoint(checkpoint)
            guard FileManager.default.fileExists(atPath: file.path) else { throw TrainingError("\(file.path): no such checkpoint") }
            let state = try Checkpoint.load(file).state
            if let name = state.model.configuration, try PlannedSetup.load(runFolder: folder, configuration: name).plan.previous_stage != nil {
                throw TrainingError("\(folder.path) is a cascade stage: export its 3d_lowres experiment and predict the stages one after the other")
            }
            configuration = state.model.configuration
            let target = staging.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: file, to: target.appendingPathComponent(file.lastPathComponent))
            for companion in companions where FileManager.default.fileExists(atPath: folder.appendingPathComponent(companion).path) {
                try FileManager.default.copyItem(at: folder.appendingPathComponent(companion), to: target.appendingPathComponent(companion))
            }
            if datasetJSON == nil, let saved = RunFolder(folder).savedDataset {
                let url = saved.appendingPathComponent("dataset.json")
                if FileManager.default.fileExists(atPath: url.path) { datasetJSON = url }
            }
        }
        if let datasetJSON { try FileManager.default.copyItem(at: datasetJSON, to: staging.appendingPathComponent("dataset.json")) }
        let manifest = Manifest(folds: folds, checkpoint: checkpointArgument(checkpoint), configuration: configuration, mirror: mirror,
                                step_size: stepSize, postprocessing: postprocessing != nil, created_by: "MedSeg \(version)")
        try pack(staging, manifest: manifest, postprocessing: postprocessing, to: destination)
        return manifest
    }

    /// A model folder nnU-Net trained, packed as it is (its plans, dataset.json, fingerprint and
    /// the folds' .pth checkpoints): `predict --model` runs it as `predict --run` runs the folder.
    static func exportNNUNet(_ model: NNUNetModelFolder, folds requested: [String], checkpoint: CheckpointName, postprocessing: URL?, mirror: Bool,
                             stepSize: Double, version: String, staging: URL, to destination: URL) throws -> Manifest {
        let name = checkpointArgument(checkpoint)
        let folds = try model.folds(requested, checkpoint: name)
        let fm = FileManager.default
        try fm.createDirectory(at: staging, withIntermediateDirectories: true)
        for file in [ExperimentPlans.fileName, "dataset.json", DatasetFingerprint.fileName] {
            let source = model.root.appendingPathComponent(file)
            guard fm.fileExists(atPath: source.path) else { throw TrainingError("\(source.path): missing from this nnU-Net model folder") }
            try fm.copyItem(at: source, to: staging.appendingPathComponent(file))
        }
        let plans = try ExperimentPlans.load(model.root.appendingPathComponent(ExperimentPlans.fileName))
        var configuration: String?
        for fold in folds {
            let file = model.root.appendingPathComponent("fold_\(fold)").appendingPathComponent(NNUNetModelFolder.fileName(name))
            guard fm.fileExists(atPath: file.path) else { throw TrainingError("\(file.path): no such checkpoint") }
            let trained = try NNUNetModelFolder.configuration(of: PyTorchCheckpoint.load(file), file: file, folder: model.root)
            if plans.configurations[trained]?.previous_stage != nil {
                throw TrainingError("\(model.root.path) is nnU-Net's cascade stage: predict it with \(Setting.named("run")) and \(Setting.named("previous_stage")), one folder behind the other")
            }
            configuration = trained
            let target = staging.appendingPathComponent("fold_\(fold)")
            try fm.createDirectory(at: target, withIntermediateDirectories: true)
            try fm.copyItem(at: file, to: target.appendingPathComponent(file.lastPathComponent))
        }
        let manifest = Manifest(folds: folds, checkpoint: name, configuration: configuration, mirror: mirror, step_size: stepSize,
                                postprocessing: postprocessing != nil, created_by: "MedSeg \(version) from an nnU-Net model")
        try pack(staging, manifest: manifest, postprocessing: postprocessing, to: destination)
        return manifest
    }

    /// The post-processing and manifest into `staging`, zipped beside `destination` and moved into place.
    private static func pack(_ staging: URL, manifest: Manifest, postprocessing: URL?, to destination: URL) throws {
        if let postprocessing {
            // Refused here if broken, not at prediction time; nnU-Net's .pkl/.json go in as MedSeg's JSON.
            try Postprocessing.load(postprocessing).write(to: staging.appendingPathComponent(Postprocessing.fileName))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(to: staging.appendingPathComponent(Manifest.fileName))
        // Written beside the destination and moved into place: a crash leaves no half archive.
        let partial = destination.deletingLastPathComponent().appendingPathComponent(".\(destination.lastPathComponent).partial-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: partial) }
        try FileManager.default.zipItem(at: staging, to: partial, shouldKeepParent: false, compressionMethod: .deflate)
        try FileManager.default.moveItem(at: partial, to: destination)
    }

    /// An archive unpacked for prediction; `remove()` deletes the unpacked files.
    public struct Opened {
        public let root: URL
        public let manifest: Manifest
        /// The model file it was unpacked from.
        public let file: URL
        public var modelFolder: URL { manifest.folds.isEmpty ? root.appendingPathComponent("run") : root }
        public var postprocessing: URL? { manifest.postprocessing ? root.appendingPathComponent(Postprocessing.fileName) : nil }
        public func remove() { try? FileManager.default.removeItem(at: root) }

        /// An error's text with the unpacked (temporary) files named as the model file's entries.
        public func describe(_ error: Error) -> String {
            "\(error)".replacingOccurrences(of: root.path, with: file.path)
        }
    }

    public static func open(_ url: URL) throws -> Opened {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TrainingError("\(url.path): no such model file") }
        if let problem = RegularFile.problem(url) { throw TrainingError("\(url.path): \(problem)") }
        let notAZip = "not a readable zip archive; make one with `medseg export RUN \(url.lastPathComponent)`"
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch { throw TrainingError("\(url.path): \(notAZip)") }
        // Every entry stays inside the folder it unpacks to, and the whole fits a sane size.
        var total: UInt64 = 0
        for entry in archive {
            let parts = entry.path.split(separator: "/")
            guard entry.type != .symlink, !entry.path.hasPrefix("/"), !parts.contains(".."), !entry.path.contains("\\") else {
                throw TrainingError("\(url.path): its entry '\(entry.path.prefix(200))' would unpack outside the model (not a file `medseg export` writes)")
            }
            total += UInt64(entry.uncompressedSize)
        }
        guard total <= maxUnpackedBytes else {
            throw TrainingError("\(url.path): unpacks to \(total >> 20) MiB, more than a model file holds (\(maxUnpackedBytes >> 30) GiB)")
        }
        guard let manifestEntry = archive[Manifest.fileName], manifestEntry.type == .file else {
            throw TrainingError("\(url.path): no \(Manifest.fileName) inside; not a model made by `medseg export`")
        }
        var text = Data()
        do {
            _ = try archive.extract(manifestEntry) { chunk in
                text.append(chunk)
                if text.count > 1 << 20 { throw DataError("longer than 1 MiB") }
            }
        } catch {
            throw TrainingError("\(url.path): its \(Manifest.fileName) cannot be unpacked (\(error))")
        }
        let manifest: Manifest
        do { manifest = try JSONFile.decode(Manifest.self, from: text) } catch {
            throw TrainingError("\(url.path): its \(Manifest.fileName) is invalid: \((error as? DataError)?.problem ?? "\(error)")")
        }
        guard manifest.format == Manifest.currentFormat else {
            throw TrainingError("\(url.path): model format '\(manifest.format.prefix(100))'; this MedSeg reads \(Manifest.currentFormat)")
        }
        if let problem = manifest.problem { throw TrainingError("\(url.path): its \(Manifest.fileName) \(problem)") }
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("medseg-model-\(UUID().uuidString)")
        do {
            try FileManager.default.unzipItem(at: url, to: root)
        } catch {
            try? FileManager.default.removeItem(at: root)
            throw TrainingError("\(url.path): \(notAZip) (\(error.localizedDescription))")
        }
        return Opened(root: root, manifest: manifest, file: url)
    }

    /// More than any model file holds unpacked (a few checkpoints of at most a few GiB).
    static let maxUnpackedBytes: UInt64 = 64 << 30

    /// The name `predict --checkpoint` takes for a checkpoint kind.
    static func checkpointArgument(_ name: CheckpointName) -> String {
        switch name {
        case .best: return "best"
        case .final: return "final"
        case .latest: return "latest"
        case .epoch: return name.fileName
        }
    }
}
