import Foundation

/// Adam with L2 weight decay added to the gradient (torch.optim.Adam), PyTorch 1.13's
/// single-tensor update. Group options: `betas`, `eps`, `weight_decay`, `amsgrad`, `maximize`.
/// State per parameter: `step`, `exp_avg`, `exp_avg_sq` and, with amsgrad, `max_exp_avg_sq`.
public final class Adam: Optimizer {
    public init(groups: [ParamGroup], betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8, weightDecay: Double = 0,
                amsgrad: Bool = false, maximize: Bool = false) {
        super.init(groups: groups, defaults: adamDefaults(betas: betas, eps: eps, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize))
    }

    public convenience init(_ params: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 0, amsgrad: Bool = false, maximize: Bool = false) {
        self.init(groups: [ParamGroup(params: params, lr: lr)], betas: betas, eps: eps, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize)
    }

    public override func validate(_ group: ParamGroup) throws {
        try super.validate(group)
        try validateAdam(group)
    }

    public override func update(parameter p: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState) throws {
        try adamUpdate(parameter: p, gradient: gradient, group: group, state: &state, decoupledWeightDecay: false)
    }
}

func adamDefaults(betas: (Double, Double), eps: Double, weightDecay: Double, amsgrad: Bool, maximize: Bool) -> [String: HyperParameter] {
    ["betas": .pair(betas.0, betas.1), "eps": .number(eps), "weight_decay": .number(weightDecay), "amsgrad": .flag(amsgrad), "maximize": .flag(maximize)]
}

func validateAdam(_ group: ParamGroup) throws {
    let (beta1, beta2) = try group.pair("betas")
    let eps = try group.number("eps")
    _ = try group.flag("amsgrad")
    _ = try group.flag("maximize")
    if eps < 0 { throw TorchError("invalid epsilon value: \(eps)") }
    if !(0..<1).contains(beta1) { throw TorchError("invalid beta parameter at index 0: \(beta1)") }
    if !(0..<1).contains(beta2) { throw TorchError("invalid beta parameter at index 1: \(beta2)") }
}

/// `_single_tensor_adam` / `_single_tensor_adamw` of PyTorch 1.13 (not capturable), operation
/// for operation, so results match bit for bit on the same libtorch.
func adamUpdate(parameter p: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState, decoupledWeightDecay: Bool) throws {
    let lr = group.lr
    let (beta1, beta2) = try group.pair("betas")
    let eps = try group.number("eps"), weightDecay = try group.number("weight_decay")
    let amsgrad = try group.flag("amsgrad")

    var grad = gradient, owned = false
    if try group.flag("maximize") { grad = try -grad; owned = true }
    let step = (state.step ?? 0) + 1
    let expAvg = try state.tensor("exp_avg", zerosLike: p)
    let expAvgSq = try state.tensor("exp_avg_sq", zerosLike: p)
    let maxExpAvgSq = amsgrad ? try state.tensor("max_exp_avg_sq", zerosLike: p) : nil
    state.step = step

    if decoupledWeightDecay {
        // AdamW always multiplies; by exactly 1 when the decay is 0, which changes nothing.
        if weightDecay != 0 { try p.mul_(1 - lr * weightDecay) }
    } else if weightDecay != 0 {
        if !owned { grad = try grad.clone() }
        try grad.add_(p, alpha: weightDecay)
    }

    try expAvg.mul_(beta1)
    try expAvg.add_(grad, alpha: 1 - beta1)
    try expAvgSq.mul_(beta2)
    try expAvgSq.addcmul_(grad, grad, value: 1 - beta2)

    let biasCorrection1 = 1 - Foundation.pow(beta1, Double(step))
    let biasCorrection2 = 1 - Foundation.pow(beta2, Double(step))
    let stepSize = lr / biasCorrection1
    let biasCorrection2Sqrt = biasCorrection2.squareRoot()

    // Divide by a CPU scalar of the parameter's dtype, as PyTorch's Python float becomes: it
    // never promotes (0-dim parameters stay float32) and CUDA takes its reciprocal path.
    let divisor = try Tensor(scalar: biasCorrection2Sqrt, dtype: p.dtype)
    let denom: Tensor
    if let maxExpAvgSq {
        try maxExpAvgSq.maximum_(expAvgSq)
        denom = try maxExpAvgSq.sqrt() / divisor
    } else {
        denom = try expAvgSq.sqrt() / divisor
    }
    try denom.add_(eps)
    try p.addcdiv_(expAvg, denom, value: -stepSize)
}
