import Torch

/// nnU-Net v2's default network, `PlainConvUNet` of dynamic_network_architectures, built from a
/// plan: per stage a `StackedConvBlocks` of conv-InstanceNorm-LeakyReLU blocks (the first conv of
/// a stage carries the stage's stride, so downsampling is a strided conv), transposed-conv
/// upsampling by the encoder stride, concatenated skips, and a 1x1 seg layer after every decoder
/// stage (all of them exist; only the last is used without deep supervision).
///
/// Parameter names are dynamic_network_architectures' state_dict keys:
/// `encoder.stages.N.0.convs.M.{conv,norm}.{weight,bias}`, `decoder.stages.N.convs.M.{conv,norm}.*`,
/// `decoder.transpconvs.N.{weight,bias}`, `decoder.seg_layers.N.{weight,bias}`.
///
/// PyTorch's own `state_dict()` of that network also holds aliases of the same tensors, because
/// PyTorch does not de-duplicate shared modules when it writes a state_dict:
/// - every `ConvDropoutNormReLU` keeps `conv`/`norm`/`nonlin` attributes AND an `all_modules`
///   Sequential of the same modules, so `...conv.weight` reappears as `...all_modules.0.weight`
///   and `...norm.weight` as `...all_modules.1.weight`;
/// - the decoder keeps a reference to the encoder (`decoder.encoder`), so every encoder tensor
///   reappears under `decoder.encoder.`.
/// A Swift module registered twice would count and update its parameters twice, so this model
/// registers each tensor once (the names `named_parameters()` gives, which de-duplicates), and
/// `nnUNetStateDict()` / `loadNNUNetState(_:)` convert to and from the aliased checkpoint layout
/// (key for key and in order of PyTorch's `state_dict().keys()`).
public final class PlainConvUNet: Module {
    public struct Config: Codable, Equatable, Sendable {
        /// 2 or 3 spatial dimensions.
        public var dims: Int
        public var inChannels: Int
        public var classes: Int
        /// Output channels of each stage (nnU-Net: 32 * 2^i capped at 320 in 3D, 512 in 2D).
        public var featuresPerStage: [Int]
        /// Per stage, the conv kernel size along each spatial axis.
        public var kernelSizes: [[Int]]
        /// Per stage, the stride of its first conv along each axis (stage 0: all 1).
        public var strides: [[Int]]
        public var nConvPerStage: Int
        public var nConvPerStageDecoder: Int
        public var convBias: Bool
        public var deepSupervision: Bool
        public var normEps: Double
        public var negativeSlope: Double

        public init(dims: Int, inChannels: Int, classes: Int, featuresPerStage: [Int], kernelSizes: [[Int]],
                    strides: [[Int]], nConvPerStage: Int = 2, nConvPerStageDecoder: Int = 2, convBias: Bool = true,
                    deepSupervision: Bool = true, normEps: Double = 1e-5, negativeSlope: Double = 0.01) {
            self.dims = dims
            self.inChannels = inChannels
            self.classes = classes
            self.featuresPerStage = featuresPerStage
            self.kernelSizes = kernelSizes
            self.strides = strides
            self.nConvPerStage = nConvPerStage
            self.nConvPerStageDecoder = nConvPerStageDecoder
            self.convBias = convBias
            self.deepSupervision = deepSupervision
            self.normEps = normEps
            self.negativeSlope = negativeSlope
        }

        public var stages: Int { featuresPerStage.count }

        /// nnU-Net's feature cap: 320 for 3D, 512 for 2D.
        public static func maxFeatures(dims: Int) -> Int { dims == 3 ? 320 : 512 }

        /// A regular plan: `stages` stages, kernel 3 everywhere, stride 2 on every axis after the
        /// first stage, features `baseFeatures * 2^i` capped at nnU-Net's 320 (3D) / 512 (2D).
        public static func regular(dims: Int, inChannels: Int, classes: Int, stages: Int, baseFeatures: Int = 32,
                                   maxFeatures: Int? = nil, deepSupervision: Bool = true) -> Config {
            let cap = maxFeatures ?? Self.maxFeatures(dims: dims)
            return Config(dims: dims, inChannels: inChannels, classes: classes,
                          featuresPerStage: (0..<stages).map { min(baseFeatures << $0, cap) },
                          kernelSizes: Array(repeating: Array(repeating: 3, count: dims), count: stages),
                          strides: (0..<stages).map { Array(repeating: $0 == 0 ? 1 : 2, count: dims) },
                          deepSupervision: deepSupervision)
        }

