import MedSegModels
import Torch

/// Primus and its V2/V3 variants: the patch embedding (one strided convolution, or V2's and V3's
/// residual stages with V3's scaled projections of the earlier maps), the EVA blocks over the
/// tokens (position embedding, attention with the rotary embedding of queries and keys as fixed
/// sin/cos tables, LayerScale, SwiGLU), and the transposed-convolution decoder. Primus is made for
/// one input size, so the graph's spatial sizes are fixed.
extension ONNXModel.Graph {
    mutating func primus(_ net: Primus, input: String) throws -> String {
        let c = net.config, grid = c.tokenGrid, d = c.embedDim
        let embedded: String
        switch net.downProjection {
        case let patch as PrimusPatchEmbed:
            embedded = try conv(patch.proj, input, prefix: "down_projection.proj")
        case let residual as PrimusResidualEmbed:
            embedded = try primusResidualEmbed(residual, input, slope: c.embedding == .residual ? 0 : 0.01)
        default:
            throw TrainingError("ONNX export has no operators for layer down_projection (\(type(of: net.downProjection))); nothing was written")
        }
        // [B, D, w, h, d] -> [B, tokens, D], plus the learned positions.
        var h = node("Transpose", [node("Reshape", [embedded, integers("primus.token_shape", [0, d, -1])])], [Self.ints("perm", [0, 2, 1])])
        h = node("Add", [h, try initializer("eva.pos_embed", net.eva.posEmbed)])
        let sin = try initializer("eva.rotary.sin", net.eva.rotary.sin), cos = try initializer("eva.rotary.cos", net.eva.rotary.cos)
        for (i, block) in net.eva.blocks.enumerated() {
            h = try evaBlock(block, h, sin: sin, cos: cos, prefix: "eva.blocks.\(i)")
        }
        h = try layerNorm(net.eva.norm, h, prefix: "eva.norm")
        var x = node("Reshape", [node("Transpose", [h], [Self.ints("perm", [0, 2, 1])]), integers("primus.map_shape", [0, d] + grid)])
        for (s, stage) in net.upProjection.stages.enumerated() {
            let prefix = "up_projection.decode.\(s)"
            x = try conv(stage.up, x, prefix: stage.norm == nil ? prefix : prefix + ".0")
            if let norm = stage.norm { x = try gelu(try channelLayerNorm(norm, x, prefix: prefix + ".1")) }
        }
        return x
    }

    /// V2's and V3's convolutional embedding; V3 adds each earlier map, projected and scaled.
    mutating func primusResidualEmbed(_ e: PrimusResidualEmbed, _ x: String, slope: Double) throws -> String {
        func stack(_ s: StackedResidualBlocks, _ x: String, prefix: String) throws -> String {
            var h = x
            for (b, block) in s.blocks.layers.enumerated() {
                h = try residualBlock(block as! BasicBlockD, h, prefix: "\(prefix).blocks.\(b)", slope: slope)
            }
            return h
        }
        var h = try stack(e.stem, x, prefix: "down_projection.stem")
        func projected(_ k: Int, _ map: String) throws -> String {
            node("Mul", [try conv(e.skips[k].proj, map, prefix: "down_projection.proj_to_tokens.\(k)"),
                         try initializer("down_projection.scale_proj_to_tokens.\(k)", try e.skips[k].scale.reshape([1]))])
        }
        var tokens: String? = e.skips.isEmpty ? nil : try projected(0, h)
        for (i, stage) in e.stages.enumerated() {
            h = try stack(stage, h, prefix: "down_projection.stages.\(i)")
            if i + 1 < e.skips.count, let sum = tokens { tokens = node("Add", [sum, try projected(i + 1, h)]) }
        }
        let out = try conv(e.finalProj, h, prefix: "down_projection.final_proj")
        return tokens.map { node("Add", [out, $0]) } ?? out
    }

