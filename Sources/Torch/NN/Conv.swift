/// N-dimensional convolution (N = 1, 2, 3) or its transpose, with PyTorch's parameter layout
/// (`weight` [out, in/groups, k...] or, transposed, [in, out/groups, k...]; `bias` [out]).
public class ConvNd: Module {
    public let inChannels: Int
    public let outChannels: Int
    public let kernelSize: [Int]
    public let stride: [Int]
    public let padding: [Int]
    public let dilation: [Int]
    public let outputPadding: [Int]
    public let groups: Int
    public let transposed: Bool
    public let weight: Tensor
    public let bias: Tensor?

    public init(dims: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int] = [1],
                padding: [Int] = [0], dilation: [Int] = [1], outputPadding: [Int] = [0], groups: Int = 1,
                bias: Bool = true, transposed: Bool = false) throws {
        func expand(_ v: [Int], _ name: String) throws -> [Int] {
            if v.count == dims { return v }
            if v.count == 1 { return Array(repeating: v[0], count: dims) }
            throw TorchError("\(name) needs 1 or \(dims) values, got \(v)")
        }
        guard inChannels % groups == 0, outChannels % groups == 0 else {
            throw TorchError("in_channels \(inChannels) and out_channels \(outChannels) must be divisible by groups \(groups)")
        }
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernelSize = try expand(kernelSize, "kernel_size")
        self.stride = try expand(stride, "stride")
        self.padding = try expand(padding, "padding")
        self.dilation = try expand(dilation, "dilation")
        self.outputPadding = try expand(outputPadding, "output_padding")
        self.groups = groups
        self.transposed = transposed
        let shape = transposed ? [inChannels, outChannels / groups] + self.kernelSize
                               : [outChannels, inChannels / groups] + self.kernelSize
        weight = try Tensor.empty(shape)
        self.bias = bias ? try Tensor.empty([outChannels]) : nil
        super.init()
        registerParameter("weight", weight)
        if let b = self.bias { registerParameter("bias", b) }
        try Init.resetLinearLike(weight: weight, bias: self.bias)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try F.conv(x, weight: weight, bias: bias, stride: stride, padding: padding, dilation: dilation,
                   groups: groups, transposed: transposed, outputPadding: outputPadding)
    }
}

public final class Conv1d: ConvNd {
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                dilation: Int = 1, groups: Int = 1, bias: Bool = true) throws {
        try super.init(dims: 1, inChannels, outChannels, kernelSize: [kernelSize], stride: [stride], padding: [padding],
                       dilation: [dilation], groups: groups, bias: bias)
    }
}

public final class Conv2d: ConvNd {
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int] = [1], padding: [Int] = [0],
                dilation: [Int] = [1], groups: Int = 1, bias: Bool = true) throws {
        try super.init(dims: 2, inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                       dilation: dilation, groups: groups, bias: bias)
    }

    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true) throws {
        try self.init(inChannels, outChannels, kernelSize: [kernelSize], stride: [stride], padding: [padding],
                      dilation: [dilation], groups: groups, bias: bias)
    }
}

public final class Conv3d: ConvNd {
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int] = [1], padding: [Int] = [0],
                dilation: [Int] = [1], groups: Int = 1, bias: Bool = true) throws {
        try super.init(dims: 3, inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                       dilation: dilation, groups: groups, bias: bias)
    }

    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1, bias: Bool = true) throws {
        try self.init(inChannels, outChannels, kernelSize: [kernelSize], stride: [stride], padding: [padding],
                      dilation: [dilation], groups: groups, bias: bias)
    }
}

public final class ConvTranspose2d: ConvNd {
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int] = [1], padding: [Int] = [0],
                outputPadding: [Int] = [0], groups: Int = 1, bias: Bool = true, dilation: [Int] = [1]) throws {
        try super.init(dims: 2, inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                       dilation: dilation, outputPadding: outputPadding, groups: groups, bias: bias, transposed: true)
    }

    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            outputPadding: Int = 0, groups: Int = 1, bias: Bool = true) throws {
        try self.init(inChannels, outChannels, kernelSize: [kernelSize], stride: [stride], padding: [padding],
                      outputPadding: [outputPadding], groups: groups, bias: bias)
    }
}

public final class ConvTranspose3d: ConvNd {
    public init(_ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int] = [1], padding: [Int] = [0],
                outputPadding: [Int] = [0], groups: Int = 1, bias: Bool = true, dilation: [Int] = [1]) throws {
        try super.init(dims: 3, inChannels, outChannels, kernelSize: kernelSize, stride: stride, padding: padding,
                       dilation: dilation, outputPadding: outputPadding, groups: groups, bias: bias, transposed: true)
    }

    public convenience init(_ inChannels: Int, _ outChannels: Int, kernelSize: Int, stride: Int = 1, padding: Int = 0,
                            outputPadding: Int = 0, groups: Int = 1, bias: Bool = true) throws {
        try self.init(inChannels, outChannels, kernelSize: [kernelSize], stride: [stride], padding: [padding],
                      outputPadding: [outputPadding], groups: groups, bias: bias)
    }
}
