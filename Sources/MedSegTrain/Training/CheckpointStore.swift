import Foundation
import Torch

/// A run folder's checkpoints: which file a resumed or validated run starts from, and writing
/// the training components and progress together (`TrainingComponents.restore` reads them back).
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
    public func save(_ name: CheckpointName, _ components: TrainingComponents, progress: TrainingProgress, config: TrainingConfig,
                     spec: ModelSpecRecord) throws {
        let optimizerState = components.optimizer.stateDict()
        let state = TrainerState(progress: progress, config: config, optimizer: optimizerState.metadata, scheduler: components.scheduler.state,
                                 gradScaler: components.scaler.enabled ? components.scaler.state : nil, model: spec)
        try Checkpoint.save(to: folder.checkpoint(name), model: components.model, optimizer: optimizerState.tensors, state: state)
    }
}
