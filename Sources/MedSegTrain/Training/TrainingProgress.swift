import Foundation

/// How far a run has come: epochs completed, the best validation metric and its epoch, the EMA
/// Dice and every epoch's record. Saved in each checkpoint (inside `TrainerState`, under the same
/// JSON keys) and restored on resume.
public struct TrainingProgress: Codable, Equatable, Sendable {
    /// Epochs completed.
    public var epoch = 0
    public var bestMetric: Double?
    /// The epoch that reached `bestMetric` (early stopping counts from it).
    public var bestEpoch: Int?
    public var emaDice: Double?
    public var history: [EpochRecord] = []

    public init(epoch: Int = 0, bestMetric: Double? = nil, bestEpoch: Int? = nil, emaDice: Double? = nil, history: [EpochRecord] = []) {
        self.epoch = epoch
        self.bestMetric = bestMetric
        self.bestEpoch = bestEpoch
        self.emaDice = emaDice
        self.history = history
    }

    /// Takes a validation's mean Dice and loss after `epoch` (1-based) into the EMA (nnU-Net's 0.9
    /// pseudo-Dice average) and the best metric; true when it is a new best.
    public mutating func validated(epoch: Int, meanDice: Double, loss: Double, best metric: BestMetric) -> Bool {
        emaDice = emaDice.map { 0.9 * $0 + 0.1 * meanDice } ?? meanDice
        let value = metric == .loss ? -loss : emaDice!
        guard bestMetric.map({ value > $0 }) ?? true else { return false }
        bestMetric = value
        bestEpoch = epoch
        return true
    }

    /// Epochs since the best one, once `patience` (> 0) of them have passed without improving.
    public func epochsWithoutImprovement(after epoch: Int, patience: Int) -> Int? {
        guard patience > 0, let bestEpoch, epoch - bestEpoch >= patience else { return nil }
        return epoch - bestEpoch
    }
}