        /// Per axis, the factor every input size must be divisible by (product of the strides).
        public var divisor: [Int] {
            (0..<dims).map { d in strides.reduce(1) { $0 * ($1.count > d ? $1[d] : 1) } }
        }

        func validate() throws {
            guard dims == 2 || dims == 3 else { throw TorchError("PlainConvUNet supports 2 or 3 spatial dimensions, got \(dims)") }
            guard stages >= 2 else { throw TorchError("PlainConvUNet needs at least 2 stages, got \(stages)") }
            guard kernelSizes.count == stages, strides.count == stages else {
                throw TorchError("PlainConvUNet needs one kernel size and one stride per stage (\(stages) stages), got \(kernelSizes.count) and \(strides.count)")
            }
            guard kernelSizes.allSatisfy({ $0.count == dims && $0.allSatisfy { $0 >= 1 && $0 % 2 == 1 } }) else {
                throw TorchError("PlainConvUNet kernel sizes must be odd, \(dims) per stage, got \(kernelSizes)")
            }
            guard strides.allSatisfy({ $0.count == dims && $0.allSatisfy { $0 >= 1 } }) else {
                throw TorchError("PlainConvUNet strides must be positive, \(dims) per stage, got \(strides)")
            }
            guard featuresPerStage.allSatisfy({ $0 >= 1 }), inChannels >= 1, classes >= 1,
                  nConvPerStage >= 1, nConvPerStageDecoder >= 1 else {
                throw TorchError("PlainConvUNet channels and conv counts must be positive")
            }
        }
    }

    public let config: Config
    public let encoder: PlainConvEncoder
    public let decoder: PlainConvDecoder

    public init(_ config: Config) throws {
        try config.validate()
        self.config = config
        encoder = try PlainConvEncoder(config)
        decoder = try PlainConvDecoder(config)
        super.init()
        registerModule("encoder", encoder)
        registerModule("decoder", decoder)
        // dynamic_network_architectures' InitWeights_He(1e-2): kaiming normal (fan in, leaky
        // slope 1e-2) for conv and transposed-conv weights, zero biases; norms keep ones/zeros.
        try Init.heNormalConvolutions(self)
    }

    /// The full-resolution logits (the first of `outputs(_:)`; the lower-resolution seg layers
    /// are not computed).
    public override func forward(_ x: Tensor) throws -> Tensor {
        try run(x, deepSupervision: false)[0]
    }

    /// The logits at full resolution and, with deep supervision, those of every lower decoder
    /// stage, highest resolution first (`stages - 1` outputs).
    public func outputs(_ x: Tensor) throws -> [Tensor] {
        try run(x, deepSupervision: config.deepSupervision)
    }

    private func run(_ x: Tensor, deepSupervision: Bool) throws -> [Tensor] {
        let divisor = config.divisor
        let spatial = Array(x.shape.dropFirst(2))
        guard x.rank == config.dims + 2, x.shape[1] == config.inChannels,
              zip(spatial, divisor).allSatisfy({ $0 % $1 == 0 }) else {
            throw TorchError("PlainConvUNet input must be (N, \(config.inChannels), \(config.dims == 2 ? "H, W" : "D, H, W")) with sizes divisible by \(divisor), got \(x.shape)")
        }
        return try decoder.forward(skips: encoder.forward(skips: x), deepSupervision: deepSupervision)
    }

    /// Deep-supervision loss weights of nnU-Net v2: 1/2^i for output i, the lowest-resolution
    /// output weighted 0, normalized to sum 1 (only the first output without deep supervision).
    public var outputWeights: [Double] {
        guard config.deepSupervision else { return [1] }
        let n = config.stages - 1
        var w = (0..<n).map { 1 / Double(1 << $0) }
        if n > 1 { w[n - 1] = 0 }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }

    // MARK: nnU-Net checkpoint layout

    /// The state dict as dynamic_network_architectures' `state_dict()` writes it: the same
    /// tensors, with the `all_modules.K` and `decoder.encoder.` aliases, in PyTorch's order.
    public func nnUNetStateDict() -> StateDict {
        StateDict(Self.withAliases(namedStateTensors()).map { ($0.name, $0.tensor) })
    }

    /// Loads an nnU-Net checkpoint's `network_weights` (aliases ignored, since they repeat the
    /// canonical tensors); a state dict without the aliases loads as well.
    @discardableResult
    public func loadNNUNetState(_ weights: [(name: String, tensor: Tensor)], strict: Bool = true) throws -> LoadReport {
        try loadState(weights.filter { !Self.isAlias($0.name) }, strict: strict)
    }

