import Foundation

/// How a `Predictor`'s sliding window runs: the step between windows, the windows per network
/// call, and on a GPU the memory its logits may take there.
public struct WindowSettings: Sendable, Equatable {
    /// Step between windows as a fraction of the patch (nnU-Net's step_size).
    public var stepSize: Double
    /// Windows per network call.
    public var windowBatch: Int
    /// On a GPU: the most memory (bytes) an image's float32 logits may take there; larger ones add
    /// up on the CPU. nil: a quarter of the GPU's memory (the rest for the network's passes).
    public var logitsBudget: Int?

    /// nnU-Net's step: windows overlapping by half a patch.
    public static let defaultStepSize = 0.5

    public init(stepSize: Double = WindowSettings.defaultStepSize, windowBatch: Int = 1, logitsBudget: Int? = nil) {
        self.stepSize = stepSize
        self.windowBatch = max(1, windowBatch)
        self.logitsBudget = logitsBudget
    }
}
