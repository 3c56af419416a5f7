import Foundation

/// Weight initializations with PyTorch's formulas (torch.nn.init).
public enum Init {
    /// (fan_in, fan_out) as torch.nn.init._calculate_fan_in_and_fan_out.
    public static func fans(_ shape: [Int]) -> (fanIn: Int, fanOut: Int) {
        precondition(shape.count >= 2, "fan in/out needs at least 2 dimensions")
        let receptive = shape.dropFirst(2).reduce(1, *)
        return (shape[1] * receptive, shape[0] * receptive)
    }

    public static func uniform_(_ t: Tensor, _ low: Double, _ high: Double) throws {
        try withNoGrad { try t.uniform_(low, high) }
    }

    public static func normal_(_ t: Tensor, mean: Double = 0, std: Double = 1) throws {
        try withNoGrad { try t.normal_(mean: mean, std: std) }
    }

    public static func constant_(_ t: Tensor, _ value: Double) throws {
        try withNoGrad { try t.fill_(value) }
    }

    /// kaiming_uniform_ with leaky_relu gain for slope `a` and mode fan_in.
    public static func kaimingUniform_(_ t: Tensor, a: Double = 0) throws {
        let gain = (2.0 / (1 + a * a)).squareRoot()
        let bound = 3.0.squareRoot() * gain / Double(fans(t.shape).fanIn).squareRoot()
        try uniform_(t, -bound, bound)
    }

    /// kaiming_normal_ (mode fan_out when `fanOut`), as nnU-Net and U-Net ports use.
    public static func kaimingNormal_(_ t: Tensor, a: Double = 0, fanOut: Bool = false) throws {
        let f = fans(t.shape)
        let gain = (2.0 / (1 + a * a)).squareRoot()
        try normal_(t, std: gain / Double(fanOut ? f.fanOut : f.fanIn).squareRoot())
    }

    public static func xavierUniform_(_ t: Tensor, gain: Double = 1) throws {
        let f = fans(t.shape)
        let bound = gain * (6.0 / Double(f.fanIn + f.fanOut)).squareRoot()
        try uniform_(t, -bound, bound)
    }

    /// Normal(mean, std) truncated to [a, b] by resampling the inverse CDF, like trunc_normal_.
    public static func truncNormal_(_ t: Tensor, mean: Double = 0, std: Double = 1, a: Double = -2, b: Double = 2) throws {
        func cdf(_ x: Double) -> Double { (1 + Foundation.erf(x / 2.0.squareRoot())) / 2 }
        let l = cdf((a - mean) / std), u = cdf((b - mean) / std)
        try withNoGrad {
            try t.uniform_(2 * l - 1, 2 * u - 1)
            let v = try t.erfinv()
            try t.copy_(v)
            try t.mul_(std * 2.0.squareRoot())
            try t.add_(mean)
            try t.clamp_(min: a, max: b)
        }
    }

    /// nnU-Net's initialization of every convolution in `module`: kaiming_normal_ with the
    /// LeakyReLU slope, biases zero.
    public static func heNormalConvolutions(_ module: Module, negativeSlope: Double = 1e-2) throws {
        for (_, m) in module.namedModules() {
            guard let conv = m as? ConvNd else { continue }
            try kaimingNormal_(conv.weight, a: negativeSlope)
            if let b = conv.bias { try constant_(b, 0) }
        }
    }

    /// The default Linear/Conv initialization: kaiming_uniform(a=sqrt(5)) weight, uniform(±1/sqrt(fan_in)) bias.
    static func resetLinearLike(weight: Tensor, bias: Tensor?) throws {
        try kaimingUniform_(weight, a: 5.0.squareRoot())
        if let bias {
            let fanIn = fans(weight.shape).fanIn
            let bound = fanIn > 0 ? 1 / Double(fanIn).squareRoot() : 0
            try uniform_(bias, -bound, bound)
        }
    }
}
