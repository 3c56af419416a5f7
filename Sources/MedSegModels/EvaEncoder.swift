import Foundation
import Torch

/// The EVA-02 transformer of Primus (`dynamic_network_architectures`' `Eva`, built from timm's
/// `EvaBlock`s): a learned absolute position embedding added to the tokens, blocks that rotate
/// queries and keys by a 3D rotary embedding of each token's grid position, and a final LayerNorm.
/// Keys: `pos_embed`, `blocks.N.*`, `norm.*`.
public final class EvaEncoder: Module {
    public let posEmbed: Tensor
    public let blocks: ModuleList<EvaBlock>
    public let norm: LayerNorm
    /// sin and cos of every token's rotary angles, (tokens, head channels) each.
    public let rotary: (sin: Tensor, cos: Tensor)

    /// `dropPath`: the stochastic depth of the last block while training, rising linearly from 0 at the first.
    init(dim: Int, depth: Int, heads: Int, grid: [Int], layerScale: Double = 0.1, dropPath: Double = 0) throws {
        let tokens = grid.reduce(1, *)
        posEmbed = try Tensor.zeros([1, tokens, dim])
        blocks = ModuleList(try (0..<depth).map {
            try EvaBlock(dim: dim, heads: heads, layerScale: layerScale, dropPath: depth > 1 ? dropPath * Double($0) / Double(depth - 1) : 0)
        })
        norm = try LayerNorm(dim)
        rotary = try Self.rotaryTable(grid: grid, headDim: dim / heads)
        super.init()
        registerParameter("pos_embed", posEmbed)
        registerModule("blocks", blocks)
        registerModule("norm", norm)
        try withNoGrad {
            // The reference: truncated normal (0.02) weights and zero biases for every Linear, the same for
            // the position embedding, then each block's output projections scaled by 1/sqrt(2 * block).
            for module in blocks.modules.flatMap({ $0.linears }) {
                try Init.truncNormal_(module.weight, std: 0.02)
                if let bias = module.bias { try Init.constant_(bias, 0) }
            }
            try Init.truncNormal_(posEmbed, std: 0.02)
            for (i, block) in blocks.enumerated() {
                let scale = 1 / (2.0 * Double(i + 1)).squareRoot()
                try block.attn.proj.weight.mul_(scale)
                try block.mlp.fc2.weight.mul_(scale)
            }
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let sin = try rotary.sin.to(device: x.device, dtype: x.dtype), cos = try rotary.cos.to(device: x.device, dtype: x.dtype)
        var h = try x + posEmbed
        for block in blocks { h = try block.forward(h, sin: sin, cos: cos) }
        return try norm(h)
    }

    /// timm's `RotaryEmbeddingCat` with `in_pixels=False` on a 3D grid, as Primus builds it: the
    /// rotary width is 2/3 of a head, in dim/4 frequency bands 10000^(-k/bands); each token's
    /// angles are its integer coordinate on each axis times every band (axis-major), each angle
    /// used for one interleaved pair of channels.
    static func rotaryTable(grid: [Int], headDim: Int) throws -> (sin: Tensor, cos: Tensor) {
        let bands = headDim * 2 / 3 / 4
        let frequencies = (0..<bands).map { Float(1) / powf(10000, Float($0) / Float(bands)) }
        let tokens = grid.reduce(1, *)
        var sines = [Float](), cosines = [Float]()
        sines.reserveCapacity(tokens * headDim)
        cosines.reserveCapacity(tokens * headDim)
        for index in 0..<tokens {
            // Row-major position (first axis slowest), as the tokens are flattened.
            var rest = index
            var position = [Int](repeating: 0, count: grid.count)
            for axis in stride(from: grid.count - 1, through: 0, by: -1) {
                position[axis] = rest % grid[axis]
                rest /= grid[axis]
            }
            for axis in grid.indices {
                for f in frequencies {
                    let angle = Float(position[axis]) * f
                    sines += [sinf(angle), sinf(angle)]
                    cosines += [cosf(angle), cosf(angle)]
                }
            }
        }
        guard sines.count == tokens * headDim else {
            throw TorchError("rotary embedding of \(sines.count / max(tokens, 1)) channels for heads of \(headDim)")
        }
        return (try Tensor(sines, shape: [tokens, headDim]), try Tensor(cosines, shape: [tokens, headDim]))
    }
}

/// A pre-norm EVA block with LayerScale: x + gamma_1 * attn(norm1(x)), then x + gamma_2 * mlp(norm2(x)).
public final class EvaBlock: Module {
    public let norm1: LayerNorm
    public let attn: EvaAttention
    public let norm2: LayerNorm
    public let mlp: SwiGLU
    public let gamma1: Tensor
    public let gamma2: Tensor
    public let dropPath: Double

