import Torch

/// nnU-Net v2's residual encoder U-Net (`ResidualEncoderUNet` of dynamic_network_architectures, the
/// network of the nnUNetPlannerResEncM/L/XL plans): a stem (one conv-InstanceNorm-LeakyReLU to the
/// first stage's features), per stage `n_blocks_per_stage[s]` BasicBlockD residual blocks (the first
/// carries the stage's stride), and the plain U-Net's decoder (`UNetDecoder`, usually one conv per
/// stage).
///
/// Parameter names are dynamic_network_architectures' `named_parameters()`:
/// `encoder.stem.convs.0.{conv,norm}.*`, `encoder.stages.N.blocks.M.{conv1,conv2}.{conv,norm}.*`,
/// `encoder.stages.N.blocks.0.skip.{0,1}.{conv,norm}.*` (the projection's index is 1 after an
/// average pool, 0 without), and the decoder's as in `PlainConvUNet`.
public final class ResidualEncoderUNet: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var plain: PlainConvUNet.Config
        /// Residual blocks per encoder stage (nnU-Net: 1, 3, 4, 6, 6, 6, ...).
        public var blocksPerStage: [Int]

        public init(dims: Int, inChannels: Int, classes: Int, featuresPerStage: [Int], kernelSizes: [[Int]], strides: [[Int]],
                    blocksPerStage: [Int], nConvPerStageDecoder: Int = 1, deepSupervision: Bool = true) {
            plain = PlainConvUNet.Config(dims: dims, inChannels: inChannels, classes: classes, featuresPerStage: featuresPerStage,
                                         kernelSizes: kernelSizes, strides: strides, nConvPerStage: 1,
                                         nConvPerStageDecoder: nConvPerStageDecoder, deepSupervision: deepSupervision)
            self.blocksPerStage = blocksPerStage
        }

        /// nnU-Net's residual blocks per stage for `stages` stages.
        public static func nnUNetBlocks(stages: Int) -> [Int] {
            Array(([1, 3, 4] + Array(repeating: 6, count: max(0, stages))).prefix(stages))
        }

        public var divisor: [Int] { plain.divisor }
    }

    public let config: Config
    public let encoder: ResidualEncoder
    public let decoder: PlainConvDecoder

    public init(_ config: Config) throws {
        try config.plain.validate()
        guard config.blocksPerStage.count == config.plain.stages, config.blocksPerStage.allSatisfy({ $0 >= 1 }) else {
            throw TorchError("ResidualEncoderUNet needs one positive block count per stage (\(config.plain.stages)), got \(config.blocksPerStage)")
        }
        self.config = config
        encoder = try ResidualEncoder(config)
        decoder = try PlainConvDecoder(config.plain)
        super.init()
        registerModule("encoder", encoder)
        registerModule("decoder", decoder)
        try Init.heNormalConvolutions(self)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try run(x, deepSupervision: false)[0] }

    /// The logits at full resolution and, with deep supervision, those of every lower decoder stage.
    public func outputs(_ x: Tensor) throws -> [Tensor] { try run(x, deepSupervision: config.plain.deepSupervision) }

    private func run(_ x: Tensor, deepSupervision: Bool) throws -> [Tensor] {
        let c = config.plain
        let spatial = Array(x.shape.dropFirst(2))
        guard x.rank == c.dims + 2, x.shape[1] == c.inChannels, zip(spatial, c.divisor).allSatisfy({ $0 % $1 == 0 }) else {
            throw TorchError("ResidualEncoderUNet input must be (N, \(c.inChannels), spatial) with sizes divisible by \(c.divisor), got \(x.shape)")
        }
        return try decoder.forward(skips: encoder.forward(skips: x), deepSupervision: deepSupervision)
    }

    /// nnU-Net v2's deep-supervision weights (as `PlainConvUNet.outputWeights`).
    public var outputWeights: [Double] {
        guard config.plain.deepSupervision else { return [1] }
        let n = config.plain.stages - 1
        var w = (0..<n).map { 1 / Double(1 << $0) }
        if n > 1 { w[n - 1] = 0 }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }
}

extension ResidualEncoderUNet: MultiOutputModel {}

/// `ConvDropoutNormReLU` with `nonlin=None`: conv and InstanceNorm (children `conv`, `norm`).
public final class ConvNorm: Module {
    public let conv: ConvNd
    public let norm: InstanceNorm

