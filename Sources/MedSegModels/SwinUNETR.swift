import Torch

/// MONAI's SwinUNETR (`monai.networks.nets.SwinUNETR`, Hatamizadeh et al. 2022), 2D or 3D: a
/// Swin transformer encoder (patch embedding of 2, four stages of shifted-window attention in
/// windows of 7 with relative position bias, patch merging after each) whose five feature maps,
/// layer-normalized, feed a U-Net decoder of residual convolution blocks (`UnetResBlock`:
/// InstanceNorm without affine parameters, LeakyReLU 0.01). `useV2` adds MONAI's residual
/// convolution block before each Swin stage (SwinUNETR-V2).
///
/// Parameter and buffer names are MONAI's: `swinViT.patch_embed.proj.*`,
/// `swinViT.layersN.0.blocks.B.{norm1,attn.{relative_position_bias_table,relative_position_index,qkv,proj},norm2,mlp.linear1,mlp.linear2}`,
/// `swinViT.layersN.0.downsample.{reduction,norm}`, `swinViT.layersNc.0.layer.*` (V2),
/// `encoder{1,2,3,4,10}.layer.conv{1,2,3}.conv.weight`, `decoder{5..1}.{transp_conv.conv,conv_block.conv{1,2,3}.conv}.weight`,
/// `out.conv.conv.*`.
public final class SwinUNETR: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var dims: Int
        public var inChannels: Int
        public var classes: Int
        /// Channels of the patch embedding (the paper's 48; MONAI's default 24); a multiple of 12.
        public var featureSize: Int
        public var depths: [Int]
        public var heads: [Int]
        public var useV2: Bool

        public init(dims: Int = 3, inChannels: Int = 1, classes: Int = 2, featureSize: Int = 48, depths: [Int] = [2, 2, 2, 2],
                    heads: [Int] = [3, 6, 12, 24], useV2: Bool = false) {
            self.dims = dims
            self.inChannels = inChannels
            self.classes = classes
            self.featureSize = featureSize
            self.depths = depths
            self.heads = heads
            self.useV2 = useV2
        }

        /// Every input size must be divisible by 32 (the embedding's 2 and four mergings).
        public static let divisor = 32
    }

    public let config: Config
    public let swinViT: SwinTransformer
    public let encoders: [UnetResBlockWrapper]
    public let decoders: [UnetrUpBlock]
    public let out: ConvHead

    public init(_ config: Config) throws {
        let (d, f) = (config.dims, config.featureSize)
        guard d == 2 || d == 3 else { throw TorchError("SwinUNETR is 2D or 3D, got \(d) dimensions") }
        guard f >= 12, f % 12 == 0 else { throw TorchError("SwinUNETR's feature size must be a multiple of 12, got \(f)") }
        guard config.depths.count == 4, config.heads.count == 4, config.depths.allSatisfy({ $0 >= 1 }),
              zip(config.heads, [1, 2, 4, 8]).allSatisfy({ $0 >= 1 && (f * $1) % $0 == 0 }) else {
            throw TorchError("SwinUNETR needs 4 stages whose head counts divide their widths, got depths \(config.depths), heads \(config.heads)")
        }
        self.config = config
        swinViT = try SwinTransformer(config)
        encoders = try [(config.inChannels, f), (f, f), (2 * f, 2 * f), (4 * f, 4 * f), (16 * f, 16 * f)].map {
            try UnetResBlockWrapper(dims: d, $0.0, $0.1)
        }
        decoders = try [(16 * f, 8 * f), (8 * f, 4 * f), (4 * f, 2 * f), (2 * f, f), (f, f)].map { try UnetrUpBlock(dims: d, $0.0, $0.1) }
        out = try ConvHead(dims: d, f, config.classes)
        super.init()
        registerModule("swinViT", swinViT)
        for (name, block) in zip(["encoder1", "encoder2", "encoder3", "encoder4", "encoder10"], encoders) { registerModule(name, block) }
        for (name, block) in zip(["decoder5", "decoder4", "decoder3", "decoder2", "decoder1"], decoders) { registerModule(name, block) }
        registerModule("out", out)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let c = config
        guard x.rank == c.dims + 2, x.shape[1] == c.inChannels, x.shape.dropFirst(2).allSatisfy({ $0 % Config.divisor == 0 }) else {
            throw TorchError("SwinUNETR input must be (N, \(c.inChannels), spatial) with sizes divisible by \(Config.divisor), got \(x.shape)")
        }
        let hidden = try swinViT.features(x)
        let enc0 = try encoders[0](x)
        let enc1 = try encoders[1](hidden[0])
        let enc2 = try encoders[2](hidden[1])
        let enc3 = try encoders[3](hidden[2])
        var h = try encoders[4](hidden[4])
        h = try decoders[0].forward(h, skip: hidden[3])
        h = try decoders[1].forward(h, skip: enc3)
        h = try decoders[2].forward(h, skip: enc2)
        h = try decoders[3].forward(h, skip: enc1)
        h = try decoders[4].forward(h, skip: enc0)
        return try out(h)
    }
}

