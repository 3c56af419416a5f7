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
