import Torch

/// SwinUNETR's encoder (MONAI's `SwinTransformer`): patch embedding, then four stages of Swin
/// blocks with a patch merging after each; `features` gives the embedding and every stage's
/// output, each layer-normalized over its channels (MONAI's `normalize=True`).
public final class SwinTransformer: Module {
    public let dims: Int
    public let patchEmbed: SwinPatchEmbed
    public let stages: [ModuleList<SwinStage>]
    public let convStages: [ModuleList<UnetResBlockWrapper>]

    init(_ c: SwinUNETR.Config) throws {
        dims = c.dims
        patchEmbed = try SwinPatchEmbed(dims: c.dims, c.inChannels, c.featureSize)
        stages = try (0..<4).map { i in
            ModuleList([try SwinStage(dims: c.dims, channels: c.featureSize << i, depth: c.depths[i], heads: c.heads[i])])
        }
        convStages = c.useV2 ? try (0..<4).map { i in
            ModuleList([try UnetResBlockWrapper(dims: c.dims, c.featureSize << i, c.featureSize << i)])
        } : []
        super.init()
        registerModule("patch_embed", patchEmbed)
        for (i, stage) in stages.enumerated() { registerModule("layers\(i + 1)", stage) }
        for (i, stage) in convStages.enumerated() { registerModule("layers\(i + 1)c", stage) }
    }

    /// Channels-first maps normalized over their channels.
    private func normalized(_ x: Tensor) throws -> Tensor {
        let last = Array(0..<x.rank).filter { $0 != 1 } + [1]
        var back = [Int](repeating: 0, count: x.rank)
        for (i, p) in last.enumerated() { back[p] = i }
        return try F.layerNorm(try x.permute(last), normalizedShape: [x.shape[1]]).permute(back)
    }

    public func features(_ x: Tensor) throws -> [Tensor] {
        var h = try patchEmbed(x)
        var outputs = [try normalized(h)]
        for i in 0..<4 {
            if !convStages.isEmpty { h = try convStages[i][0](h) }
            h = try stages[i][0](h)
            outputs.append(try normalized(h))
        }
        return outputs
    }
}

/// The patch embedding: a convolution of kernel and stride 2 (`proj`).
public final class SwinPatchEmbed: Module {
    public let proj: ConvNd

    init(dims: Int, _ inChannels: Int, _ channels: Int) throws {
        proj = try ConvNd(dims: dims, inChannels, channels, kernelSize: [2], stride: [2])
        super.init()
        registerModule("proj", proj)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try proj(x) }
}

/// One stage (MONAI's `BasicLayer`): Swin blocks alternating plain and half-window-shifted
/// windows, then the patch merging (`downsample`). Channels first in and out.
public final class SwinStage: Module {
    public static let window = 7
    public let dims: Int
    public let blocks: ModuleList<SwinBlock>
    public let downsample: SwinPatchMerging

    init(dims: Int, channels: Int, depth: Int, heads: Int) throws {
        self.dims = dims
        blocks = ModuleList(try (0..<depth).map { i in
            try SwinBlock(dims: dims, channels: channels, heads: heads, shifted: i % 2 == 1)
        })
        downsample = try SwinPatchMerging(dims: dims, channels: channels)
        super.init()
        registerModule("blocks", blocks)
        registerModule("downsample", downsample)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let spatial = Array(x.shape.dropFirst(2))
        let (window, shift) = SwinWindows.sizes(spatial, shifted: true)
        let padded = zip(spatial, window).map { ($0 + $1 - 1) / $1 * $1 }
        let mask = try SwinWindows.mask(padded, window: window, shift: shift, device: x.device)
        var h = try x.permute([0] + Array(2..<x.rank) + [1])
        for block in blocks { h = try block.forward(h, mask: mask) }
        h = try downsample(h)
        return try h.permute([0, h.rank - 1] + Array(1..<(h.rank - 1)))
    }
}

