import Foundation
import MedSegData
import MedSegModels
import Torch

/// Trained networks loaded back from run folders for prediction.
public enum TrainedModels {
    /// The networks of a run (or of its folds) with their preprocessing, and for a cascade stage
    /// the previous stage's inference in front; plus a line per checkpoint used. `stageAlone`: a
    /// cascade stage's networks without their previous stage (whose one-hot channels are then part
    /// of the input, as ONNX export writes them).
    public static func inference(run: URL, folds: [String], checkpoint: String, previousStage: URL?, mirror: Bool,
                          device dev: Device, precision: Precision = .fp32, window: WindowSettings = .init(),
                          stageAlone: Bool = false) throws -> (CaseInference, [String]) {
        if NNUNetModelFolder.isModelFolder(run) {
            return try NNUNetModelFolder(run).inference(folds: folds, checkpoint: checkpoint, previousStage: previousStage, mirror: mirror, device: dev,
                                                        precision: precision, window: window, stageAlone: stageAlone)
        }
        let folds = try defaultFolds(run: run, folds: folds, checkpoint: checkpoint)
        let modelFolders = folds.isEmpty ? [run] : folds.map { ExperimentFolder(run).fold(named: $0).url }
        var predictors: [Predictor] = []
        var used: [String] = []
        for folder in modelFolders {
            let file = CheckpointName(named: checkpoint).map { RunFolder(folder).checkpoint($0) } ?? URL(fileURLWithPath: checkpoint)
            guard FileManager.default.fileExists(atPath: file.path) else { throw TrainingError("\(file.path): no such checkpoint") }
            let loaded = try Checkpoint.load(file)
            let model = try ModelFactory.make(loaded.state.model.network)
            try model.loadState(loaded.model)
            try model.to(device: dev)
            predictors.append(Predictor(model: model, spec: loaded.state.model, mirror: mirror, device: dev, precision: precision, window: window))
            used.append("\(folds.isEmpty ? "" : folder.lastPathComponent + "/")\(file.lastPathComponent), epoch \(loaded.state.epoch)")
        }
        let spec = predictors[0].spec
        // A planned network sees new images preprocessed as its training cases were.
        let setup = try spec.configuration.map { try PlannedSetup.load(runFolder: modelFolders[0], configuration: $0) }
        var previous: CascadeInput.PreviousStage? = nil
        if let stage = setup?.plan.previous_stage, !stageAlone {
            let first: [String]
            (previous, first) = try cascadeInput(stage, from: previousStage, folds: folds, checkpoint: checkpoint, mirror: mirror, device: dev,
                                                 precision: precision, window: window,
                                                 missing: "\(run.path) is a cascade stage trained on \(stage) segmentations: give that experiment as \(Setting.named("previous_stage", value: "EXP"))")
            used = first + used
        }
        return (try CaseInference(predictors: predictors, preprocessor: setup?.preprocessor, previousStage: previous,
                                  previousStageConfiguration: setup?.plan.previous_stage), used)
    }

    /// A cascade stage's input: the previous stage (`folder`, refused with `missing` when absent)
    /// predicts each case first; plus its lines of checkpoints used, named after `stage`.
    static func cascadeInput(_ stage: String, from folder: URL?, folds: [String], checkpoint: String, mirror: Bool, device: Device,
                             precision: Precision, window: WindowSettings, missing: String) throws -> (CascadeInput.PreviousStage, [String]) {
        guard let folder else { throw TrainingError(missing) }
        let (first, used) = try inference(run: folder, folds: folds, checkpoint: checkpoint, previousStage: nil, mirror: mirror, device: device,
                                          precision: precision, window: window)
        return ({ files in try first.predict(files).label }, used.map { "\(stage) \($0)" })
    }

    /// The folds asked for; without any, a run folder's own checkpoint, else (an experiment
    /// folder holding fold_N, as nnU-Net's predict) every fold that has that checkpoint.
    static func defaultFolds(run: URL, folds: [String], checkpoint: String) throws -> [String] {
        guard folds.isEmpty, let name = CheckpointName(named: checkpoint) else { return folds }
        if FileManager.default.fileExists(atPath: RunFolder(run).checkpoint(name).path) { return [] }
        let experiment = ExperimentFolder(run)
        var present = experiment.numberedFolds.map(String.init)
        if FileManager.default.fileExists(atPath: experiment.fold(-1).url.path) { present.append("all") }
        let trained = present.filter { FileManager.default.fileExists(atPath: experiment.fold(named: $0).checkpoint(name).path) }
        if !trained.isEmpty { return trained }
        if present.isEmpty {
            throw TrainingError("\(run.path): no \(name.fileName) here and no fold_N folders: give a run folder of `medseg train` (or \(Setting.named("checkpoint", value: "FILE")))")
        }
        throw TrainingError("\(run.path): none of its folds (\(present.map { "fold_\($0)" }.joined(separator: ", "))) has \(name.fileName) yet: train them, or give \(Setting.named("checkpoint", value: "latest"))")
    }
}
