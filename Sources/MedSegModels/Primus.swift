import Foundation
import Torch

/// Primus (Wald et al. 2025, "Primus: Enforcing Attention Usage for 3D Medical Image Segmentation")
/// as `dynamic_network_architectures` 0.4.4 builds `PrimusS`...`PrimusL`: a patch embedding (one
/// strided convolution of the patch size, 8 per axis), an EVA-02 transformer over the patch
/// tokens (learned absolute position embedding plus 3D rotary embedding of the queries and keys,
/// LayerScale 0.1, a LayerNorm inside attention and inside its SwiGLU MLP) and a patch decoder of
/// transposed convolutions, each but the last followed by a channel LayerNorm and GELU.
///
/// The absolute position embedding holds one position per token of `inputShape`, so the network
/// takes exactly that size, as nnU-Net's Primus trainers build it for the plan's patch size.
///
/// Parameter names are the reference's: `mask_token`, `down_projection.proj.*`, `eva.pos_embed`,
/// `eva.blocks.N.{gamma_1,gamma_2,norm1,attn.{q_proj,k_proj,v_proj,norm,proj},norm2,mlp.{fc1_g,fc1_x,norm,fc2}}.*`,
/// `eva.norm.*`, `up_projection.decode.{S.0,S.1,last}.*`.
public final class Primus: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var inChannels: Int
        public var classes: Int
        public var embedDim: Int
        public var depth: Int
        public var heads: Int
        public var patchEmbedSize: [Int]
        /// The input size the position embedding is made for (divisible by the patch embedding).
        public var inputShape: [Int]
        /// Stochastic depth of the last EVA block while training (nnU-Net's Primus trainers: 0.2).
        public var dropPath: Double
        public var embedding: Embedding

        /// How the image becomes tokens: Primus's one strided convolution, PrimusV2's residual
        /// stages, or PrimusV3's residual stages with their feature maps added to the tokens.
        public enum Embedding: String, Codable, Sendable { case patch, residual, residualWithSkips }

        public init(inChannels: Int, classes: Int, embedDim: Int, depth: Int, heads: Int, patchEmbedSize: [Int] = [8, 8, 8],
                    inputShape: [Int], dropPath: Double = 0.2, embedding: Embedding = .patch) {
            self.inChannels = inChannels; self.classes = classes; self.embedDim = embedDim; self.depth = depth
            self.heads = heads; self.patchEmbedSize = patchEmbedSize; self.inputShape = inputShape; self.dropPath = dropPath
            self.embedding = embedding
        }

        /// The published sizes (`_PRIMUS_CONFIGS`): embedding width, EVA blocks, heads; `PrimusS`... with
        /// `.patch`, `PrimusV2S`... with `.residual`, `PrimusV3S`... with `.residualWithSkips`.
        public static func published(_ size: ModelSize, inChannels: Int, classes: Int, inputShape: [Int], embedding: Embedding = .patch) -> Config {
            let (width, depth, heads): (Int, Int, Int)
            switch size {
            case .S: (width, depth, heads) = (396, 12, 6)
            case .B: (width, depth, heads) = (792, 12, 12)
            case .M: (width, depth, heads) = (864, 16, 12)
            case .L: (width, depth, heads) = (1056, 24, 16)
            }
            return Config(inChannels: inChannels, classes: classes, embedDim: width, depth: depth, heads: heads, inputShape: inputShape,
                          embedding: embedding)
        }

        /// Tokens per axis.
        public var tokenGrid: [Int] { zip(inputShape, patchEmbedSize).map { $0 / $1 } }
    }

    public let config: Config
    public let downProjection: Module
    public let eva: EvaEncoder
    public let upProjection: PrimusPatchDecode
    public let maskToken: Tensor

    public init(_ config: Config) throws {
        let p = config.patchEmbedSize
        guard p.count == 3, config.inputShape.count == 3 else { throw TorchError("Primus is a 3D network, got patch embedding \(p) and input \(config.inputShape)") }
        guard zip(config.inputShape, p).allSatisfy({ $0 > 0 && $0 % $1 == 0 }) else {
            throw TorchError("Primus's input size \(config.inputShape) must be divisible by its patch embedding \(p)")
        }
        guard p.allSatisfy({ $0 >= 2 && $0 & ($0 - 1) == 0 }) else { throw TorchError("Primus's patch embedding must be powers of 2, got \(p)") }
        guard config.embedding == .patch || p == [8, 8, 8] else { throw TorchError("PrimusV2 and V3 embed patches of 8 per axis, got \(p)") }
        let headDim = config.embedDim / max(config.heads, 1)
        // The rotary embedding turns each head's channels as pairs over 3 axes of 4-channel bands.
        guard config.heads >= 1, config.embedDim % config.heads == 0, headDim % 6 == 0, (headDim * 2 / 3) % 4 == 0 else {
            throw TorchError("Primus's width \(config.embedDim) over \(config.heads) heads must give heads of a multiple of 6 channels whose 2/3 is a multiple of 4")
        }
        self.config = config
        maskToken = try Tensor.zeros([1, 1, config.embedDim])
        switch config.embedding {
        case .patch: downProjection = try PrimusPatchEmbed(inChannels: config.inChannels, embedDim: config.embedDim, patch: p)
        case .residual:
            downProjection = try PrimusResidualEmbed(inChannels: config.inChannels, embedDim: config.embedDim, widths: [32, 32, 64, 128],
                                                     negativeSlope: 0, skips: false)
        case .residualWithSkips:
            downProjection = try PrimusResidualEmbed(inChannels: config.inChannels, embedDim: config.embedDim, widths: [32, 64, 256, 1024],
                                                     negativeSlope: 0.01, skips: true)
        }
        upProjection = try PrimusPatchDecode(patch: p, embedDim: config.embedDim, classes: config.classes)
        eva = try EvaEncoder(dim: config.embedDim, depth: config.depth, heads: config.heads, grid: config.tokenGrid, dropPath: config.dropPath)
        super.init()
        _ = registerBuffer("mask_token", maskToken)
        registerModule("down_projection", downProjection)
        registerModule("up_projection", upProjection)
        registerModule("eva", eva)
        // The reference's InitWeights_He(1e-2) for the convolutions; EVA initialises itself.
        try withNoGrad {
            try Init.heNormalConvolutions(downProjection)
            try Init.heNormalConvolutions(upProjection)
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == 5, x.size(1) == config.inChannels, Array(x.shape.dropFirst(2)) == config.inputShape else {
            throw TorchError("Primus takes (N, \(config.inChannels), \(config.inputShape.map(String.init).joined(separator: ", "))) inputs "
                             + "(its position embedding is made for that size), got \(x.shape)")
        }
        let tokens = try downProjection(x)  // (B, D, w, h, d)
        let shape = tokens.shape
        let encoded = try eva(tokens.flatten(start: 2).transpose(1, 2))
        return try upProjection(encoded.transpose(1, 2).reshape(shape))
    }
}

