import Torch

/// UNet++ (Zhou et al., nested U-Net) with nnU-Net-style blocks, 2D or 3D.
///
/// Nodes X(i,j) for level i (resolution 1/2^i) and column j, i + j < depth:
/// - X(i,0) is the encoder: X(0,0) = block(input), X(i,0) = block(X(i-1,0)) whose first conv has
///   stride 2 (nnU-Net's convolutional pooling);
/// - X(i,j), j >= 1, = block(cat[X(i,0), ..., X(i,j-1), up_{i,j}(X(i+1,j-1))]) where up_{i,j}
///   is a transposed conv (kernel 2, stride 2) from level i+1's width to level i's.
/// A block is two conv(3)-InstanceNorm(affine, eps 1e-5)-LeakyReLU(0.01) units; widths are
/// `baseFeatures * 2^i` capped at `maxFeatures` (nnU-Net's 320 in 3D, 512 in 2D by default).
/// Heads are 1x1 convs on X(0,1) ... X(0,depth-1), all at full resolution; all of them exist
/// whether or not deep supervision is on, so one state dict serves both.
///
/// Parameter names (matching the PyTorch reference in scripts/fixtures/make_zoo_fixtures_unet.py):
/// `conv{i}_{j}.{0,1}.{conv,norm}.{weight,bias}`, `up{i}_{j}.{weight,bias}`, `final{j}.{weight,bias}`.
public final class UNetPlusPlus: Module {
    public struct Config: Codable, Equatable, Sendable {
        /// 2 or 3 spatial dimensions.
        public var dims: Int
        public var inChannels: Int
        public var classes: Int
        /// Width of level 0; level i has baseFeatures * 2^i (capped).
        public var baseFeatures: Int
        /// Number of levels (resolutions); heads sit on X(0,1) ... X(0,depth-1).
        public var depth: Int
        public var deepSupervision: Bool
        /// Width cap; nil means nnU-Net's (320 for 3D, 512 for 2D).
        public var maxFeatures: Int?
        /// A plan's stages (nnU-Net's plans.json): per level its width, convolution kernel and the
        /// stride that reaches it (level 0's is 1), so pooling may be anisotropic; nil: widths
        /// doubling per level, kernels 3 and strides 2 on every axis.
        public var featuresPerStage: [Int]?
        public var kernelSizes: [[Int]]?
        public var strides: [[Int]]?

        public init(dims: Int = 3, inChannels: Int = 1, classes: Int = 2, baseFeatures: Int = 32, depth: Int = 5,
                    deepSupervision: Bool = true, maxFeatures: Int? = nil) {
            self.dims = dims
            self.inChannels = inChannels
            self.classes = classes
            self.baseFeatures = baseFeatures
            self.depth = depth
            self.deepSupervision = deepSupervision
            self.maxFeatures = maxFeatures
        }

        /// On a planned topology: as many levels as the plan has stages.
        public init(dims: Int, inChannels: Int, classes: Int, featuresPerStage: [Int], kernelSizes: [[Int]], strides: [[Int]],
                    deepSupervision: Bool = true) {
            self.init(dims: dims, inChannels: inChannels, classes: classes, baseFeatures: featuresPerStage.first ?? 1,
                      depth: featuresPerStage.count, deepSupervision: deepSupervision)
            self.featuresPerStage = featuresPerStage
            self.kernelSizes = kernelSizes
            self.strides = strides
        }

        public var widths: [Int] {
            if let featuresPerStage { return featuresPerStage }
            let cap = maxFeatures ?? (dims == 3 ? 320 : 512)
            return (0..<depth).map { min(baseFeatures << $0, cap) }
        }

        /// The convolution kernel of level `i`, per axis.
        func kernel(_ i: Int) -> [Int] { kernelSizes?[i] ?? Array(repeating: 3, count: dims) }

        /// The stride from level `i - 1` to level `i`, per axis (level 0: 1).
        func stride(_ i: Int) -> [Int] { strides?[i] ?? Array(repeating: i == 0 ? 1 : 2, count: dims) }

        /// Per axis, what every input size must be divisible by: the product of the strides.
        public var divisor: [Int] {
            (0..<dims).map { axis in (0..<depth).reduce(1) { $0 * stride($1)[axis] } }
        }
    }

    public let config: Config
    /// nodes[i][j] is X(i,j)'s block.
    public let nodes: [[Sequential]]
    /// ups[i][j] is the transposed conv feeding X(i,j) (index 0 unused: nil).
    public let ups: [[ConvNd?]]
    /// heads[j - 1] is the head on X(0,j).
    public let heads: [ConvNd]

