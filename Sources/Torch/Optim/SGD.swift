/// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, with
/// PyTorch's update rule (the momentum buffer starts as a copy of the first gradient).
public final class SGD: Optimizer {
    public let momentum: Double
    public let dampening: Double
    public let nesterov: Bool

    public init(groups: [ParamGroup], momentum: Double = 0, dampening: Double = 0, nesterov: Bool = false) throws {
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw TorchError("Nesterov momentum requires a momentum and zero dampening")
        }
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        super.init(groups: groups)
    }

    public convenience init(_ params: [Tensor], lr: Double, momentum: Double = 0, dampening: Double = 0,
                            weightDecay: Double = 0, nesterov: Bool = false) throws {
        try self.init(groups: [ParamGroup(params: params, lr: lr, weightDecay: weightDecay)],
                      momentum: momentum, dampening: dampening, nesterov: nesterov)
    }

    public override func update(parameter p: Tensor, gradient: Tensor, group: ParamGroup, index: Int, step: Int) throws {
        var d = gradient
        if group.weightDecay != 0 { d = try d + p * group.weightDecay }
        if momentum != 0 {
            let buffer: Tensor
            if let existing = state[index]?["momentum_buffer"] {
                try existing.mul_(momentum)
                try existing.add_(d, alpha: 1 - dampening)
                buffer = existing
            } else {
                buffer = try d.clone()
                state[index, default: [:]]["momentum_buffer"] = buffer
            }
            d = nesterov ? try d + buffer * momentum : buffer
        }
        try p.add_(d, alpha: -group.lr)
    }
}