    init(dim: Int, heads: Int, layerScale: Double, dropPath: Double) throws {
        self.dropPath = dropPath
        norm1 = try LayerNorm(dim)
        attn = try EvaAttention(dim: dim, heads: heads)
        norm2 = try LayerNorm(dim)
        // mlp_ratio 4 * 2 / 3, truncated as the reference's int().
        mlp = try SwiGLU(dim: dim, hidden: Int(Double(dim) * (4.0 * 2.0 / 3.0)))
        gamma1 = try Tensor.full([dim], layerScale)
        gamma2 = try Tensor.full([dim], layerScale)
        super.init()
        registerParameter("gamma_1", gamma1)
        registerParameter("gamma_2", gamma2)
        registerModule("norm1", norm1)
        registerModule("attn", attn)
        registerModule("norm2", norm2)
        registerModule("mlp", mlp)
    }

    var linears: [Linear] { [attn.qProj, attn.kProj, attn.vProj, attn.proj, mlp.fc1Gate, mlp.fc1X, mlp.fc2] }

    func forward(_ x: Tensor, sin: Tensor, cos: Tensor) throws -> Tensor {
        let h = try x + dropSamples(gamma1 * attn.forward(norm1(x), sin: sin, cos: cos))
        return try h + dropSamples(gamma2 * mlp(norm2(h)))
    }

    /// Stochastic depth while training (timm's DropPath): each sample's branch is dropped with
    /// probability `dropPath`, the kept ones scaled by 1 / (1 - dropPath).
    private func dropSamples(_ branch: Tensor) throws -> Tensor {
        guard isTraining, dropPath > 0 else { return branch }
        let keep = 1 - dropPath
        let mask = try Tensor.rand([branch.size(0)] + Array(repeating: 1, count: branch.rank - 1), device: branch.device)
            .lt(keep).to(dtype: branch.dtype) * (1 / keep)
        return try branch * mask
    }
}

/// EVA attention: separate q, k (no bias), v projections, rotary embedding of q and k, and a
/// LayerNorm of the heads' output before the projection (`scale_attn_inner`).
public final class EvaAttention: Module {
    public let heads: Int
    public let qProj: Linear
    public let kProj: Linear
    public let vProj: Linear
    public let norm: LayerNorm
    public let proj: Linear

    init(dim: Int, heads: Int) throws {
        self.heads = heads
        qProj = try Linear(dim, dim)
        kProj = try Linear(dim, dim, bias: false)
        vProj = try Linear(dim, dim)
        norm = try LayerNorm(dim)
        proj = try Linear(dim, dim)
        super.init()
        registerModule("q_proj", qProj)
        registerModule("k_proj", kProj)
        registerModule("v_proj", vProj)
        registerModule("norm", norm)
        registerModule("proj", proj)
    }

    func forward(_ x: Tensor, sin: Tensor, cos: Tensor) throws -> Tensor {
        let (b, n, c) = (x.size(0), x.size(1), x.size(2))
        func split(_ t: Tensor) throws -> Tensor { try t.reshape([b, n, heads, c / heads]).transpose(1, 2) }
        let q = try Self.rotate(split(qProj(x)), sin: sin, cos: cos)
        let k = try Self.rotate(split(kProj(x)), sin: sin, cos: cos)
        let v = try split(vProj(x))
        let scores = try (q * (1 / Double(c / heads).squareRoot())).matmul(k.transpose(-2, -1))
        let out = try scores.softmax(dim: -1).matmul(v).transpose(1, 2).reshape([b, n, c])
        return try proj(norm(out))
    }

    /// x * cos + rot(x) * sin, where rot turns each interleaved pair (x0, x1) into (-x1, x0).
    static func rotate(_ x: Tensor, sin: Tensor, cos: Tensor) throws -> Tensor {
        let last = x.rank - 1
        let even = try x.slice(dim: last, start: 0, step: 2), odd = try x.slice(dim: last, start: 1, step: 2)
        let turned = try Tensor.stack([-odd, even], dim: x.rank).reshape(x.shape)
        return try x * cos + turned * sin
    }
}

/// The SwiGLU MLP with a LayerNorm before its output (timm's `SwiGLU` with `norm_layer`):
/// fc2(norm(silu(fc1_g(x)) * fc1_x(x))).
public final class SwiGLU: Module {
    public let fc1Gate: Linear
    public let fc1X: Linear
    public let norm: LayerNorm
    public let fc2: Linear

    init(dim: Int, hidden: Int) throws {
        fc1Gate = try Linear(dim, hidden)
        fc1X = try Linear(dim, hidden)
        norm = try LayerNorm(hidden)
        fc2 = try Linear(hidden, dim)
        super.init()
        registerModule("fc1_g", fc1Gate)
        registerModule("fc1_x", fc1X)
        registerModule("norm", norm)
        registerModule("fc2", fc2)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try fc2(norm(F.silu(fc1Gate(x)) * fc1X(x)))
    }
}
