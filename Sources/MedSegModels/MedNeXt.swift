import Torch

/// MedNeXt v1 (Roy et al. 2023) as MONAI 1.6 builds it (`monai.networks.nets.MedNeXt`,
/// `create_mednext`): ConvNeXt blocks (a depthwise k x k convolution, GroupNorm over each channel,
/// a 1x1 expansion with GELU, a 1x1 projection) in a U shape whose down- and up-sampling are
/// themselves such blocks with stride 2, skips added, and with deep supervision one 1x1 head per
/// decoder level. Sizes S, B, M, L are `create_mednext`'s (32 initial filters, residual blocks).
///
/// Parameter names are MONAI's: `stem.*`, `enc_stages.L.B.{conv1,norm,conv2,conv3}.*`,
/// `down_blocks.L.{conv1,norm,conv2,conv3,res_conv}.*`, `bottleneck.B.*`, `up_blocks.L.*`,
/// `dec_stages.L.B.*`, `out_0.conv_out.*`, `out_blocks.L.conv_out.*`.
public final class MedNeXt: Module {
    public typealias Size = ModelSize

    public struct Config: Codable, Equatable, Sendable {
        public var dims: Int
        public var inChannels: Int
        public var classes: Int
        public var initFilters = 32
        public var kernelSize: Int
        public var encoderExpansion: [Int]
        public var decoderExpansion: [Int]
        public var bottleneckExpansion: Int
        public var blocksDown: [Int]
        public var blocksBottleneck: Int
        public var blocksUp: [Int]
        public var residual = true
        public var deepSupervision: Bool

        /// `create_mednext(size, ...)`.
        public init(size: Size, dims: Int = 3, inChannels: Int = 1, classes: Int = 2, kernelSize: Int = 3, deepSupervision: Bool = false) {
            self.dims = dims
            self.inChannels = inChannels
            self.classes = classes
            self.kernelSize = kernelSize
            self.deepSupervision = deepSupervision
            switch size {
            case .S:
                (encoderExpansion, decoderExpansion, bottleneckExpansion) = ([2, 2, 2, 2], [2, 2, 2, 2], 2)
                (blocksDown, blocksBottleneck, blocksUp) = ([2, 2, 2, 2], 2, [2, 2, 2, 2])
            case .B:
                (encoderExpansion, decoderExpansion, bottleneckExpansion) = ([2, 3, 4, 4], [4, 4, 3, 2], 4)
                (blocksDown, blocksBottleneck, blocksUp) = ([2, 2, 2, 2], 2, [2, 2, 2, 2])
            case .M:
                (encoderExpansion, decoderExpansion, bottleneckExpansion) = ([2, 3, 4, 4], [4, 4, 3, 2], 4)
                (blocksDown, blocksBottleneck, blocksUp) = ([3, 4, 4, 4], 4, [4, 4, 4, 3])
            case .L:
                (encoderExpansion, decoderExpansion, bottleneckExpansion) = ([3, 4, 8, 8], [8, 8, 4, 3], 8)
                (blocksDown, blocksBottleneck, blocksUp) = ([3, 4, 8, 8], 8, [8, 8, 4, 3])
            }
        }

        /// Every input size must be divisible by this (one halving per level).
        public var divisor: Int { 1 << blocksDown.count }
    }

    public let config: Config
    public let stem: ConvNd
    public let encStages: ModuleList<Sequential>
    public let downBlocks: ModuleList<MedNeXtBlock>
    public let bottleneck: Sequential
    public let upBlocks: ModuleList<MedNeXtBlock>
    public let decStages: ModuleList<Sequential>
    public let out0: MedNeXtHead
    let outBlocks: ModuleList<MedNeXtHead>?

    public init(_ config: Config) throws {
        let (d, f, k) = (config.dims, config.initFilters, config.kernelSize)
        guard d == 2 || d == 3 else { throw TorchError("MedNeXt is 2D or 3D, got \(d) dimensions") }
        guard k >= 1, k % 2 == 1 else { throw TorchError("MedNeXt's kernel size must be odd (3 or 5 as published), got \(k)") }
        let levels = config.blocksDown.count
        self.config = config
        func blocks(_ count: Int, _ channels: Int, _ expansion: Int) throws -> Sequential {
            Sequential(try (0..<count).map { _ in
                try MedNeXtBlock(.plain, dims: d, channels, channels, expansion: expansion, kernel: k, residual: config.residual)
            })
        }
        stem = try ConvNd(dims: d, config.inChannels, f, kernelSize: [1])
        encStages = ModuleList(try (0..<levels).map { try blocks(config.blocksDown[$0], f << $0, config.encoderExpansion[$0]) })
        downBlocks = ModuleList(try (0..<levels).map {
            try MedNeXtBlock(.down, dims: d, f << $0, f << ($0 + 1), expansion: config.encoderExpansion[$0], kernel: k, residual: config.residual)
        })
        bottleneck = try blocks(config.blocksBottleneck, f << levels, config.bottleneckExpansion)
        upBlocks = ModuleList(try (0..<levels).map {
            try MedNeXtBlock(.up, dims: d, f << (levels - $0), f << (levels - $0 - 1), expansion: config.decoderExpansion[$0], kernel: k,
                             residual: config.residual)
        })
        decStages = ModuleList(try (0..<levels).map { try blocks(config.blocksUp[$0], f << (levels - $0 - 1), config.decoderExpansion[$0]) })
        out0 = try MedNeXtHead(dims: d, f, config.classes)
        outBlocks = config.deepSupervision ? ModuleList(try (1...levels).reversed().map { try MedNeXtHead(dims: d, f << $0, config.classes) }) : nil
        super.init()
        registerModule("stem", stem)
        registerModule("enc_stages", encStages)
        registerModule("down_blocks", downBlocks)
        registerModule("bottleneck", bottleneck)
        registerModule("up_blocks", upBlocks)
        registerModule("dec_stages", decStages)
        registerModule("out_0", out0)
        if let outBlocks { registerModule("out_blocks", outBlocks) }
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try outputs(x, deepSupervision: false)[0] }

