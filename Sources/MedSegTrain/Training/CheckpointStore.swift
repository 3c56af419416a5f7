import Foundation
import Torch

/// A run folder's checkpoints: which file a resumed or validated run starts from, and writing
/// the model, optimizer, scheduler and trainer state together.
public struct CheckpointStore {
    public let folder: RunFolder

    public init(_ folder: RunFolder) { self.folder = folder }

    /// The checkpoint to continue from: a file as given, or a run folder's latest; for
    /// validation a folder's final checkpoint where it has one.
    public static func file(for source: URL, validation: Bool) throws -> URL {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: source.path, isDirectory: &isDir)
        var file = source
        if isDir.boolValue {
            let run = RunFolder(source)
            file = validation && run.hasCheckpoint(.final) ? run.checkpoint(.final) : run.checkpoint(.latest)
        }
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw TrainingError("cannot \(validation ? "validate" : "resume"): \(file.path) does not exist")
        }
        return file
    }

    /// Writes the weights and the optimizer, scheduler and loss-scaler state with the trainer's
    /// progress: what `restore` puts back.
    public func save(_ name: CheckpointName, model: Module, optimizer: Optimizer, scheduler: LRScheduler, scaler: GradScaler,
                     epoch: Int, bestMetric: Double?, bestEpoch: Int? = nil, emaDice: Double?, history: [EpochRecord], config: TrainingConfig,
                     spec: ModelSpecRecord) throws {
        let optimizerState = optimizer.stateDict()
        let state = TrainerState(epoch: epoch, bestMetric: bestMetric, bestEpoch: bestEpoch, emaDice: emaDice, history: history, config: config,
                                 optimizer: optimizerState.metadata, scheduler: scheduler.state,
                                 gradScaler: scaler.enabled ? scaler.state : nil, model: spec)
        try Checkpoint.save(to: folder.checkpoint(name), model: model, optimizer: optimizerState.tensors, state: state)
    }

    /// Puts a checkpoint's weights, optimizer and scheduler state and RNG back.
    public static func restore(_ loaded: Checkpoint.Loaded, model: Module, optimizer: Optimizer, scheduler: LRScheduler, scaler: GradScaler) throws {
        if let saved = loaded.state.gradScaler { scaler.load(saved) }
        try model.loadState(loaded.model)
        try optimizer.loadStateDict(try loaded.optimizerState())
        try scheduler.loadState(loaded.state.scheduler)
        if let rng = loaded.rng { try Torch.setRNGState(rng) }
    }
}
