import Torch

/// MONAI's `Convolution` as its networks hold one without norm or activation: a (transposed)
/// convolution as child `conv` (so its weights are `....conv.weight`), "same" padding unless
/// transposed.
public final class MONAIConvolution: Module {
    public let conv: ConvNd

    init(dims: Int, _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, bias: Bool = false, transposed: Bool = false) throws {
        conv = try ConvNd(dims: dims, inChannels, outChannels, kernelSize: [kernel], stride: [stride],
                          padding: [transposed ? 0 : (kernel - 1) / 2], bias: bias, transposed: transposed)
        super.init()
        registerModule("conv", conv)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try conv(x) }
}
