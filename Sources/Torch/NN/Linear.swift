/// y = x W^T + b, as torch.nn.Linear.
public final class Linear: Module {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Tensor
    public let bias: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) throws {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = try Tensor.empty([outFeatures, inFeatures])
        self.bias = bias ? try Tensor.empty([outFeatures]) : nil
        super.init()
        registerParameter("weight", weight)
        if let b = self.bias { registerParameter("bias", b) }
        try Init.resetLinearLike(weight: weight, bias: self.bias)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try F.linear(x, weight: weight, bias: bias)
    }
}

/// Passes its input through unchanged.
public final class Identity: Module {
    public override init() { super.init() }
    public override func forward(_ x: Tensor) throws -> Tensor { x }
}
