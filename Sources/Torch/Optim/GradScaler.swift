import CTorch

/// Loss scaling for float16 mixed precision, with the rules of torch.cuda.amp.GradScaler: the loss
/// is multiplied by `scale` before backward so that small gradients do not underflow; `unscale`
/// divides the gradients back and looks for inf/NaN; `step` skips the optimizer step when it found
/// any; `update` halves the scale after a step with inf/NaN and doubles it after `growthInterval`
/// clean steps in a row. Disabled, every call passes through (scale 1, steps always taken).
///
/// Per iteration: `scaler.scale(loss).backward()`, optionally `scaler.unscale(optimizer)` and
/// gradient clipping, `scaler.step(optimizer)`, `scaler.update()`.
public final class GradScaler {
    /// What a checkpoint keeps (PyTorch's GradScaler.state_dict: scale, growth tracker and settings).
    public struct State: Codable, Equatable, Sendable {
        public var scale: Double
        public var growthTracker: Int
        public var growthFactor: Double
        public var backoffFactor: Double
        public var growthInterval: Int
        public var enabled: Bool
    }

    public let enabled: Bool
    public private(set) var scale: Double
    /// Clean steps in a row since the scale last changed.
    public private(set) var growthTracker: Int
    public let growthFactor: Double
    public let backoffFactor: Double
    public let growthInterval: Int

    private enum Stage { case ready, unscaled(foundInf: Bool), stepped(foundInf: Bool) }
    private var stages: [ObjectIdentifier: Stage] = [:]

    public init(initScale: Double = 65536, growthFactor: Double = 2, backoffFactor: Double = 0.5, growthInterval: Int = 2000,
                enabled: Bool = true) throws {
        guard initScale > 0, initScale.isFinite else { throw TorchError("GradScaler's initial scale must be positive, got \(initScale)") }
        guard growthFactor > 1 else { throw TorchError("GradScaler's growth factor must be > 1, got \(growthFactor)") }
        guard backoffFactor > 0, backoffFactor < 1 else { throw TorchError("GradScaler's backoff factor must be in (0, 1), got \(backoffFactor)") }
        guard growthInterval > 0 else { throw TorchError("GradScaler's growth interval must be positive, got \(growthInterval)") }
        self.enabled = enabled
        scale = Double(Float(initScale))
        growthTracker = 0
        self.growthFactor = growthFactor
        self.backoffFactor = backoffFactor
        self.growthInterval = growthInterval
    }

    /// The scale applied by `scale(_:)` (1 when disabled).
    public var currentScale: Double { enabled ? scale : 1 }

    /// loss * scale (the loss itself when disabled).
    public func scale(_ loss: Tensor) throws -> Tensor {
        guard enabled else { return loss }
        return try loss * scale
    }

    /// Divides the gradients of `optimizer`'s parameters by the scale, in place, and records whether
    /// any was inf or NaN. At most once per optimizer between updates (clip gradients after it).
    /// Returns whether inf/NaN was found.
    @discardableResult
    public func unscale(_ optimizer: Optimizer) throws -> Bool {
        guard enabled else { return false }
        let id = ObjectIdentifier(optimizer)
        switch stages[id] ?? .ready {
        case .unscaled: throw TorchError("unscale(optimizer) has already been called on this optimizer since the last update()")
        case .stepped: throw TorchError("unscale(optimizer) is being called after step()")
        case .ready: break
        }
        let grads = optimizer.parameters.compactMap(\.grad)
        let handles: [mt_tensor_t?] = grads.map { $0.handle }
        var found: Int32 = 0
        // The reciprocal in float32, as PyTorch's scaler computes it.
        let inverse = Double(Float(1) / Float(scale))
        // `grad` makes a new wrapper each time: keep them alive, or an optimized build frees the
        // handles before the call.
        try withExtendedLifetime(grads) {
            try withNoGrad { try check(mt_amp_unscale_(handles, handles.count, inverse, &found)) }
        }
        stages[id] = .unscaled(foundInf: found != 0)
        return found != 0
    }

    /// Unscales (if not done yet) and runs `optimizer.step()` unless a gradient was inf or NaN.
    /// Returns whether the step was taken.
    @discardableResult
    public func step(_ optimizer: Optimizer) throws -> Bool {
        guard enabled else {
            try optimizer.step()
            return true
        }
        let id = ObjectIdentifier(optimizer)
        if case .stepped = stages[id] ?? .ready { throw TorchError("step() has already been called since the last update()") }
        if case .ready = stages[id] ?? .ready { try unscale(optimizer) }
        guard case .unscaled(let foundInf) = stages[id] else { return false }
        stages[id] = .stepped(foundInf: foundInf)
        if foundInf { return false }
        try optimizer.step()
        return true
    }

    /// Adjusts the scale from this iteration's steps (inf/NaN in any optimizer: backoff) and
    /// starts the next iteration.
    public func update() throws {
        guard enabled else { return }
        var foundInf = false
        var any = false
        for stage in stages.values {
            switch stage {
            case .unscaled(let f), .stepped(let f):
                foundInf = foundInf || f
                any = true
            case .ready: break
            }
        }
        guard any else { throw TorchError("no inf checks were recorded prior to update(): call step(optimizer) first") }
        stages = [:]
        apply(foundInf: foundInf)
    }

    /// The scale update of PyTorch's _amp_update_scale_ (in float32, as its scale tensor).
    func apply(foundInf: Bool) {
        if foundInf {
            scale = Double(Float(scale) * Float(backoffFactor))
            growthTracker = 0
        } else if growthTracker + 1 == growthInterval {
            let grown = Float(scale) * Float(growthFactor)
            if grown.isFinite { scale = Double(grown) }
            growthTracker = 0
        } else {
            growthTracker += 1
        }
    }

    public var state: State {
        State(scale: scale, growthTracker: growthTracker, growthFactor: growthFactor, backoffFactor: backoffFactor,
              growthInterval: growthInterval, enabled: enabled)
    }

    /// A scaler that continues from a checkpointed state.
    public convenience init(state: State) throws {
        try self.init(initScale: state.scale, growthFactor: state.growthFactor, backoffFactor: state.backoffFactor,
                      growthInterval: state.growthInterval, enabled: state.enabled)
        growthTracker = state.growthTracker
    }

    /// Restores scale and growth tracker (the settings stay this scaler's).
    public func load(_ state: State) {
        scale = state.scale
        growthTracker = state.growthTracker
        stages = [:]
    }
}