    /// Whether a key of an nnU-Net state dict is an alias of another key.
    public static func isAlias(_ key: String) -> Bool {
        key.hasPrefix("decoder.encoder.") || key.hasPrefix("module.decoder.encoder.") || key.contains(".all_modules.")
    }

    /// Inserts the aliases into a canonical (de-duplicated) list, in `state_dict()` order:
    /// per conv block `conv.*, norm.*` then `all_modules.0.*, all_modules.1.*`, and the encoder's
    /// entries repeated as `decoder.encoder.*` right before the decoder's own.
    static func withAliases(_ canonical: [(name: String, tensor: Tensor)]) -> [(name: String, tensor: Tensor)] {
        func expandBlocks(_ list: [(name: String, tensor: Tensor)]) -> [(name: String, tensor: Tensor)] {
            var out: [(name: String, tensor: Tensor)] = []
            var i = 0
            while i < list.count {
                // A conv block's entries are contiguous and share the prefix before `.conv.`.
                guard let r = list[i].name.range(of: ".conv.") else { out.append(list[i]); i += 1; continue }
                let prefix = String(list[i].name[..<r.lowerBound])
                var j = i
                var aliases: [(name: String, tensor: Tensor)] = []
                while j < list.count, list[j].name.hasPrefix(prefix + ".") {
                    let rest = list[j].name.dropFirst(prefix.count + 1)
                    let alias: String
                    if rest.hasPrefix("conv.") { alias = "all_modules.0." + rest.dropFirst("conv.".count) }
                    else if rest.hasPrefix("norm.") { alias = "all_modules.1." + rest.dropFirst("norm.".count) }
                    else { break }
                    out.append(list[j])
                    aliases.append(("\(prefix).\(alias)", list[j].tensor))
                    j += 1
                }
                out += aliases
                i = j
            }
            return out
        }
        let expanded = expandBlocks(canonical)
        let encoder = expanded.filter { $0.name.hasPrefix("encoder.") }
        let decoder = expanded.filter { $0.name.hasPrefix("decoder.") }
        return encoder + encoder.map { ("decoder." + $0.name, $0.tensor) } + decoder
    }
}

extension PlainConvUNet: MultiOutputModel {}

/// dynamic_network_architectures' `ConvDropoutNormReLU` without dropout: conv (padding
/// (k-1)/2), InstanceNorm (affine), LeakyReLU. Children `conv`, `norm`, `nonlin`.
public final class ConvNormNonlin: Module {
    public let conv: ConvNd
    public let norm: InstanceNorm
    public let nonlin: LeakyReLU

    public init(dims: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: [Int], stride: [Int], bias: Bool,
                eps: Double = 1e-5, negativeSlope: Double = 0.01) throws {
        conv = try ConvNd(dims: dims, inChannels, outChannels, kernelSize: kernelSize, stride: stride,
                          padding: kernelSize.map { ($0 - 1) / 2 }, bias: bias)
        norm = dims == 2 ? try InstanceNorm2d(outChannels, eps: eps, affine: true)
                         : try InstanceNorm3d(outChannels, eps: eps, affine: true)
        nonlin = LeakyReLU(negativeSlope: negativeSlope)
        super.init()
        registerModule("conv", conv)
        registerModule("norm", norm)
        registerModule("nonlin", nonlin)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try nonlin(norm(conv(x)))
    }
}

/// dynamic_network_architectures' `StackedConvBlocks`: `convs`, a Sequential of conv blocks,
/// the first of which carries the stride.
public final class StackedConvBlocks: Module {
    public let convs: Sequential

    public init(dims: Int, count: Int, _ inChannels: Int, _ outChannels: Int, kernelSize: [Int], initialStride: [Int],
                bias: Bool, eps: Double = 1e-5, negativeSlope: Double = 0.01) throws {
        convs = Sequential(try (0..<count).map {
            try ConvNormNonlin(dims: dims, $0 == 0 ? inChannels : outChannels, outChannels, kernelSize: kernelSize,
                               stride: $0 == 0 ? initialStride : [1], bias: bias, eps: eps, negativeSlope: negativeSlope)
        })
        super.init()
        registerModule("convs", convs)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try convs(x) }
}

/// `PlainConvEncoder` (pool "conv"): `stages.N` is a Sequential holding one StackedConvBlocks.
public final class PlainConvEncoder: Module {
    public let stages: Sequential

    init(_ c: PlainConvUNet.Config) throws {
        stages = Sequential(try (0..<c.stages).map { s in
            Sequential(try StackedConvBlocks(dims: c.dims, count: c.nConvPerStage,
                                             s == 0 ? c.inChannels : c.featuresPerStage[s - 1], c.featuresPerStage[s],
                                             kernelSize: c.kernelSizes[s], initialStride: c.strides[s], bias: c.convBias,
                                             eps: c.normEps, negativeSlope: c.negativeSlope))
        })
        super.init()
        registerModule("stages", stages)
    }