    public init(dims: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int], bias: Bool, eps: Double = 1e-5) throws {
        conv = try ConvNd(dims: dims, inChannels, outChannels, kernelSize: kernelSize, stride: stride,
                          padding: kernelSize.map { ($0 - 1) / 2 }, bias: bias)
        norm = dims == 2 ? try InstanceNorm2d(outChannels, eps: eps, affine: true) : try InstanceNorm3d(outChannels, eps: eps, affine: true)
        super.init()
        registerModule("conv", conv)
        registerModule("norm", norm)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try norm(conv(x)) }
}

/// dynamic_network_architectures' `BasicBlockD`: conv-norm-nonlin (strided), conv-norm, plus the
/// skip (average pool of kernel = stride where strided, then a 1x1 conv without bias and a norm
/// where the channels change), then the nonlinearity.
public final class BasicBlockD: Module {
    public let conv1: ConvNormNonlin
    public let conv2: ConvNorm
    public let skip: Sequential?
    let nonlin: LeakyReLU

    public init(dims: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int], bias: Bool,
                eps: Double = 1e-5, negativeSlope: Double = 0.01) throws {
        conv1 = try ConvNormNonlin(dims: dims, inChannels, outChannels, kernelSize: kernelSize, stride: stride, bias: bias,
                                   eps: eps, negativeSlope: negativeSlope)
        conv2 = try ConvNorm(dims: dims, outChannels, outChannels, kernelSize: kernelSize, stride: [1], bias: bias, eps: eps)
        nonlin = LeakyReLU(negativeSlope: negativeSlope)
        var ops: [Module] = []
        if stride.contains(where: { $0 != 1 }) { ops.append(AvgPool(kernel: stride, stride: stride)) }
        if inChannels != outChannels {
            ops.append(try ConvNorm(dims: dims, inChannels, outChannels, kernelSize: [1], stride: [1], bias: false, eps: eps))
        }
        skip = ops.isEmpty ? nil : Sequential(ops)
        super.init()
        registerModule("conv1", conv1)
        registerModule("conv2", conv2)
        if let skip { registerModule("skip", skip) }
        registerModule("nonlin2", nonlin)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let residual = try skip.map { try $0(x) } ?? x
        return try nonlin(conv2(conv1(x)) + residual)
    }
}

/// `StackedResidualBlocks`: `blocks`, the first carrying the stride.
public final class StackedResidualBlocks: Module {
    public let blocks: Sequential

    public init(dims: Int, count: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: [Int], initialStride: [Int], bias: Bool,
                eps: Double = 1e-5, negativeSlope: Double = 0.01) throws {
        blocks = Sequential(try (0..<count).map {
            try BasicBlockD(dims: dims, $0 == 0 ? inChannels : outChannels, outChannels, kernelSize: kernelSize,
                            stride: $0 == 0 ? initialStride : Array(repeating: 1, count: dims), bias: bias, eps: eps, negativeSlope: negativeSlope)
        })
        super.init()
        registerModule("blocks", blocks)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try blocks(x) }
}

/// `ResidualEncoder` (pool "conv", default stem): `stem`, then `stages.N` (StackedResidualBlocks).
public final class ResidualEncoder: Module {
    public let stem: StackedConvBlocks
    public let stages: Sequential

    init(_ config: ResidualEncoderUNet.Config) throws {
        let c = config.plain
        stem = try StackedConvBlocks(dims: c.dims, count: 1, c.inChannels, c.featuresPerStage[0], kernelSize: c.kernelSizes[0],
                                     initialStride: Array(repeating: 1, count: c.dims), bias: c.convBias, eps: c.normEps,
                                     negativeSlope: c.negativeSlope)
        stages = Sequential(try (0..<c.stages).map { s in
            try StackedResidualBlocks(dims: c.dims, count: config.blocksPerStage[s], c.featuresPerStage[s == 0 ? 0 : s - 1],
                                      c.featuresPerStage[s], kernelSize: c.kernelSizes[s], initialStride: c.strides[s], bias: c.convBias,
                                      eps: c.normEps, negativeSlope: c.negativeSlope)
        })
        super.init()
        registerModule("stem", stem)
        registerModule("stages", stages)
    }

    /// Every stage's output, highest resolution first.
    public func forward(skips x: Tensor) throws -> [Tensor] {
        var h = try stem(x)
        return try stages.layers.map { h = try $0(h); return h }
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try forward(skips: x).last! }
}
