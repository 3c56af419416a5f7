/// Adam with decoupled weight decay (Loshchilov & Hutter; torch.optim.AdamW): the parameter is
/// first scaled by `1 - lr * weight_decay`, then updated as Adam without L2 term. PyTorch 1.13's
/// single-tensor update; weight decay defaults to 1e-2 as in PyTorch. Same options and state as Adam.
public final class AdamW: Optimizer {
    public init(groups: [ParamGroup], betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8, weightDecay: Double = 1e-2,
                amsgrad: Bool = false, maximize: Bool = false) {
        super.init(groups: groups, defaults: adamDefaults(betas: betas, eps: eps, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize))
    }

    public convenience init(_ params: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 1e-2, amsgrad: Bool = false, maximize: Bool = false) {
        self.init(groups: [ParamGroup(params: params, lr: lr)], betas: betas, eps: eps, weightDecay: weightDecay, amsgrad: amsgrad, maximize: maximize)
    }

    public override func validate(_ group: ParamGroup) throws {
        try super.validate(group)
        try validateAdam(group)
    }

    public override func update(parameter p: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState) throws {
        try adamUpdate(parameter: p, gradient: gradient, group: group, state: &state, decoupledWeightDecay: true)
    }
}