/// Window sizes, partitions and the shifted windows' attention mask, as MONAI computes them.
public enum SwinWindows {
    /// The window (7, or the whole axis where it is no longer) and, for shifted blocks, the shift
    /// (half a window, 0 where the axis fits in one window).
    public static func sizes(_ spatial: [Int], shifted: Bool) -> (window: [Int], shift: [Int]) {
        let w = SwinStage.window
        return (spatial.map { $0 <= w ? $0 : w }, spatial.map { !shifted || $0 <= w ? 0 : w / 2 })
    }

    /// [B, s..., C] into windows [B x windows, prod(window), C].
    public static func partition(_ x: Tensor, window: [Int]) throws -> Tensor {
        let n = window.count, b = x.shape[0], c = x.shape[n + 1]
        var shape = [b]
        for a in 0..<n { shape += [x.shape[a + 1] / window[a], window[a]] }
        let outer = (0..<n).map { 1 + 2 * $0 }, inner = (0..<n).map { 2 + 2 * $0 }
        return try x.reshape(shape + [c]).permute([0] + outer + inner + [2 * n + 1])
            .reshape([-1, window.reduce(1, *), c])
    }

    /// Windows [B x windows, prod(window), C] back to [B, spatial..., C].
    public static func reverse(_ windows: Tensor, window: [Int], batch: Int, spatial: [Int]) throws -> Tensor {
        let n = window.count, c = windows.shape.last!
        let counts = zip(spatial, window).map { $0 / $1 }
        let order = [0] + (0..<n).flatMap { [1 + $0, 1 + n + $0] } + [2 * n + 1]
        return try windows.reshape([batch] + counts + window + [c]).permute(order).reshape([batch] + spatial + [c])
    }

    /// MONAI's `compute_mask`: regions of the padded map numbered as its shifted windows cut it
    /// (Python's slices: a shift of 0 makes the last region the whole axis), -100 between
    /// tokens of one window in different regions, else 0. [windows, N, N].
    public static func mask(_ padded: [Int], window: [Int], shift: [Int], device: Device) throws -> Tensor {
        let n = padded.count
        // Per axis, the three index ranges of Python's slice(-w), slice(-w, -s), slice(-s, None).
        func ranges(_ size: Int, _ w: Int, _ s: Int) -> [Range<Int>] {
            func at(_ i: Int) -> Int { i < 0 ? max(0, size + i) : min(i, size) }
            let cut = s == 0 ? 0 : at(-s)  // -0 is 0: slice(-0, None) is the whole axis
            return [0..<at(-w), at(-w)..<max(at(-w), s == 0 ? 0 : cut), min(cut, size)..<size]
        }
        let axes = (0..<n).map { ranges(padded[$0], window[$0], shift[$0]) }
        let total = padded.reduce(1, *)
        var labels = [Float](repeating: 0, count: total)
        var strides = [Int](repeating: 1, count: n)
        for a in stride(from: n - 2, through: 0, by: -1) { strides[a] = strides[a + 1] * padded[a + 1] }
        var count: Float = 0
        // Every combination of one range per axis, in order, numbered 0, 1, 2, ...
        var combination = [Int](repeating: 0, count: n)
        while true {
            func paint(_ axis: Int, _ offset: Int) {
                for i in axes[axis][combination[axis]] {
                    let o = offset + i * strides[axis]
                    if axis == n - 1 { labels[o] = count } else { paint(axis + 1, o) }
                }
            }
            paint(0, 0)
            count += 1
            var a = n - 1
            while a >= 0 && combination[a] == 2 { combination[a] = 0; a -= 1 }
            if a < 0 { break }
            combination[a] += 1
        }
        let map = try Tensor(labels, shape: [1] + padded + [1])
        let windows = try partition(map, window: window).squeeze(dim: -1)
        let difference = try windows.unsqueeze(1) - windows.unsqueeze(2)
        return try (try difference.abs().sign() * -100.0).to(device: device)
    }
}