    /// x + gamma_1 * attn(norm1(x)), then x + gamma_2 * mlp(norm2(x)).
    mutating func evaBlock(_ block: EvaBlock, _ x: String, sin: String, cos: String, prefix: String) throws -> String {
        let a = try evaAttention(block.attn, try layerNorm(block.norm1, x, prefix: prefix + ".norm1"), sin: sin, cos: cos, prefix: prefix + ".attn")
        let h = node("Add", [x, node("Mul", [a, try initializer(prefix + ".gamma_1", block.gamma1)])])
        let m = block.mlp, normed = try layerNorm(block.norm2, h, prefix: prefix + ".norm2")
        let gate = try linear(m.fc1Gate, normed, prefix: prefix + ".mlp.fc1_g")
        let swish = node("Mul", [node("Mul", [gate, node("Sigmoid", [gate])]), try linear(m.fc1X, normed, prefix: prefix + ".mlp.fc1_x")])
        let out = try linear(m.fc2, try layerNorm(m.norm, swish, prefix: prefix + ".mlp.norm"), prefix: prefix + ".mlp.fc2")
        return node("Add", [h, node("Mul", [out, try initializer(prefix + ".gamma_2", block.gamma2)])])
    }

    /// Separate q, k, v projections; q and k turned by the rotary tables (x cos + rot(x) sin, rot
    /// a fixed matrix that maps each pair (x0, x1) to (-x1, x0)); a LayerNorm before the output projection.
    mutating func evaAttention(_ attn: EvaAttention, _ x: String, sin: String, cos: String, prefix: String) throws -> String {
        let dim = attn.qProj.inFeatures, hd = dim / attn.heads
        func heads(_ t: String) -> String {
            node("Transpose", [node("Reshape", [t, integers("eva.heads_shape.\(attn.heads)", [0, 0, attn.heads, hd])])], [Self.ints("perm", [0, 2, 1, 3])])
        }
        var turn = [Float](repeating: 0, count: hd * hd)
        for i in stride(from: 0, to: hd - 1, by: 2) {
            turn[(i + 1) * hd + i] = -1  // out[i] = -x[i + 1]
            turn[i * hd + i + 1] = 1     // out[i + 1] = x[i]
        }
        let rot = try initializer("eva.rotary.turn.\(hd)", try Tensor(turn, shape: [hd, hd]))
        func rotate(_ t: String) -> String { node("Add", [node("Mul", [t, cos]), node("Mul", [node("MatMul", [t, rot]), sin])]) }
        let q = rotate(heads(try linear(attn.qProj, x, prefix: prefix + ".q_proj")))
        let k = rotate(heads(try linear(attn.kProj, x, prefix: prefix + ".k_proj")))
        let v = heads(try linear(attn.vProj, x, prefix: prefix + ".v_proj"))
        let scale = try initializer("attention.scale.\(hd)", try Tensor([Float(1 / Double(hd).squareRoot())], shape: [1]))
        let scores = node("MatMul", [node("Mul", [q, scale]), node("Transpose", [k], [Self.ints("perm", [0, 1, 3, 2])])])
        let weighted = node("MatMul", [node("Softmax", [scores], [Self.int("axis", -1)]), v])
        let merged = node("Reshape", [node("Transpose", [weighted], [Self.ints("perm", [0, 2, 1, 3])]), integers("eva.merged_shape.\(dim)", [0, 0, dim])])
        return try linear(attn.proj, try layerNorm(attn.norm, merged, prefix: prefix + ".norm"), prefix: prefix + ".proj")
    }

    /// LayerNorm over the channels of [B, C, spatial...]: moved last, normalized, moved back.
    mutating func channelLayerNorm(_ norm: ChannelLayerNorm, _ x: String, prefix: String) throws -> String {
        let last = [0] + (2..<(dims + 2)).map { $0 } + [1], back = [0, dims + 1] + (1...dims).map { $0 }
        let normalized = node("LayerNormalization", [node("Transpose", [x], [Self.ints("perm", last)]),
                                                     try initializer(prefix + ".weight", norm.weight), try initializer(prefix + ".bias", norm.bias)],
                              [Self.int("axis", -1), Self.float("epsilon", norm.eps)])
        return node("Transpose", [normalized], [Self.ints("perm", back)])
    }
}
