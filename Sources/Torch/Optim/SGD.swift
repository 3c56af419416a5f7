/// Stochastic gradient descent with momentum, dampening, Nesterov momentum, L2 weight decay and
/// maximize, with PyTorch 1.13's single-tensor update: the momentum buffer starts as a copy of
/// the first (decayed) gradient, then `buf = momentum * buf + (1 - dampening) * d`.
/// Group options: `momentum`, `dampening`, `weight_decay`, `nesterov`, `maximize`.
public final class SGD: Optimizer {
    public init(groups: [ParamGroup], momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0,
                nesterov: Bool = false, maximize: Bool = false) throws {
        super.init(groups: groups, defaults: [
            "momentum": .number(momentum), "dampening": .number(dampening), "weight_decay": .number(weightDecay),
            "nesterov": .flag(nesterov), "maximize": .flag(maximize),
        ])
        try validateGroups()
    }

    public convenience init(_ params: [Tensor], lr: Double, momentum: Double = 0, dampening: Double = 0,
                            weightDecay: Double = 0, nesterov: Bool = false, maximize: Bool = false) throws {
        try self.init(groups: [ParamGroup(params: params, lr: lr)], momentum: momentum, dampening: dampening,
                      weightDecay: weightDecay, nesterov: nesterov, maximize: maximize)
    }

    public override func validate(_ group: ParamGroup) throws {
        try super.validate(group)
        let momentum = try group.number("momentum"), dampening = try group.number("dampening")
        _ = try group.flag("maximize")
        if momentum < 0 { throw TorchError("invalid momentum value: \(momentum)") }
        if try group.flag("nesterov"), momentum <= 0 || dampening != 0 {
            throw TorchError("Nesterov momentum requires a momentum and zero dampening")
        }
    }

    public override func update(parameter p: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState) throws {
        let momentum = try group.number("momentum"), dampening = try group.number("dampening")
        let weightDecay = try group.number("weight_decay")
        // `d` is the gradient itself until it is first changed; `owned` says it is a temporary.
        var d = gradient, owned = false
        if try group.flag("maximize") { d = try -d; owned = true }
        if weightDecay != 0 {
            if !owned { d = try d.clone(); owned = true }
            try d.add_(p, alpha: weightDecay)
        }
        if momentum != 0 {
            let buffer: Tensor
            if let existing = state["momentum_buffer"] {
                try existing.mul_(momentum)
                try existing.add_(d, alpha: 1 - dampening)
                buffer = existing
            } else {
                buffer = try d.clone()
                state["momentum_buffer"] = buffer
            }
            if try group.flag("nesterov") {
                if !owned { d = try d.clone() }
                try d.add_(buffer, alpha: momentum)
            } else {
                d = buffer
            }
        }
        try p.add_(d, alpha: -group.lr)
    }
}
