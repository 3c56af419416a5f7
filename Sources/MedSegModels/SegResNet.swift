import Torch

/// MONAI's SegResNet (`monai.networks.nets.SegResNet`, after Myronenko's "3D MRI brain tumor
/// segmentation using autoencoder regularization", without the VAE branch), 2D or 3D, at MONAI's
/// defaults: 8 initial filters doubling per level, residual blocks (1, 2, 2, 4) down and (1, 1, 1)
/// up, GroupNorm of 8 groups, ReLU, linear upsampling after a 1x1 convolution, summed skips.
///
/// A residual block is pre-activated: x + conv2(relu(norm2(conv1(relu(norm1(x)))))). Parameter
/// names are MONAI's: `convInit.conv.weight`, `down_layers.L.{0: the strided conv (L > 0), 1...:
/// blocks}.{norm1,norm2,conv1.conv,conv2.conv}`, `up_samples.L.0.conv.weight`,
/// `up_layers.L.B.*`, `conv_final.{0: norm, 2.conv: the 1x1 head with bias}`.
public final class SegResNet: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var dims: Int
        public var inChannels: Int
        public var classes: Int
        /// Channels of the first level (doubled at every level down).
        public var initFilters: Int
        public var blocksDown: [Int]
        public var blocksUp: [Int]
        public var groups: Int

        public init(dims: Int = 3, inChannels: Int = 1, classes: Int = 2, initFilters: Int = 8, blocksDown: [Int] = [1, 2, 2, 4],
                    blocksUp: [Int] = [1, 1, 1], groups: Int = 8) {
            self.dims = dims
            self.inChannels = inChannels
            self.classes = classes
            self.initFilters = initFilters
            self.blocksDown = blocksDown
            self.blocksUp = blocksUp
            self.groups = groups
        }

        /// MONAI's block counts for `levels` levels: (1, 2, 2, 4) for its default 4, more levels
        /// of 4 blocks beyond; one block per level up.
        public static func monai(dims: Int, inChannels: Int, classes: Int, initFilters: Int = 8, levels: Int = 4) -> Config {
            Config(dims: dims, inChannels: inChannels, classes: classes, initFilters: initFilters,
                   blocksDown: Array(([1, 2, 2] + Array(repeating: 4, count: max(0, levels - 3))).prefix(levels)),
                   blocksUp: Array(repeating: 1, count: max(0, levels - 1)))
        }

        /// Every input size must be divisible by this (one halving per level below the first).
        public var divisor: Int { 1 << (blocksDown.count - 1) }
    }

    public let config: Config
    public let convInit: MONAIConvolution
    public let downLayers: ModuleList<Sequential>
    public let upLayers: ModuleList<Sequential>
    public let upSamples: ModuleList<Sequential>
    public let convFinal: Sequential

    public init(_ config: Config) throws {
        let (d, f) = (config.dims, config.initFilters)
        guard d == 2 || d == 3 else { throw TorchError("SegResNet is 2D or 3D, got \(d) dimensions") }
        guard config.blocksDown.count >= 2, config.blocksUp.count == config.blocksDown.count - 1,
              (config.blocksDown + config.blocksUp).allSatisfy({ $0 >= 1 }) else {
            throw TorchError("SegResNet needs one up level fewer than down levels, got blocks down \(config.blocksDown) and up \(config.blocksUp)")
        }
        guard f >= 1, f % config.groups == 0, config.inChannels >= 1, config.classes >= 1 else {
            throw TorchError("SegResNet needs initial filters divisible by its \(config.groups) groups, got \(f)")
        }
        self.config = config
        convInit = try MONAIConvolution(dims: d, config.inChannels, f, kernel: 3)
        downLayers = ModuleList(try config.blocksDown.enumerated().map { level, blocks in
            let channels = f << level
            let entry: Module = level == 0 ? Identity() : try MONAIConvolution(dims: d, channels / 2, channels, kernel: 3, stride: 2)
            return Sequential([entry] + (try (0..<blocks).map { _ in try SegResBlock(dims: d, channels: channels, groups: config.groups) }))
        })
        let levels = config.blocksUp.count
        upLayers = ModuleList(try config.blocksUp.enumerated().map { i, blocks in
            let channels = f << (levels - i - 1)
            return Sequential(try (0..<blocks).map { _ in try SegResBlock(dims: d, channels: channels, groups: config.groups) })
        })
        upSamples = ModuleList(try (0..<levels).map { i in
            let channels = f << (levels - i)
            return Sequential(try MONAIConvolution(dims: d, channels, channels / 2, kernel: 1),
                              Upsample(scaleFactor: Array(repeating: 2, count: d), mode: d == 3 ? .trilinear : .bilinear))
        })
        convFinal = Sequential(try GroupNorm(config.groups, f), ReLU(), try MONAIConvolution(dims: d, f, config.classes, kernel: 1, bias: true))
        super.init()
        registerModule("convInit", convInit)
        registerModule("down_layers", downLayers)
        registerModule("up_layers", upLayers)
        registerModule("up_samples", upSamples)
        registerModule("conv_final", convFinal)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let c = config
        let spatial = Array(x.shape.dropFirst(2))
        guard x.rank == c.dims + 2, x.shape[1] == c.inChannels, spatial.allSatisfy({ $0 % c.divisor == 0 }) else {
            throw TorchError("SegResNet input must be (N, \(c.inChannels), spatial) with sizes divisible by \(c.divisor), got \(x.shape)")
        }
        var h = try convInit(x)
        var skips: [Tensor] = []
        for level in downLayers {
            h = try level(h)
            skips.append(h)
        }
        for (i, (up, blocks)) in zip(upSamples, upLayers).enumerated() {
            h = try blocks(try up(h) + skips[skips.count - 2 - i])
        }
        return try convFinal(h)
    }
}

/// SegResNet's pre-activation residual block (MONAI's `segresnet_block.ResBlock`).
public final class SegResBlock: Module {
    public let norm1: GroupNorm, norm2: GroupNorm
    public let conv1: MONAIConvolution, conv2: MONAIConvolution

    init(dims: Int, channels: Int, groups: Int) throws {
        norm1 = try GroupNorm(groups, channels)
        norm2 = try GroupNorm(groups, channels)
        conv1 = try MONAIConvolution(dims: dims, channels, channels, kernel: 3)
        conv2 = try MONAIConvolution(dims: dims, channels, channels, kernel: 3)
        super.init()
        registerModule("norm1", norm1)
        registerModule("norm2", norm2)
        registerModule("conv1", conv1)
        registerModule("conv2", conv2)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let h = try conv1(try norm1(x).relu())
        return try conv2(try norm2(h).relu()) + x
    }
}