/// A Swin block: x + attention(norm1(x)) in (shifted) windows, then + mlp(norm2(x)). Channels last.
public final class SwinBlock: Module {
    public let dims: Int
    public let shifted: Bool
    public let norm1: LayerNorm, norm2: LayerNorm
    public let attn: SwinWindowAttention
    public let mlp: SwinMLP

    init(dims: Int, channels: Int, heads: Int, shifted: Bool) throws {
        self.dims = dims
        self.shifted = shifted
        norm1 = try LayerNorm([channels])
        attn = try SwinWindowAttention(dims: dims, channels: channels, heads: heads)
        norm2 = try LayerNorm([channels])
        mlp = try SwinMLP(channels: channels, hidden: 4 * channels)
        super.init()
        registerModule("norm1", norm1)
        registerModule("attn", attn)
        registerModule("norm2", norm2)
        registerModule("mlp", mlp)
    }

    public func forward(_ x: Tensor, mask: Tensor) throws -> Tensor {
        let spatial = Array(x.shape.dropFirst().dropLast())
        let (window, shift) = SwinWindows.sizes(spatial, shifted: shifted)
        let pads = zip(spatial, window).map { ($1 - $0 % $1) % $1 }
        var h = try norm1(x)
        if pads.contains(where: { $0 > 0 }) {
            // F.pad's order: last axis first; channels unpadded, each spatial axis at its end.
            h = try h.pad([0, 0] + pads.reversed().flatMap { [0, $0] })
        }
        let padded = Array(h.shape.dropFirst().dropLast())
        let axes = Array(1...dims)
        let isShifted = shift.contains { $0 > 0 }
        if isShifted { h = try h.roll(shifts: shift.map { -$0 }, dims: axes) }
        let windows = try attn.forward(try SwinWindows.partition(h, window: window), mask: isShifted ? mask : nil)
        h = try SwinWindows.reverse(windows, window: window, batch: x.shape[0], spatial: padded)
        if isShifted { h = try h.roll(shifts: shift, dims: axes) }
        if pads.contains(where: { $0 > 0 }) {
            for (a, size) in spatial.enumerated() { h = try h.narrow(dim: a + 1, start: 0, length: size) }
            h = try h.contiguous()
        }
        let y = try x + h
        return try y + mlp(try norm2(y))
    }
}

/// Multi-head self-attention within a window, with a learned bias per relative position
/// (`relative_position_bias_table`, indexed by the `relative_position_index` buffer).
public final class SwinWindowAttention: Module {
    public let heads: Int
    public let scale: Double
    public let relativePositionBiasTable: Tensor
    public let relativePositionIndex: Tensor
    public let qkv: Linear, proj: Linear

    init(dims: Int, channels: Int, heads: Int) throws {
        self.heads = heads
        scale = 1 / Double(channels / heads).squareRoot()
        let w = SwinStage.window
        let span = 2 * w - 1
        relativePositionBiasTable = try Tensor.zeros([power(span, dims), heads])
        try Init.truncNormal_(relativePositionBiasTable, std: 0.02)
        // For tokens i and j of a window, the relative offset per axis shifted to 0..2w-2 and
        // combined in row-major order over the (2w-1)^dims table.
        let tokens = power(w, dims)
        func coordinates(_ t: Int) -> [Int] { (0..<dims).map { a in t / power(w, dims - 1 - a) % w } }
        var index = [Int64](repeating: 0, count: tokens * tokens)
        for i in 0..<tokens {
            let ci = coordinates(i)
            for j in 0..<tokens {
                let cj = coordinates(j)
                var flat = 0
                for a in 0..<dims { flat = flat * span + (ci[a] - cj[a] + w - 1) }
                index[i * tokens + j] = Int64(flat)
            }
        }
        relativePositionIndex = try Tensor(index, shape: [tokens, tokens])
        qkv = try Linear(channels, 3 * channels)
        proj = try Linear(channels, channels)
        super.init()
        registerParameter("relative_position_bias_table", relativePositionBiasTable)
        registerBuffer("relative_position_index", relativePositionIndex)
        registerModule("qkv", qkv)
        registerModule("proj", proj)
    }