/// MONAI's `UnetOutBlock`: a 1x1 convolution with bias (`conv.conv`).
public final class ConvHead: Module {
    public let conv: MONAIConvolution

    init(dims: Int, _ inChannels: Int, _ classes: Int) throws {
        conv = try MONAIConvolution(dims: dims, inChannels, classes, kernel: 1, bias: true)
        super.init()
        registerModule("conv", conv)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try conv(x) }
}

/// MONAI's `UnetResBlock`: conv-norm-LeakyReLU-conv-norm plus the input (through a 1x1 conv and
/// norm where the channels change), then LeakyReLU; InstanceNorm without affine parameters.
public final class UnetResBlock: Module {
    public let conv1: MONAIConvolution, conv2: MONAIConvolution, conv3: MONAIConvolution?

    init(dims: Int, _ inChannels: Int, _ outChannels: Int) throws {
        conv1 = try MONAIConvolution(dims: dims, inChannels, outChannels, kernel: 3)
        conv2 = try MONAIConvolution(dims: dims, outChannels, outChannels, kernel: 3)
        conv3 = inChannels != outChannels ? try MONAIConvolution(dims: dims, inChannels, outChannels, kernel: 1) : nil
        super.init()
        registerModule("conv1", conv1)
        registerModule("conv2", conv2)
        if let conv3 { registerModule("conv3", conv3) }
    }

    private func norm(_ x: Tensor) throws -> Tensor { try F.instanceNorm(x) }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let h = try norm(try conv2(try F.leakyRelu(try norm(try conv1(x)), negativeSlope: 0.01)))
        let residual = try conv3.map { try norm(try $0(x)) } ?? x
        return try F.leakyRelu(h + residual, negativeSlope: 0.01)
    }
}

/// MONAI's `UnetrBasicBlock` with a residual block (child `layer`).
public final class UnetResBlockWrapper: Module {
    public let layer: UnetResBlock

    init(dims: Int, _ inChannels: Int, _ outChannels: Int) throws {
        layer = try UnetResBlock(dims: dims, inChannels, outChannels)
        super.init()
        registerModule("layer", layer)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try layer(x) }
}

/// MONAI's `UnetrUpBlock`: a 2x transposed convolution, the skip concatenated, a residual block.
public final class UnetrUpBlock: Module {
    public let transpConv: MONAIConvolution
    public let convBlock: UnetResBlock

    init(dims: Int, _ inChannels: Int, _ outChannels: Int) throws {
        transpConv = try MONAIConvolution(dims: dims, inChannels, outChannels, kernel: 2, stride: 2, transposed: true)
        convBlock = try UnetResBlock(dims: dims, 2 * outChannels, outChannels)
        super.init()
        registerModule("transp_conv", transpConv)
        registerModule("conv_block", convBlock)
    }

    public func forward(_ x: Tensor, skip: Tensor) throws -> Tensor {
        try convBlock(try Tensor.cat([try transpConv(x), skip], dim: 1))
    }
}
