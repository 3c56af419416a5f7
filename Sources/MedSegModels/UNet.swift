import Torch

/// The classic U-Net (Ronneberger et al.; the ISBI 2012 seed): double conv-BN-ReLU blocks, max-pool
/// down, transposed-conv up, concatenated skips, 1x1 head. 2D or 3D. Parameter names match the
/// PyTorch reference (`enc.N.M`, `up.N`, `dec.N.M`, `out`), 31,042,369 parameters at the defaults.
public final class UNet: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var inChannels = 1
        public var classes = 1
        /// Channels of the first level; each level below doubles it.
        public var features = 64
        /// Number of levels (resolutions), including the bottleneck.
        public var depth = 5
        /// 2 or 3 spatial dimensions.
        public var dims = 2

        public init(inChannels: Int = 1, classes: Int = 1, features: Int = 64, depth: Int = 5, dims: Int = 2) {
            self.inChannels = inChannels
            self.classes = classes
            self.features = features
            self.depth = depth
            self.dims = dims
        }
    }

    public let config: Config
    public let enc: ModuleList<Sequential>
    public let up: ModuleList<ConvNd>
    public let dec: ModuleList<Sequential>
    public let out: ConvNd

    public init(_ config: Config = Config()) throws {
        guard config.dims == 2 || config.dims == 3 else { throw TorchError("U-Net supports 2 or 3 spatial dimensions, got \(config.dims)") }
        guard config.depth >= 2 else { throw TorchError("U-Net depth must be at least 2, got \(config.depth)") }
        guard config.features >= 1, config.inChannels >= 1, config.classes >= 1 else {
            throw TorchError("U-Net channels must be positive (features \(config.features), in \(config.inChannels), classes \(config.classes))")
        }
        self.config = config
        let d = config.dims
        let widths = (0..<config.depth).map { config.features << $0 }

        func conv(_ i: Int, _ o: Int, _ k: Int, padding: Int = 0) throws -> ConvNd {
            try ConvNd(dims: d, i, o, kernelSize: [k], padding: [padding])
        }
        func norm(_ c: Int) throws -> Module { d == 2 ? try BatchNorm2d(c) : try BatchNorm3d(c) }
        func block(_ i: Int, _ o: Int) throws -> Sequential {
            Sequential(try conv(i, o, 3, padding: 1), try norm(o), ReLU(inplace: true),
                       try conv(o, o, 3, padding: 1), try norm(o), ReLU(inplace: true))
        }

        enc = ModuleList(try [block(config.inChannels, widths[0])] + (0..<(config.depth - 1)).map { try block(widths[$0], widths[$0 + 1]) })
        up = ModuleList(try (0..<(config.depth - 1)).reversed().map {
            try ConvNd(dims: d, widths[$0 + 1], widths[$0], kernelSize: [2], stride: [2], transposed: true)
        })
        dec = ModuleList(try (0..<(config.depth - 1)).reversed().map { try block(widths[$0] * 2, widths[$0]) })
        out = try conv(widths[0], config.classes, 1)
        super.init()
        registerModule("enc", enc)
        registerModule("up", up)
        registerModule("dec", dec)
        registerModule("out", out)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let spatial = x.shape.dropFirst(2)
        let factor = 1 << (config.depth - 1)
        guard x.rank == config.dims + 2, spatial.allSatisfy({ $0 % factor == 0 }) else {
            throw TorchError("U-Net input must be (N, C, \(config.dims == 2 ? "H, W" : "D, H, W")) with sizes divisible by \(factor), got \(x.shape)")
        }
        var skips: [Tensor] = []
        var h = x
        for (i, block) in enc.enumerated() {
            h = try block(i == 0 ? h : F.maxPool(h, kernel: [2]))
            skips.append(h)
        }
        skips.removeLast()
        for (u, d) in zip(up, dec) {
            h = try d(Tensor.cat([skips.removeLast(), u(h)], dim: 1))
        }
        return try out(h)
    }
}
