import Foundation

/// Adam (with L2 weight decay added to the gradient) and, with `decoupled`, AdamW; PyTorch's
/// single-tensor update, including the order of its bias-correction arithmetic.
public class Adam: Optimizer {
    public let beta1: Double
    public let beta2: Double
    public let eps: Double
    public let amsgrad: Bool
    let decoupledWeightDecay: Bool

    public init(groups: [ParamGroup], betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8, amsgrad: Bool = false) {
        beta1 = betas.0
        beta2 = betas.1
        self.eps = eps
        self.amsgrad = amsgrad
        decoupledWeightDecay = false
        super.init(groups: groups)
    }

    init(groups: [ParamGroup], betas: (Double, Double), eps: Double, amsgrad: Bool, decoupled: Bool) {
        beta1 = betas.0
        beta2 = betas.1
        self.eps = eps
        self.amsgrad = amsgrad
        decoupledWeightDecay = decoupled
        super.init(groups: groups)
    }

    public convenience init(_ params: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 0, amsgrad: Bool = false) {
        self.init(groups: [ParamGroup(params: params, lr: lr, weightDecay: weightDecay)], betas: betas, eps: eps, amsgrad: amsgrad)
    }

    public override func update(parameter p: Tensor, gradient: Tensor, group: ParamGroup, index: Int, step: Int) throws {
        var grad = gradient
        if group.weightDecay != 0 {
            if decoupledWeightDecay { try p.mul_(1 - group.lr * group.weightDecay) }
            else { grad = try grad + p * group.weightDecay }
        }
        let (expAvg, _) = try stateTensor(index, "exp_avg", like: p)
        let (expAvgSq, _) = try stateTensor(index, "exp_avg_sq", like: p)
        try expAvg.mul_(beta1)
        try expAvg.add_(grad, alpha: 1 - beta1)
        try expAvgSq.mul_(beta2)
        try expAvgSq.addcmul_(grad, grad, value: 1 - beta2)
        let biasCorrection1 = 1 - Foundation.pow(beta1, Double(step))
        let biasCorrection2Sqrt = (1 - Foundation.pow(beta2, Double(step))).squareRoot()
        let stepSize = group.lr / biasCorrection1
        let second: Tensor
        if amsgrad {
            let (maxSq, _) = try stateTensor(index, "max_exp_avg_sq", like: p)
            try maxSq.maximum_(expAvgSq)
            second = maxSq
        } else {
            second = expAvgSq
        }
        let denom = try second.sqrt() / biasCorrection2Sqrt
        try denom.add_(eps)
        try p.addcdiv_(expAvg, denom, value: -stepSize)
    }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), PyTorch's AdamW.
public final class AdamW: Adam {
    public override init(groups: [ParamGroup], betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8, amsgrad: Bool = false) {
        super.init(groups: groups, betas: betas, eps: eps, amsgrad: amsgrad, decoupled: true)
    }

    /// PyTorch's default weight decay for AdamW is 1e-2.
    public convenience init(_ params: [Tensor], lr: Double = 1e-3, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
                            weightDecay: Double = 1e-2, amsgrad: Bool = false) {
        self.init(groups: [ParamGroup(params: params, lr: lr, weightDecay: weightDecay)], betas: betas, eps: eps, amsgrad: amsgrad)
    }
}
