import Foundation
import Torch

/// What a checkpoint saves and a resumed run restores besides its progress: the network, its
/// optimizer, the learning-rate schedule and fp16's loss scaler.
public struct TrainingComponents {
    public let model: Module
    public let optimizer: Optimizer
    public let scheduler: LRScheduler
    public let scaler: GradScaler

    public init(model: Module, optimizer: Optimizer, scheduler: LRScheduler, scaler: GradScaler) {
        self.model = model
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.scaler = scaler
    }

    /// Puts a checkpoint's weights, optimizer and scheduler state, loss scale and RNG back.
    public func restore(_ loaded: Checkpoint.Loaded) throws {
        if let saved = loaded.state.gradScaler { scaler.load(saved) }
        try model.loadState(loaded.model)
        try optimizer.loadStateDict(try loaded.optimizerState())
        try scheduler.loadState(loaded.state.scheduler)
        if let rng = loaded.rng { try Torch.setRNGState(rng) }
    }
}
