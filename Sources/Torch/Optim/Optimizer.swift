import Foundation

/// Base of the optimizers, like torch.optim.Optimizer: parameter groups, per-parameter state
/// numbered as PyTorch numbers it (parameters counted across groups in order), `step()`,
/// `zeroGrad()` and a state dict that round-trips through checkpoints. Subclasses validate their
/// hyperparameters and implement `update`.
open class Optimizer {
    public var paramGroups: [ParamGroup]
    /// Per-parameter state by parameter index; parameters that never had a gradient have none.
    public var state: [Int: ParameterState] = [:]
    /// Hyperparameters that groups leave out take these values (PyTorch's `defaults`, less `lr`).
    public let defaults: [String: HyperParameter]

    public init(groups: [ParamGroup], defaults: [String: HyperParameter]) {
        self.defaults = defaults
        paramGroups = groups.map { Self.fillingDefaults($0, defaults) }
    }

    private static func fillingDefaults(_ group: ParamGroup, _ defaults: [String: HyperParameter]) -> ParamGroup {
        var g = group
        for (name, value) in defaults where g.options[name] == nil { g.options[name] = value }
        return g
    }

    /// Adds a group whose parameters are numbered after the existing ones (PyTorch's add_param_group).
    public func addParamGroup(_ group: ParamGroup) throws {
        let g = Self.fillingDefaults(group, defaults)
        try validate(g)
        paramGroups.append(g)
    }

    /// Every parameter, in PyTorch's numbering.
    public var parameters: [Tensor] { paramGroups.flatMap(\.params) }

    /// Checks a group's hyperparameters (PyTorch's constructor checks); subclasses add theirs.
    open func validate(_ group: ParamGroup) throws {
        if group.lr < 0 { throw TorchError("invalid learning rate: \(group.lr)") }
        if group.weightDecay < 0 { throw TorchError("invalid weight_decay value: \(group.weightDecay)") }
    }

    func validateGroups() throws {
        guard paramGroups.contains(where: { !$0.params.isEmpty }) else { throw TorchError("the optimizer got an empty parameter list") }
        for (i, g) in paramGroups.enumerated() {
            do { try validate(g) } catch let e as TorchError { throw TorchError("parameter group \(i): \(e.message)") }
        }
    }

    /// Updates one parameter in place (called without gradient recording). `state` is this
    /// parameter's state, empty on its first update.
    open func update(parameter: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState) throws {
        throw TorchError("\(type(of: self)) does not implement update(parameter:gradient:group:state:)")
    }

    /// One update of every parameter that has a gradient; parameters without one are skipped.
    public func step() throws {
        try validateGroups()
        try withNoGrad {
            var index = 0
            for group in paramGroups {
                for p in group.params {
                    defer { index += 1 }
                    guard let grad = p.grad else { continue }
                    var s = state[index] ?? ParameterState()
                    try update(parameter: p, gradient: grad, group: group, state: &s)
                    state[index] = s.isEmpty ? nil : s
                }
            }
        }
    }

    /// Re-evaluates the loss with gradients recorded, then steps; returns the loss (PyTorch's
    /// `step(closure)`). The closure computes the loss and calls `backward()`.
    @discardableResult
    public func step(_ closure: () throws -> Tensor) throws -> Tensor {
        let loss = try withGradMode(true, closure)
        try step()
        return loss
    }

    /// Clears gradients: to nil by default (PyTorch's set_to_none), else fills them with zeros.
    public func zeroGrad(setToNone: Bool = true) throws {
        for group in paramGroups {
            for p in group.params {
                if setToNone {
                    p.grad = nil
                } else if let g = p.grad {
                    try withNoGrad { try g.zero_() }
                }
            }
        }
    }

    // MARK: state dict

    /// The optimizer's state in PyTorch's state_dict layout. The tensors are the optimizer's own
    /// (not copies): write them out before the next `step()` or clone them.
    public func stateDict() -> OptimizerState {
        var groups: [OptimizerState.Group] = []
        var start = 0
        for g in paramGroups {
            groups.append(OptimizerState.Group(params: Array(start..<(start + g.params.count)), lr: g.lr, initialLR: g.initialLR, options: g.options))
            start += g.params.count
        }
        return OptimizerState(state: state, paramGroups: groups)
    }

    /// Restores a state from `stateDict()` (or PyTorch's, converted): the groups' hyperparameters
    /// and every parameter's state, copied to the parameter's device and, for floating-point
    /// parameters, dtype. Saved parameter indices map onto this optimizer's parameters group by
    /// group in order, as PyTorch maps them. Nothing changes when the state does not fit.
    public func loadStateDict(_ saved: OptimizerState) throws {
        guard saved.paramGroups.count == paramGroups.count else {
            throw TorchError("the saved optimizer state has \(saved.paramGroups.count) parameter group(s), this optimizer has \(paramGroups.count)")
        }
        var indexOf: [Int: Int] = [:]
        var flat = 0
        for (i, (mine, theirs)) in zip(paramGroups, saved.paramGroups).enumerated() {
            guard mine.params.count == theirs.params.count else {
                throw TorchError("parameter group \(i) of the saved optimizer state has \(theirs.params.count) parameter(s), this optimizer's has \(mine.params.count)")
            }
            for id in theirs.params {
                guard indexOf[id] == nil else { throw TorchError("the saved optimizer state lists parameter \(id) twice") }
                indexOf[id] = flat
                flat += 1
            }
        }
        let params = parameters
        var restored: [Int: ParameterState] = [:]
        for (id, entry) in saved.state {
            guard let i = indexOf[id] else {
                throw TorchError("the saved optimizer state has state for parameter \(id), which none of its parameter groups lists")
            }
            let p = params[i]
            var s = ParameterState(step: entry.step)
            for (name, t) in entry.tensors {
                guard t.shape == p.shape else {
                    throw TorchError("optimizer state 'state.\(id).\(name)' has shape \(t.shape), parameter \(i) has shape \(p.shape)")
                }
                s.tensors[name] = try t.to(device: p.device, dtype: p.dtype.isFloatingPoint ? p.dtype : t.dtype, copy: true)
            }
            restored[i] = s
        }
        var groups = paramGroups
        for (i, theirs) in saved.paramGroups.enumerated() {
            groups[i].lr = theirs.lr
            groups[i].initialLR = theirs.initialLR
            groups[i].options.merge(theirs.options) { _, saved in saved }
        }
        paramGroups = groups
        state = restored
    }
}
