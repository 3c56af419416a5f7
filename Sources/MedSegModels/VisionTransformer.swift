import Foundation
import Torch

/// Splits an image into non-overlapping patches and embeds each one (a strided convolution).
/// Keys: `proj.weight`, `proj.bias` (timm's `PatchEmbed`).
public final class PatchEmbed: Module {
    public let patchSize: Int
    public let proj: Conv2d

    public init(inChannels: Int, embedDim: Int, patchSize: Int) throws {
        self.patchSize = patchSize
        proj = try Conv2d(inChannels, embedDim, kernelSize: patchSize, stride: patchSize)
        super.init()
        registerModule("proj", proj)
    }

    /// (B, C, H, W) -> (B, H/p * W/p, D), patches in row-major order.
    public override func forward(_ x: Tensor) throws -> Tensor {
        try proj(x).flatten(start: 2).transpose(1, 2)
    }
}

/// Multi-head self-attention with a fused `qkv` projection (timm's `Attention`).
public final class ViTAttention: Module {
    public let heads: Int
    public let qkv: Linear
    public let proj: Linear

    public init(dim: Int, heads: Int, qkvBias: Bool = true) throws {
        guard heads >= 1, dim % heads == 0 else { throw TorchError("attention width \(dim) is not divisible by \(heads) heads") }
        self.heads = heads
        qkv = try Linear(dim, dim * 3, bias: qkvBias)
        proj = try Linear(dim, dim)
        super.init()
        registerModule("qkv", qkv)
        registerModule("proj", proj)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let (b, n, c) = (x.size(0), x.size(1), x.size(2))
        let hd = c / heads
        // (B, N, 3C) -> (3, B, heads, N, hd)
        let parts = try qkv(x).reshape([b, n, 3, heads, hd]).permute([2, 0, 3, 1, 4])
        let q = try parts.select(dim: 0, index: 0), k = try parts.select(dim: 0, index: 1), v = try parts.select(dim: 0, index: 2)
        let scores = try q.matmul(k.transpose(-2, -1)) * (1.0 / Double(hd).squareRoot())
        let attn = try scores.softmax(dim: -1)
        let out = try attn.matmul(v).transpose(1, 2).reshape([b, n, c])
        return try proj(out)
    }
}

/// Two linear layers with a GELU between them (timm's `Mlp`): `fc1`, `fc2`.
public final class ViTMlp: Module {
    public let fc1: Linear
    public let fc2: Linear

    public init(dim: Int, hidden: Int) throws {
        fc1 = try Linear(dim, hidden)
        fc2 = try Linear(hidden, dim)
        super.init()
        registerModule("fc1", fc1)
        registerModule("fc2", fc2)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try fc2(F.gelu(fc1(x))) }
}

/// A pre-norm transformer block: x + attn(norm1(x)), then x + mlp(norm2(x)).
public final class ViTBlock: Module {
    public let norm1: LayerNorm
    public let attn: ViTAttention
    public let norm2: LayerNorm
    public let mlp: ViTMlp

    public init(dim: Int, heads: Int, mlpDim: Int, qkvBias: Bool, eps: Double) throws {
        norm1 = try LayerNorm(dim, eps: eps)
        attn = try ViTAttention(dim: dim, heads: heads, qkvBias: qkvBias)
        norm2 = try LayerNorm(dim, eps: eps)
        mlp = try ViTMlp(dim: dim, hidden: mlpDim)
        super.init()
        registerModule("norm1", norm1)
        registerModule("attn", attn)
        registerModule("norm2", norm2)
        registerModule("mlp", mlp)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let h = try x + attn(norm1(x))
        return try h + mlp(norm2(h))
    }
}

/// What `VisionTransformer.loadEncoderWeights(url:strict:)` did.
public struct EncoderLoadReport: CustomStringConvertible {
    /// The key-by-key result (names after prefix stripping).
    public var load: LoadReport
    /// The prefixes removed from the file's keys (`module.`, `encoder.`, `backbone.`), in order.
    public var strippedPrefixes: [String]
    /// Set when the file's `pos_embed` had another grid and was resampled: (file shape, model shape).
    public var resampledPosEmbed: (from: [Int], to: [Int])?
    /// Set when `patch_embed.proj.weight` had another number of input channels and was adapted
    /// as timm's `adapt_input_conv` does (summed for 1 channel, else tiled and scaled): (file, model).
    public var adaptedInputChannels: (from: Int, to: Int)?

