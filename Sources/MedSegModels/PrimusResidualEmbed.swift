import Torch

/// The convolutional patch embeddings of PrimusV2 and PrimusV3 (`dynamic_network_architectures`'
/// `PatchEmbed_deeper` and `PatchEmbedDeeperControlled`): a residual stem at full resolution, three
/// residual stages that each halve the size (BasicBlockD), and a 1x1 projection to the embedding
/// width, so 8 voxels per token on each axis. V3 also adds each earlier feature map, projected to
/// the token grid by a strided convolution and scaled by a learned factor (1e-5 at the start).
/// Keys: `stem.blocks.0.*`, `stages.N.blocks.0.*`, `final_proj.*`; V3 `proj_to_tokens.N.*`, `scale_proj_to_tokens.N`.
public final class PrimusResidualEmbed: Module {
    public let stem: StackedResidualBlocks
    public let stages: ModuleList<StackedResidualBlocks>
    public let finalProj: Conv3d
    public let skips: [(proj: Conv3d, scale: Tensor)]

    /// `widths`: the stem's and each stage's channels; `negativeSlope` 0 is ReLU (V2), 0.01 LeakyReLU (V3).
    init(inChannels: Int, embedDim: Int, widths: [Int], negativeSlope: Double, skips addSkips: Bool) throws {
        let three = [3, 3, 3], one = [1, 1, 1]
        stem = try StackedResidualBlocks(dims: 3, count: 1, inChannels, widths[0], kernelSize: three, initialStride: one, bias: true,
                                         negativeSlope: negativeSlope)
        stages = ModuleList(try (1..<widths.count).map {
            try StackedResidualBlocks(dims: 3, count: 1, widths[$0 - 1], widths[$0], kernelSize: three, initialStride: [2, 2, 2], bias: false,
                                      negativeSlope: negativeSlope)
        })
        finalProj = try Conv3d(widths.last!, embedDim, kernelSize: one)
        let levels = widths.count - 1
        skips = addSkips ? try (0..<levels).map { level in
            let factor = 1 << (levels - level)
            return (try Conv3d(widths[level], embedDim, kernelSize: [factor, factor, factor], stride: [factor, factor, factor]),
                    try Tensor.full([], 1e-5))
        } : []
        super.init()
        registerModule("stem", stem)
        registerModule("stages", stages)
        registerModule("final_proj", finalProj)
        if !skips.isEmpty {
            let projections = Module(), scales = Module()
            for (i, skip) in skips.enumerated() {
                projections.registerModule(String(i), skip.proj)
                scales.registerParameter(String(i), skip.scale)
            }
            registerModule("proj_to_tokens", projections)
            registerModule("scale_proj_to_tokens", scales)
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        var h = try stem(x)
        var tokens: Tensor? = try skips.first.map { try $0.scale * $0.proj(h) }
        for (i, stage) in stages.enumerated() {
            h = try stage(h)
            if i + 1 < skips.count, let sum = tokens { tokens = try sum + skips[i + 1].scale * skips[i + 1].proj(h) }
        }
        let projected = try finalProj(h)
        return try tokens.map { try projected + $0 } ?? projected
    }
}
