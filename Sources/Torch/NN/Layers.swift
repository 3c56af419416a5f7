/// Stateless layers wrapping functions of `F`, so they can sit in a `Sequential`.

public final class ReLU: Module {
    /// Overwrites the input (saves an allocation), as nn.ReLU(inplace=True).
    public let inplace: Bool
    public init(inplace: Bool = false) { self.inplace = inplace; super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor {
        guard inplace else { return try x.relu() }
        try x.relu_()
        return x
    }
}

public final class LeakyReLU: Module {
    public let negativeSlope: Double
    public init(negativeSlope: Double = 0.01) { self.negativeSlope = negativeSlope; super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try F.leakyRelu(x, negativeSlope: negativeSlope) }
}

public final class GELU: Module {
    public let approximateTanh: Bool
    public init(approximateTanh: Bool = false) { self.approximateTanh = approximateTanh; super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try F.gelu(x, approximateTanh: approximateTanh) }
}

public final class SiLU: Module {
    public override init() { super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.silu() }
}

public final class Sigmoid: Module {
    public override init() { super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.sigmoid() }
}

public final class Tanh: Module {
    public override init() { super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.tanh() }
}

public final class Softmax: Module {
    public let dim: Int
    public init(dim: Int) { self.dim = dim; super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try x.softmax(dim: dim) }
}

/// Element dropout; `channelwise` zeroes whole feature maps (Dropout2d/3d).
public final class Dropout: Module {
    public let p: Double
    public let channelwise: Bool
    public init(p: Double = 0.5, channelwise: Bool = false) throws {
        guard p >= 0 && p <= 1 else { throw TorchError("dropout probability must be in [0, 1], got \(p)") }
        self.p = p
        self.channelwise = channelwise
        super.init()
    }
    public override func forward(_ x: Tensor) throws -> Tensor {
        channelwise ? try F.featureDropout(x, p: p, training: isTraining) : try F.dropout(x, p: p, training: isTraining)
    }
}

public final class MaxPool: Module {
    public let kernel: [Int], stride: [Int], padding: [Int]
    public init(kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0]) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
        super.init()
    }
    public override func forward(_ x: Tensor) throws -> Tensor { try F.maxPool(x, kernel: kernel, stride: stride, padding: padding) }
}

public final class AvgPool: Module {
    public let kernel: [Int], stride: [Int], padding: [Int]
    public init(kernel: [Int], stride: [Int]? = nil, padding: [Int] = [0]) {
        self.kernel = kernel; self.stride = stride ?? kernel; self.padding = padding
        super.init()
    }
    public override func forward(_ x: Tensor) throws -> Tensor { try F.avgPool(x, kernel: kernel, stride: stride, padding: padding) }
}

public final class AdaptiveAvgPool: Module {
    public let outputSize: [Int]
    public init(outputSize: [Int]) { self.outputSize = outputSize; super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { try F.adaptiveAvgPool(x, outputSize: outputSize) }
}

public final class Upsample: Module {
    public let scaleFactor: [Double]
    public let mode: InterpolationMode
    public let alignCorners: Bool
    public init(scaleFactor: [Double], mode: InterpolationMode = .nearest, alignCorners: Bool = false) {
        self.scaleFactor = scaleFactor; self.mode = mode; self.alignCorners = alignCorners
        super.init()
    }
    public override func forward(_ x: Tensor) throws -> Tensor {
        try F.interpolate(x, scaleFactor: scaleFactor, mode: mode, alignCorners: alignCorners)
    }
}