    /// Every encoder tensor was loaded (unexpected extra keys such as a classifier head aside).
    public var isComplete: Bool { load.missingKeys.isEmpty && load.shapeMismatches.isEmpty }

    public var description: String {
        var lines = [load.description]
        if !strippedPrefixes.isEmpty { lines.append("stripped key prefixes: " + strippedPrefixes.joined(separator: ", ")) }
        if let r = resampledPosEmbed { lines.append("pos_embed resampled (bicubic) from \(r.from) to \(r.to)") }
        if let a = adaptedInputChannels { lines.append("patch_embed.proj.weight adapted from \(a.from) to \(a.to) input channels") }
        return lines.joined(separator: "\n")
    }
}

/// A ViT encoder (ViT-B/16 at the defaults) with timm's parameter names: `patch_embed.proj.*`,
/// `cls_token`, `pos_embed`, `blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*`, `norm.*`.
///
/// `forwardFeatures(_:taps:)` returns the token sequences (B, 1 + N, D) after chosen blocks. Inputs
/// of another size than `imageSize` (any multiple of the patch size) get the learned position
/// embeddings resampled bicubically on the 2D grid, the cls position kept as is.
public final class VisionTransformer: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var imageSize = 224
        public var patchSize = 16
        public var inChannels = 3
        public var hidden = 768
        public var depth = 12
        public var heads = 12
        public var mlpDim = 3072
        public var qkvBias = true
        public var eps = 1e-6

        public init(imageSize: Int = 224, patchSize: Int = 16, inChannels: Int = 3, hidden: Int = 768, depth: Int = 12,
                    heads: Int = 12, mlpDim: Int = 3072, qkvBias: Bool = true, eps: Double = 1e-6) {
            self.imageSize = imageSize; self.patchSize = patchSize; self.inChannels = inChannels; self.hidden = hidden
            self.depth = depth; self.heads = heads; self.mlpDim = mlpDim; self.qkvBias = qkvBias; self.eps = eps
        }

        /// Patches per side at the pretraining size.
        public var gridSize: Int { imageSize / patchSize }
        /// Positions of `pos_embed`: the cls token and the patch grid (197 for ViT-B/16 at 224).
        public var positions: Int { 1 + gridSize * gridSize }
    }

    public let config: Config
    public let patchEmbed: PatchEmbed
    public let clsToken: Tensor
    public let posEmbed: Tensor
    public let blocks: ModuleList<ViTBlock>
    public let norm: LayerNorm

    public init(_ config: Config = Config()) throws {
        guard config.patchSize >= 1, config.imageSize >= config.patchSize, config.imageSize % config.patchSize == 0 else {
            throw TorchError("ViT image size \(config.imageSize) must be a positive multiple of the patch size \(config.patchSize)")
        }
        guard config.depth >= 1, config.hidden >= 1, config.mlpDim >= 1, config.inChannels >= 1 else {
            throw TorchError("ViT depth, hidden, MLP width and input channels must be positive")
        }
        self.config = config
        patchEmbed = try PatchEmbed(inChannels: config.inChannels, embedDim: config.hidden, patchSize: config.patchSize)
        clsToken = try Tensor.zeros([1, 1, config.hidden])
        posEmbed = try Tensor.zeros([1, config.positions, config.hidden])
        blocks = ModuleList(try (0..<config.depth).map { _ in
            try ViTBlock(dim: config.hidden, heads: config.heads, mlpDim: config.mlpDim, qkvBias: config.qkvBias, eps: config.eps)
        })
        norm = try LayerNorm(config.hidden, eps: config.eps)
        super.init()
        // timm's order: cls_token, pos_embed, patch_embed, blocks, norm.
        registerParameter("cls_token", clsToken)
        registerParameter("pos_embed", posEmbed)
        registerModule("patch_embed", patchEmbed)
        registerModule("blocks", blocks)
        registerModule("norm", norm)
        try withNoGrad {
            try Init.truncNormal_(posEmbed, std: 0.02)
            try Init.truncNormal_(clsToken, std: 1e-6)
        }
    }

    /// The position embeddings for a grid of `h` x `w` patches: `pos_embed` itself at the
    /// pretraining grid, else its patch part resampled (bicubic, align_corners false) and the cls part kept.
    public func positionEmbedding(gridHeight h: Int, gridWidth w: Int) throws -> Tensor {
        try Self.resamplePositionEmbedding(posEmbed, from: (config.gridSize, config.gridSize), to: (h, w))
    }

    /// Resamples (1, 1 + gh*gw, D) position embeddings to (1, 1 + h*w, D), as timm's `resample_abs_pos_embed`.
    public static func resamplePositionEmbedding(_ pos: Tensor, from old: (Int, Int), to new: (Int, Int)) throws -> Tensor {
        let d = pos.size(-1)
        guard pos.rank == 3, pos.size(1) == 1 + old.0 * old.1 else {
            throw TorchError("pos_embed of shape \(pos.shape) does not hold a cls position and a \(old.0)x\(old.1) grid")
        }
        if old == new { return pos }
        let cls = try pos.narrow(dim: 1, start: 0, length: 1)
        let grid = try pos.narrow(dim: 1, start: 1, length: old.0 * old.1).reshape([1, old.0, old.1, d]).permute([0, 3, 1, 2])
        let resized = try F.interpolate(grid, size: [new.0, new.1], mode: .bicubic, alignCorners: false)
        let tokens = try resized.permute([0, 2, 3, 1]).reshape([1, new.0 * new.1, d])
        return try Tensor.cat([cls, tokens], dim: 1)
    }

    /// A patch-embedding kernel (D, C, p, p) for `channels` inputs, as timm's `adapt_input_conv`:
    /// RGB kernels summed over C for one channel, else tiled over the channels and scaled by C / channels.
    public static func adaptInputChannels(_ weight: Tensor, to channels: Int) throws -> Tensor {
        let c = weight.size(1)
        if c == channels { return weight }
        if channels == 1 { return try weight.sum(dims: [1], keepDim: true) }
        let reps = (channels + c - 1) / c
        return try weight.repeated([1, reps, 1, 1]).narrow(dim: 1, start: 0, length: channels) * (Double(c) / Double(channels))
    }

    /// The default taps of an MLA decoder: after blocks depth/4, depth/2, 3*depth/4 and depth (1-based).
    public static func defaultTaps(depth: Int) -> [Int] {
        (1...4).map { max(1, depth * $0 / 4) }
    }

    /// Embeds `x` (B, C, H, W) into (B, 1 + N, D) tokens with cls token and position embeddings.
    public func embed(_ x: Tensor) throws -> Tensor {
        let p = config.patchSize
        guard x.rank == 4, x.size(1) == config.inChannels, x.size(2) % p == 0, x.size(3) % p == 0, x.size(2) > 0, x.size(3) > 0 else {
            throw TorchError("ViT input must be (N, \(config.inChannels), H, W) with H and W multiples of the patch size \(p), got \(x.shape)")
        }
        let b = x.size(0)
        let tokens = try patchEmbed(x)
        let cls = try clsToken.expand([b, 1, config.hidden])
        let pos = try positionEmbedding(gridHeight: x.size(2) / p, gridWidth: x.size(3) / p)
        return try Tensor.cat([cls, tokens], dim: 1) + pos
    }

    /// The token sequences (B, 1 + N, D) after the blocks numbered in `taps` (1-based, ascending
    /// order not required); the final `norm` is not applied to them.
    public func forwardFeatures(_ x: Tensor, taps: [Int]) throws -> [Tensor] {
        guard let last = taps.max(), taps.allSatisfy({ $0 >= 1 }), last <= config.depth else {
            throw TorchError("ViT taps \(taps) must be block numbers in 1...\(config.depth)")
        }
        var h = try embed(x)
        var found: [Int: Tensor] = [:]
        for i in 0..<last {
            h = try blocks[i](h)
            if taps.contains(i + 1) { found[i + 1] = h }
        }
        return taps.map { found[$0]! }
    }

    /// All blocks, then `norm`: (B, 1 + N, D).
    public override func forward(_ x: Tensor) throws -> Tensor {
        try norm(forwardFeatures(x, taps: [config.depth])[0])
    }

    /// Prefixes that wrappers put before encoder keys; removed (repeatedly, in any order) on load.
    public static let strippablePrefixes = ["module.", "encoder.", "backbone."]

    /// Loads encoder weights from a `torch.save` file (`.pth`, `.pt`, `.bin`, `.ckpt`) or a
    /// `.safetensors` file with timm's key names. `module.`/`encoder.`/`backbone.` prefixes are
    /// removed; a `pos_embed` for another grid of the same width is resampled bicubically, and a
    /// patch-embedding kernel for another number of input channels (RGB weights, gray images) is
    /// adapted as timm does (`adaptInputChannels(_:to:)`).
    ///
    /// Missing encoder keys and shape mismatches always throw (the error carries the full report):
    /// a frozen encoder must not stay partly random. Unexpected keys (a classifier head, say) are
    /// listed in the report and only throw with `strict`.
    @discardableResult
    public func loadEncoderWeights(url: URL, strict: Bool = false) throws -> EncoderLoadReport {
        try loadEncoderState(try WeightsFile.read(url).tensors, strict: strict, source: url.lastPathComponent)
    }

    /// `loadEncoderWeights(url:strict:)` for an already read state dict.
    @discardableResult
    public func loadEncoderState(_ dict: StateDict, strict: Bool = false, source: String = "weights") throws -> EncoderLoadReport {
        var stripped: [String] = []
        var pairs = dict.pairs
        var changed = true
        while changed {
            changed = false
            for prefix in Self.strippablePrefixes where pairs.contains(where: { $0.name.hasPrefix(prefix) }) {
                pairs = pairs.map { ($0.name.hasPrefix(prefix) ? String($0.name.dropFirst(prefix.count)) : $0.name, $0.tensor) }
                if !stripped.contains(prefix) { stripped.append(prefix) }
                changed = true
            }
        }
        var resampled: (from: [Int], to: [Int])?
        if let i = pairs.firstIndex(where: { $0.name == "pos_embed" }) {
            let found = pairs[i].tensor
            let n = found.rank == 3 ? found.size(1) - 1 : -1
            let side = n > 0 ? Int(Double(n).squareRoot().rounded()) : 0
            if found.shape != posEmbed.shape, found.rank == 3, found.size(0) == 1, found.size(2) == config.hidden,
               side * side == n {
                let g = config.gridSize
                let r = try withNoGrad { try Self.resamplePositionEmbedding(found.to(dtype: posEmbed.dtype), from: (side, side), to: (g, g)) }
                pairs[i] = ("pos_embed", r)
                resampled = (found.shape, posEmbed.shape)
            }
        }
        var adapted: (from: Int, to: Int)?
        let projWeight = patchEmbed.proj.weight
        if let i = pairs.firstIndex(where: { $0.name == "patch_embed.proj.weight" }) {
            let found = pairs[i].tensor
            if found.rank == 4, found.size(1) != config.inChannels,
               found.shape == [projWeight.size(0), found.size(1), projWeight.size(2), projWeight.size(3)] {
                pairs[i] = ("patch_embed.proj.weight", try withNoGrad { try Self.adaptInputChannels(found, to: config.inChannels) })
                adapted = (found.size(1), config.inChannels)
            }
        }
        // Check first so that a bad file changes nothing.
        let own = Dictionary(namedStateTensors().map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { a, _ in a })
        let given = Dictionary(pairs.map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { _, b in b })
        let missing = namedStateTensors().map(\.name).filter { given[$0] == nil }
        let unexpected = pairs.map(\.name).filter { own[$0] == nil }
        let mismatched = namedStateTensors().compactMap { n, t -> String? in
            guard let g = given[n], g != t.shape else { return nil }
            return "shape mismatch for \(n): model has \(t.shape), weights have \(g)"
        }
        if !missing.isEmpty || !mismatched.isEmpty || (strict && !unexpected.isEmpty) {
            var lines: [String] = []
            if !missing.isEmpty { lines.append("missing keys (\(missing.count)): " + missing.joined(separator: ", ")) }
            if !unexpected.isEmpty { lines.append("unexpected keys (\(unexpected.count)): " + unexpected.joined(separator: ", ")) }
            lines += mismatched
            if !stripped.isEmpty { lines.append("stripped key prefixes: " + stripped.joined(separator: ", ")) }
            throw TorchError("\(source): encoder weights do not match the ViT (image \(config.imageSize), patch \(config.patchSize), hidden \(config.hidden), depth \(config.depth)):\n" + lines.joined(separator: "\n"))
        }
        var report = try loadState(pairs.filter { own[$0.name] != nil }, strict: true)
        report.unexpectedKeys = unexpected
        let result = EncoderLoadReport(load: report, strippedPrefixes: stripped, resampledPosEmbed: resampled,
                                       adaptedInputChannels: adapted)
        return result
    }
}
