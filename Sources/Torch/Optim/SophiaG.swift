/// Sophia-G (Liu et al., "Sophia: A Scalable Stochastic Second-order Optimizer", 2023), as the
/// reference `SophiaG` (github.com/Liuhong99/Sophia, single-tensor, not capturable):
///
///     p      <- p * (1 - lr * weight_decay)
///     m      <- beta1 * m + (1 - beta1) * g
///     p      <- p - lr * sign(m) * min(|m| / (rho * bs * h + 1e-15), 1)
///
/// The diagonal Hessian estimate `h` is an EMA refreshed by the caller every k steps with the
/// Gauss-Newton-Bartlett estimator: compute a loss on labels sampled from the model's own
/// predictions, back-propagate it, then call `updateHessian()`, which folds the current gradients
/// in as h <- beta2 * h + (1 - beta2) * g * g. `bs` (the reference's `step(bs=5120)`, the number of
/// tokens or samples behind one estimate) is `hessianBatchSize`. Options (PyTorch's names):
/// `betas` (default 0.965, 0.99), `rho` (0.04; the seed uses 0.01), `weight_decay` (0.1),
/// `maximize`. State per parameter: `step`, `exp_avg`, `hessian`.
public final class SophiaG: Optimizer {
    /// The reference's `bs` argument of `step`.
    public var hessianBatchSize: Double

    public init(groups: [ParamGroup], betas: (Double, Double) = (0.965, 0.99), rho: Double = 0.04, weightDecay: Double = 0.1,
                maximize: Bool = false, hessianBatchSize: Double = 5120) {
        self.hessianBatchSize = hessianBatchSize
        super.init(groups: groups, defaults: ["betas": .pair(betas.0, betas.1), "rho": .number(rho),
                                              "weight_decay": .number(weightDecay), "maximize": .flag(maximize)])
    }

    public convenience init(_ params: [Tensor], lr: Double = 1e-4, betas: (Double, Double) = (0.965, 0.99), rho: Double = 0.04,
                            weightDecay: Double = 0.1, maximize: Bool = false, hessianBatchSize: Double = 5120) {
        self.init(groups: [ParamGroup(params: params, lr: lr)], betas: betas, rho: rho, weightDecay: weightDecay,
                  maximize: maximize, hessianBatchSize: hessianBatchSize)
    }

    public override func validate(_ group: ParamGroup) throws {
        try super.validate(group)
        let (beta1, beta2) = try group.pair("betas")
        let rho = try group.number("rho")
        _ = try group.flag("maximize")
        if !(0..<1).contains(beta1) { throw TorchError("invalid beta parameter at index 0: \(beta1)") }
        if !(0..<1).contains(beta2) { throw TorchError("invalid beta parameter at index 1: \(beta2)") }
        if rho < 0 { throw TorchError("invalid rho parameter: \(rho)") }
    }

    private static func initialize(_ state: inout ParameterState, _ p: Tensor) throws -> (expAvg: Tensor, hessian: Tensor) {
        if state.step == nil { state.step = 0 }
        return (try state.tensor("exp_avg", zerosLike: p), try state.tensor("hessian", zerosLike: p))
    }

    /// Folds the current gradients into the Hessian EMA (the reference's `update_hessian()`).
    /// Parameters without a gradient are skipped.
    public func updateHessian() throws {
        try validateGroups()
        try withNoGrad {
            var index = 0
            for group in paramGroups {
                let beta2 = try group.pair("betas").1
                for p in group.params {
                    defer { index += 1 }
                    guard let g = p.grad else { continue }
                    var s = state[index] ?? ParameterState()
                    let hessian = try Self.initialize(&s, p).hessian
                    try hessian.mul_(beta2)
                    try hessian.addcmul_(g, g, value: 1 - beta2)
                    state[index] = s
                }
            }
        }
    }

    public override func update(parameter p: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState) throws {
        let (beta1, _) = try group.pair("betas")
        let rho = try group.number("rho")
        let lr = group.lr
        let grad = try group.flag("maximize") ? try 0 - gradient : gradient
        let (expAvg, hessian) = try Self.initialize(&state, p)
        state.step = (state.step ?? 0) + 1
        try p.mul_(1 - lr * group.weightDecay)
        try expAvg.mul_(beta1)
        try expAvg.add_(grad, alpha: 1 - beta1)
        let ratio = try expAvg.abs() / (hessian * (rho * hessianBatchSize) + 1e-15)
        try ratio.clamp_(max: 1)
        try p.addcmul_(expAvg.sign(), ratio, value: -lr)
    }
}