/// One strided convolution from the image to one token per patch (`PatchEmbed`: `proj`).
public final class PrimusPatchEmbed: Module {
    public let proj: Conv3d

    init(inChannels: Int, embedDim: Int, patch: [Int]) throws {
        proj = try Conv3d(inChannels, embedDim, kernelSize: patch, stride: patch)
        super.init()
        registerModule("proj", proj)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try proj(x) }
}

/// Transposed convolutions from the tokens back to the image grid, one per halving of the patch,
/// widths shrinking geometrically toward the classes (rounded to multiples of 8 as the reference).
public final class PrimusPatchDecode: Module {
    public let stages: [(up: ConvTranspose3d, norm: ChannelLayerNorm?)]

    init(patch: [Int], embedDim: Int, classes: Int) throws {
        let count = patch.max()!.trailingZeroBitCount  // log2 of the largest (powers of 2)
        let strides = (0..<count).map { n in patch.map { ($0 >> n) % 2 == 0 && $0 >> n > 0 ? 2 : 1 } }.reversed().map { $0 }
        let reduction = pow(Double(embedDim) / Double(2 * classes), 1 / Double(count))
        // np.round rounds halves to even.
        func roundTo8(_ v: Double) -> Int { Int(max(8, ((v + 1e-6) / 8).rounded(.toNearestOrEven) * 8)) }
        var widths = [embedDim] + (0..<count).map { roundTo8(Double(embedDim) / pow(reduction, Double($0 + 1))) }
        widths[count] = classes
        var stages: [(ConvTranspose3d, ChannelLayerNorm?)] = []
        for s in 0..<count {
            let up = try ConvTranspose3d(widths[s], widths[s + 1], kernelSize: strides[s], stride: strides[s])
            stages.append((up, s < count - 1 ? try ChannelLayerNorm(widths[s + 1], eps: 1e-6) : nil))
        }
        self.stages = stages
        super.init()
        let decode = Module()
        for (s, stage) in stages.enumerated() {
            if let norm = stage.1 {
                let block = Module()
                block.registerModule("0", stage.0)
                block.registerModule("1", norm)
                decode.registerModule(String(s), block)
            } else {
                decode.registerModule(String(s), stage.0)
            }
        }
        registerModule("decode", decode)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        var h = x
        for stage in stages {
            h = try stage.up(h)
            if let norm = stage.norm { h = try F.gelu(norm(h)) }
        }
        return h
    }
}

/// LayerNorm over the channels of a (N, C, ...) tensor (`LayerNormNd`): `weight`, `bias`.
public final class ChannelLayerNorm: Module {
    public let weight: Tensor
    public let bias: Tensor
    public let eps: Double

    init(_ channels: Int, eps: Double) throws {
        weight = try Tensor.ones([channels])
        bias = try Tensor.zeros([channels])
        self.eps = eps
        super.init()
        registerParameter("weight", weight)
        registerParameter("bias", bias)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let mean = try x.mean(dim: 1, keepDim: true)
        let centred = try x - mean
        let variance = try (centred * centred).mean(dim: 1, keepDim: true)
        let shape = [1, weight.size(0)] + Array(repeating: 1, count: x.rank - 2)
        return try centred * (variance + eps).rsqrt() * weight.reshape(shape) + bias.reshape(shape)
    }
}