    /// Windows [B', N, C]; `mask` [windows, N, N] for shifted windows.
    public func forward(_ x: Tensor, mask: Tensor?) throws -> Tensor {
        let (b, n, c) = (x.shape[0], x.shape[1], x.shape[2])
        let qkv = try self.qkv(x).reshape([b, n, 3, heads, c / heads]).permute([2, 0, 3, 1, 4])
        let q = try qkv.select(dim: 0, index: 0) * scale, k = try qkv.select(dim: 0, index: 1), v = try qkv.select(dim: 0, index: 2)
        var attention = try q.matmul(try k.transpose(-2, -1))
        // MONAI takes the first n x n entries of the 7^dims index, also for smaller windows.
        let index = try relativePositionIndex.device == x.device ? relativePositionIndex : relativePositionIndex.to(device: x.device)
        let rows = try index.narrow(dim: 0, start: 0, length: n).narrow(dim: 1, start: 0, length: n).reshape([-1])
        let bias = try relativePositionBiasTable.indexSelect(dim: 0, index: rows).reshape([n, n, heads]).permute([2, 0, 1])
        attention = try attention + bias.unsqueeze(0)
        if let mask {
            let windows = mask.shape[0]
            attention = try (try attention.reshape([b / windows, windows, heads, n, n]) + mask.unsqueeze(1).unsqueeze(0))
                .reshape([-1, heads, n, n])
        }
        let out = try attention.softmax(dim: -1).matmul(v).transpose(1, 2).reshape([b, n, c])
        return try proj(out)
    }
}

/// `base` to the `exponent` (small whole numbers).
private func power(_ base: Int, _ exponent: Int) -> Int { (0..<exponent).reduce(1) { r, _ in r * base } }

/// The block's MLP (MONAI's `MLPBlock`): linear1, exact GELU, linear2.
public final class SwinMLP: Module {
    public let linear1: Linear, linear2: Linear

    init(channels: Int, hidden: Int) throws {
        linear1 = try Linear(channels, hidden)
        linear2 = try Linear(hidden, channels)
        super.init()
        registerModule("linear1", linear1)
        registerModule("linear2", linear2)
    }

    public override func forward(_ x: Tensor) throws -> Tensor { try linear2(try F.gelu(try linear1(x))) }
}

/// Patch merging: each 2x(x2)x2 neighbourhood's channels concatenated, layer-normalized and
/// reduced to twice the channels. In 3D the neighbours come in MONAI's v0.9 order (`PatchMerging`,
/// which takes two of them twice); in 2D in `PatchMergingV2`'s.
public final class SwinPatchMerging: Module {
    public let dims: Int
    public let reduction: Linear
    public let norm: LayerNorm

    init(dims: Int, channels: Int) throws {
        self.dims = dims
        let merged = (1 << dims) * channels
        reduction = try Linear(merged, 2 * channels, bias: false)
        norm = try LayerNorm([merged])
        super.init()
        registerModule("reduction", reduction)
        registerModule("norm", norm)
    }

    /// Offsets (per spatial axis) of the neighbours, in the order they are concatenated.
    public var offsets: [[Int]] {
        if dims == 3 {
            return [[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 0], [0, 0, 1], [1, 1, 1]]
        }
        // itertools.product(range(2), range(2)) as (i, j), taking x[:, j::2, i::2].
        return [[0, 0], [1, 0], [0, 1], [1, 1]]
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let spatial = Array(x.shape.dropFirst().dropLast())
        var h = x
        if spatial.contains(where: { $0 % 2 == 1 }) { h = try h.pad([0, 0] + spatial.reversed().flatMap { [0, $0 % 2] }) }
        let parts = try offsets.map { offset -> Tensor in
            var part = h
            for (a, o) in offset.enumerated() { part = try part.slice(dim: a + 1, start: o, step: 2) }
            return part
        }
        return try reduction(try norm(try Tensor.cat(parts, dim: -1)))
    }
}
