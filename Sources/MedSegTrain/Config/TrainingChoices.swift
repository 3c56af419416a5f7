import MedSegData
import MedSegModels
import Torch

/// The fixed choices of a training config, each a string in YAML and on the command line.
/// sophiag: Sophia-G (seed 000) with its Hessian estimate refreshed every `hessian_interval` steps.
public enum OptimizerName: String, Codable, CaseIterable, Sendable { case sgd, adam, adamw, sophiag }

public enum SchedulerName: String, Codable, CaseIterable, Sendable { case poly, cosine, step, constant }

/// "auto": BCE + Dice for one foreground class, Dice + CE for several.
public enum LossName: String, Codable, CaseIterable, Sendable { case auto, bce, dice, bce_dice, dice_ce, ce }

/// What picks checkpoint_best: the EMA of validation Dice, or the validation loss.
public enum BestMetric: String, Codable, CaseIterable, Sendable { case dice, loss }

extension IntensityNormalization: CaseIterable {
    public static var allCases: [IntensityNormalization] { [.zscore, .ct, .rgb, .none] }
}

/// The choices of each key, for error messages that list them.
enum TrainingChoices {
    static let byKey: [String: [String]] = [
        "model": ModelName.allCases.map(\.rawValue),
        "model_size": ModelSize.allCases.map(\.rawValue),
        "optimizer": OptimizerName.allCases.map(\.rawValue),
        "scheduler": SchedulerName.allCases.map(\.rawValue),
        "loss": LossName.allCases.map(\.rawValue),
        "best_metric": BestMetric.allCases.map(\.rawValue),
        "normalization": IntensityNormalization.allCases.map(\.rawValue),
        "augmentation": AugmentationPipeline.PresetName.allCases.map(\.rawValue),
        "precision": Precision.allCases.map(\.rawValue),
    ]
}