    public init(_ config: Config = Config()) throws {
        guard config.dims == 2 || config.dims == 3 else { throw TorchError("UNet++ supports 2 or 3 spatial dimensions, got \(config.dims)") }
        guard config.depth >= 2 else { throw TorchError("UNet++ depth must be at least 2, got \(config.depth)") }
        guard config.baseFeatures >= 1, config.inChannels >= 1, config.classes >= 1, (config.maxFeatures ?? 1) >= 1,
              config.widths.allSatisfy({ $0 >= 1 }) else {
            throw TorchError("UNet++ channels must be positive (widths \(config.widths), in \(config.inChannels), classes \(config.classes))")
        }
        for (name, perLevel) in [("kernel sizes", config.kernelSizes), ("strides", config.strides)] {
            guard let perLevel else { continue }
            guard perLevel.count == config.depth, perLevel.allSatisfy({ $0.count == config.dims && $0.allSatisfy { $0 >= 1 } }) else {
                throw TorchError("UNet++ \(name) need \(config.depth) entries of \(config.dims) positive values, got \(perLevel)")
            }
        }
        self.config = config
        let d = config.dims, w = config.widths, depth = config.depth

        // A block of level `level`: two conv-norm-nonlin units with that level's kernel, the first
        // with `stride` (nnU-Net's convolutional pooling).
        func block(_ i: Int, _ o: Int, level: Int, stride: [Int]) throws -> Sequential {
            let kernel = config.kernel(level), one = Array(repeating: 1, count: d)
            return Sequential(try ConvNormNonlin(dims: d, i, o, kernelSize: kernel, stride: stride, bias: true),
                              try ConvNormNonlin(dims: d, o, o, kernelSize: kernel, stride: one, bias: true))
        }
        var nodes: [[Sequential]] = [], ups: [[ConvNd?]] = []
        for i in 0..<depth {
            var row: [Sequential] = [], upRow: [ConvNd?] = [nil]
            row.append(try block(i == 0 ? config.inChannels : w[i - 1], w[i], level: i, stride: config.stride(i)))
            for j in 1..<max(1, depth - i) {
                // Undoes the stride into level i + 1 (kernel = stride, as nnU-Net's decoder).
                let up = config.stride(i + 1)
                upRow.append(try ConvNd(dims: d, w[i + 1], w[i], kernelSize: up, stride: up, transposed: true))
                row.append(try block(w[i] * (j + 1), w[i], level: i, stride: Array(repeating: 1, count: d)))
            }
            nodes.append(row)
            ups.append(upRow)
        }
        self.nodes = nodes
        self.ups = ups
        heads = try (1..<depth).map { _ in try ConvNd(dims: d, w[0], config.classes, kernelSize: [1]) }
        super.init()
        // Registration order: nodes column by column (the order they are computed in: X(0,0) ...
        // X(depth-1,0), then X(depth-2,1) up-conv and block ...), then the heads.
        for i in 0..<depth { registerModule("conv\(i)_0", nodes[i][0]) }
        for j in 1..<depth {
            for i in stride(from: depth - 1 - j, through: 0, by: -1) {
                registerModule("up\(i)_\(j)", ups[i][j]!)
                registerModule("conv\(i)_\(j)", nodes[i][j])
            }
        }
        for (k, h) in heads.enumerated() { registerModule("final\(k + 1)", h) }
        // nnU-Net's InitWeights_He(1e-2).
        try Init.heNormalConvolutions(self)
    }

    /// The final prediction, the head on X(0, depth-1).
    public override func forward(_ x: Tensor) throws -> Tensor {
        try run(x, deepSupervision: false)[0]
    }

    /// The heads' outputs on X(0,1) ... X(0,depth-1) in that order (the last is the final one);
    /// only [head on X(0,depth-1)] without deep supervision.
    public func headOutputs(_ x: Tensor) throws -> [Tensor] {
        try run(x, deepSupervision: config.deepSupervision)
    }

    private func run(_ x: Tensor, deepSupervision: Bool) throws -> [Tensor] {
        let depth = config.depth
        let divisor = config.divisor
        guard x.rank == config.dims + 2, x.shape[1] == config.inChannels,
              zip(x.shape.dropFirst(2), divisor).allSatisfy({ $0 % $1 == 0 }) else {
            throw TorchError("UNet++ input must be (N, \(config.inChannels), \(config.dims == 2 ? "H, W" : "D, H, W")) with sizes divisible by \(divisor), got \(x.shape)")
        }
        var X: [[Tensor]] = Array(repeating: [], count: depth)
        var h = x
        for i in 0..<depth {
            h = try nodes[i][0](h)
            X[i].append(h)
        }
        for j in 1..<depth {
            for i in stride(from: depth - 1 - j, through: 0, by: -1) {
                let up = try ups[i][j]!(X[i + 1][j - 1])
                X[i].append(try nodes[i][j](Tensor.cat(Array(X[i][0..<j]) + [up], dim: 1)))
            }
        }
        if deepSupervision {
            return try (1..<depth).map { try heads[$0 - 1](X[0][$0]) }
        }
        return [try heads[depth - 2](X[0][depth - 1])]
    }

    /// For training (`MultiOutputModel`): the final prediction first, then the shallower heads
    /// X(0,depth-2) ... X(0,1) with deep supervision.
    public func outputs(_ x: Tensor) throws -> [Tensor] {
        try headOutputs(x).reversed()
    }

    /// UNet++ averages the heads' losses: equal weights.
    public var outputWeights: [Double] {
        let n = config.deepSupervision ? config.depth - 1 : 1
        return Array(repeating: 1 / Double(n), count: n)
    }
}

extension UNetPlusPlus: MultiOutputModel {}