    /// The full-resolution logits and, with deep supervision, those of each lower decoder level
    /// (highest resolution first).
    public func outputs(_ x: Tensor) throws -> [Tensor] { try outputs(x, deepSupervision: config.deepSupervision) }

    private func outputs(_ x: Tensor, deepSupervision: Bool) throws -> [Tensor] {
        let c = config
        guard x.rank == c.dims + 2, x.shape[1] == c.inChannels, x.shape.dropFirst(2).allSatisfy({ $0 % c.divisor == 0 }) else {
            throw TorchError("MedNeXt input must be (N, \(c.inChannels), spatial) with sizes divisible by \(c.divisor), got \(x.shape)")
        }
        var h = try stem(x)
        var skips: [Tensor] = []
        for (stage, down) in zip(encStages, downBlocks) {
            h = try stage(h)
            skips.append(h)
            h = try down(h)
        }
        h = try bottleneck(h)
        var lower: [Tensor] = []
        for (i, (up, stage)) in zip(upBlocks, decStages).enumerated() {
            if deepSupervision, let outBlocks { lower.append(try outBlocks[i](h)) }
            h = try stage(try up(h) + skips[skips.count - 1 - i])
        }
        return [try out0(h)] + lower.reversed()
    }

    /// Deep-supervision weights as nnU-Net's (halving per level, normalized); MONAI leaves them to the trainer.
    public var outputWeights: [Double] {
        guard config.deepSupervision else { return [1] }
        let w = (0...config.blocksUp.count).map { 1 / Double(1 << $0) }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }
}

extension MedNeXt: MultiOutputModel {}

/// A MedNeXt block; `.down` and `.up` blocks resample by 2 with a strided (transposed) depthwise
/// convolution and a 1x1 (transposed) residual convolution `res_conv`; `.up` pads its output by one
/// at the start of each axis (the transposed convolution gives 2n - 1).
public final class MedNeXtBlock: Module {
    public enum Kind: Sendable { case plain, down, up }
    public let kind: Kind
    public let residual: Bool
    public let conv1: ConvNd, norm: GroupNorm, conv2: ConvNd, conv3: ConvNd
    public let resConv: ConvNd?

    init(_ kind: Kind, dims: Int, _ inChannels: Int, _ outChannels: Int, expansion: Int, kernel: Int, residual: Bool) throws {
        self.kind = kind
        self.residual = residual
        let stride = kind == .plain ? 1 : 2
        conv1 = try ConvNd(dims: dims, inChannels, inChannels, kernelSize: [kernel], stride: [stride], padding: [kernel / 2],
                           groups: inChannels, transposed: kind == .up)
        norm = try GroupNorm(inChannels, inChannels)
        conv2 = try ConvNd(dims: dims, inChannels, expansion * inChannels, kernelSize: [1])
        conv3 = try ConvNd(dims: dims, expansion * inChannels, outChannels, kernelSize: [1])
        resConv = kind != .plain && residual
            ? try ConvNd(dims: dims, inChannels, outChannels, kernelSize: [1], stride: [2], transposed: kind == .up) : nil
        super.init()
        registerModule("conv1", conv1)
        registerModule("norm", norm)
        registerModule("conv2", conv2)
        registerModule("conv3", conv3)
        if let resConv { registerModule("res_conv", resConv) }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        var h = try conv3(try F.gelu(try conv2(try norm(try conv1(x)))))
        switch kind {
        case .plain:
            return residual ? try x + h : h
        case .down:
            return try resConv.map { try h + $0(x) } ?? h
        case .up:
            let start = Array(repeating: [1, 0], count: x.rank - 2).flatMap { $0 }
            h = try h.pad(start)
            return try resConv.map { try h + (try $0(x)).pad(start) } ?? h
        }
    }
}

/// MedNeXt's output block: a 1x1 transposed convolution with bias (`conv_out`).
public final class MedNeXtHead: Module {
    public let convOut: ConvNd

    init(dims: Int, _ inChannels: Int, _ classes: Int) throws {
        convOut = try ConvNd(dims: dims, inChannels, classes, kernelSize: [1], transposed: true)
        super.init()
        registerModule("conv_out", convOut)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try convOut(x) }
}
