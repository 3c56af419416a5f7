import Foundation

/// Parameters optimized with one set of hyperparameters (PyTorch's param_groups entry).
public final class ParamGroup {
    public var params: [Tensor]
    /// The current learning rate (schedulers change it).
    public var lr: Double
    /// The learning rate the group started with (schedulers scale it).
    public var initialLR: Double
    public var weightDecay: Double

    public init(params: [Tensor], lr: Double, weightDecay: Double = 0) {
        self.params = params
        self.lr = lr
        self.initialLR = lr
        self.weightDecay = weightDecay
    }
}

/// Base of the optimizers: parameter groups, per-parameter state tensors, zeroing gradients,
/// and a state that round-trips through checkpoints. Subclasses implement `update`.
open class Optimizer {
    public let paramGroups: [ParamGroup]
    /// Per-parameter state by PyTorch's numbering (parameters counted across groups in order).
    public internal(set) var state: [Int: [String: Tensor]] = [:]
    /// Steps taken per parameter (Adam's bias correction).
    public internal(set) var stepCounts: [Int: Int] = [:]

    public init(groups: [ParamGroup]) {
        paramGroups = groups
    }

    /// Runs one update of every parameter that has a gradient.
    public func step() throws {
        try withNoGrad {
            var index = 0
            for group in paramGroups {
                for p in group.params {
                    defer { index += 1 }
                    guard let grad = p.grad else { continue }
                    stepCounts[index, default: 0] += 1
                    try update(parameter: p, gradient: grad, group: group, index: index, step: stepCounts[index]!)
                }
            }
        }
    }

    /// Updates one parameter in place; `step` counts this parameter's updates from 1.
    open func update(parameter: Tensor, gradient: Tensor, group: ParamGroup, index: Int, step: Int) throws {
        fatalError("\(type(of: self)) must override update")
    }

    /// Clears gradients (to nil by default, as PyTorch's set_to_none).
    public func zeroGrad(setToNone: Bool = true) throws {
        for p in paramGroups.flatMap(\.params) {
            if setToNone { p.grad = nil } else if let g = p.grad { try g.zero_() }
        }
    }

    func stateTensor(_ index: Int, _ name: String, like p: Tensor) throws -> (Tensor, fresh: Bool) {
        if let t = state[index]?[name] { return (t, false) }
        let t = try Tensor.zeros(like: p)
        state[index, default: [:]][name] = t
        return (t, true)
    }

    // MARK: state dict

    /// State tensors named like PyTorch's optimizer state_dict (`state.3.exp_avg`).
    public func stateTensors() -> [(name: String, tensor: Tensor)] {
        state.keys.sorted().flatMap { i in state[i]!.keys.sorted().map { ("state.\(i).\($0)", state[i]![$0]!) } }
    }

    /// Scalars that complete the state: steps per parameter and each group's learning rates.
    public struct Scalars: Codable, Equatable, Sendable {
        public var steps: [Int: Int]
        public var lrs: [Double]
        public var initialLRs: [Double]
    }

    public var scalars: Scalars {
        Scalars(steps: stepCounts, lrs: paramGroups.map(\.lr), initialLRs: paramGroups.map(\.initialLR))
    }

    /// Restores state saved by `stateTensors()` and `scalars` (tensors are copied to the
    /// parameters' devices).
    public func load(stateTensors: [(name: String, tensor: Tensor)], scalars: Scalars) throws {
        let params = paramGroups.flatMap(\.params)
        guard scalars.lrs.count == paramGroups.count else {
            throw TorchError("optimizer state has \(scalars.lrs.count) parameter groups, this optimizer has \(paramGroups.count)")
        }
        var restored: [Int: [String: Tensor]] = [:]
        for (name, tensor) in stateTensors {
            let parts = name.split(separator: ".", maxSplits: 2)
            guard parts.count == 3, parts[0] == "state", let i = Int(parts[1]), i < params.count else {
                throw TorchError("unexpected optimizer state entry '\(name)'")
            }
            guard tensor.shape == params[i].shape else {
                throw TorchError("optimizer state '\(name)' has shape \(tensor.shape), parameter \(i) has \(params[i].shape)")
            }
            restored[i, default: [:]][String(parts[2])] = try tensor.to(device: params[i].device, dtype: params[i].dtype).clone()
        }
        state = restored
        stepCounts = scalars.steps
        for (g, (lr, initial)) in zip(paramGroups, zip(scalars.lrs, scalars.initialLRs)) {
            g.lr = lr
            g.initialLR = initial
        }
    }
}