    /// Every stage's output, highest resolution first.
    public func forward(skips x: Tensor) throws -> [Tensor] {
        var h = x
        return try stages.layers.map { h = try $0(h); return h }
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try forward(skips: x).last! }
}

/// `UNetDecoder`: per decoder stage s (lowest resolution first) a transposed conv (kernel =
/// stride = the encoder stride it undoes), a StackedConvBlocks on [up, skip] and a 1x1 seg layer.
public final class PlainConvDecoder: Module {
    public let stages: ModuleList<StackedConvBlocks>
    public let transpconvs: ModuleList<ConvNd>
    public let segLayers: ModuleList<ConvNd>

    init(_ c: PlainConvUNet.Config) throws {
        let n = c.stages
        var stageList: [StackedConvBlocks] = [], ups: [ConvNd] = [], segs: [ConvNd] = []
        for s in 1..<n {
            let below = c.featuresPerStage[n - s], skip = c.featuresPerStage[n - s - 1]
            let stride = c.strides[n - s]
            ups.append(try ConvNd(dims: c.dims, below, skip, kernelSize: stride, stride: stride, bias: c.convBias, transposed: true))
            stageList.append(try StackedConvBlocks(dims: c.dims, count: c.nConvPerStageDecoder, 2 * skip, skip,
                                                   kernelSize: c.kernelSizes[n - s - 1], initialStride: [1], bias: c.convBias,
                                                   eps: c.normEps, negativeSlope: c.negativeSlope))
            segs.append(try ConvNd(dims: c.dims, skip, c.classes, kernelSize: [1], bias: true))
        }
        stages = ModuleList(stageList)
        transpconvs = ModuleList(ups)
        segLayers = ModuleList(segs)
        super.init()
        registerModule("stages", stages)
        registerModule("transpconvs", transpconvs)
        registerModule("seg_layers", segLayers)
    }

    /// Seg outputs, highest resolution first (only the last stage's without deep supervision).
    public func forward(skips: [Tensor], deepSupervision: Bool) throws -> [Tensor] {
        var h = skips[skips.count - 1]
        var outs: [Tensor] = []
        for s in 0..<stages.count {
            h = try stages[s](Tensor.cat([transpconvs[s](h), skips[skips.count - s - 2]], dim: 1))
            if deepSupervision || s == stages.count - 1 { outs.append(try segLayers[s](h)) }
        }
        return outs.reversed()
    }
}

extension PlainConvUNet {
    /// nnU-Net's `get_pool_and_conv_props` (without a limit on the poolings): strides and kernels per
    /// stage, the patch padded to the divisor, and the divisor per axis.
    public static func poolAndConvProps(spacing: [Double], patch: [Double], minEdge: Int = 4)
        -> (strides: [[Int]], kernels: [[Int]], patch: [Double], divisor: [Int]) {
        let dims = spacing.count
        var currentSpacing = spacing, size = patch
        var strides: [[Int]] = [Array(repeating: 1, count: dims)], kernels: [[Int]] = []
        var pools = Array(repeating: 0, count: dims), kernel = Array(repeating: 1, count: dims)
        let m = Double(minEdge)
        while true {
            var valid = (0..<dims).filter { size[$0] >= 2 * m }
            guard !valid.isEmpty else { break }
            let minValid = valid.map { currentSpacing[$0] }.min()!
            valid = valid.filter { currentSpacing[$0] / minValid < 2 }
            if valid.count == 1 && size[valid[0]] < 3 * m { break }
            guard !valid.isEmpty else { break }
            let minSpacing = currentSpacing.min()!
            for d in 0..<dims where kernel[d] != 3 && currentSpacing[d] / minSpacing < 2 { kernel[d] = 3 }
            var stride = Array(repeating: 1, count: dims)
            for v in valid {
                stride[v] = 2
                pools[v] += 1
                currentSpacing[v] *= 2
                size[v] = (size[v] / 2).rounded(.up)
            }
            strides.append(stride)
            kernels.append(kernel)
        }
        kernels.append(Array(repeating: 3, count: dims))
        let divisor = pools.map { 1 << $0 }
        let padded = zip(patch, divisor).map { p, d -> Double in
            let r = p.truncatingRemainder(dividingBy: Double(d))
            return r == 0 ? p : p + Double(d) - r
        }
        return (strides, kernels, padded, divisor)
    }
}
