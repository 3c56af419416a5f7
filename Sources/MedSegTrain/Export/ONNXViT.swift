import MedSegModels
import Torch

/// SETR-MLA: the ViT encoder (patch embedding, cls token, position embeddings resampled bicubically
/// to the input's grid as the model does, pre-norm blocks of multi-head attention and GELU MLP) and
/// the multi-level aggregation decoder; its main output only (the auxiliary heads are training's).
/// Sizes that follow the input (the patch grid, the output) are computed in the graph from its shape.
extension ONNXModel.Graph {
    mutating func setrMLA(_ net: SETRMLA, input: String) throws -> String {
        let c = net.config.encoder
        // [grid height, grid width] of the input (int64).
        let grid = node("Div", [node("Shape", [input], [Self.int("start", 2), Self.int("end", 4)]), integers("vit.patch", [c.patchSize])])
        var h = try vitEmbed(net.encoder, input, grid: grid)
        var taps: [Int: String] = [:]
        for i in 0..<(net.taps.max() ?? 0) {
            h = try vitBlock(net.encoder.blocks[i], h, prefix: "encoder.blocks.\(i)")
            taps[i + 1] = h
        }
        // Tokens without cls, as [batch, width, grid height, grid width] maps.
        let mapShape = node("Concat", [integers("vit.map_shape", [0, c.hidden]), grid], [Self.int("axis", 0)])
        let maps = net.taps.map { tap in
            node("Reshape", [node("Transpose", [node("Slice", [taps[tap]!, integers("vit.one", [1]), integers("vit.end", [Int(Int64.max)]),
                                                                integers("vit.one", [1])])], [Self.ints("perm", [0, 2, 1])]), mapShape])
        }
        var lateral = try maps.enumerated().map { i, m in try layer(net.lateral[i], m, prefix: "lateral.\(i)") }
        for i in stride(from: 2, through: 0, by: -1) { lateral[i] = node("Add", [lateral[i], lateral[i + 1]]) }
        let up = try lateral.enumerated().map { i, l in
            let head = try layer(net.heads[i], try layer(net.smooth[i], l, prefix: "smooth.\(i)"), prefix: "heads.\(i)")
            return node("Resize", [head, "", floats("setr.scales4", [1, 1, 4, 4])], linearResize)
        }
        let logits = try conv(net.cls, node("Concat", up, [Self.int("axis", 1)]), prefix: "cls")
        // Back to the input's size.
        let size = node("Concat", [node("Shape", [logits], [Self.int("end", 2)]), node("Shape", [input], [Self.int("start", 2)])], [Self.int("axis", 0)])
        return node("Resize", [logits, "", "", size], linearResize)
    }

    /// Resize's attributes for PyTorch's (bi)linear interpolation without aligned corners.
    var linearResize: [ProtoWriter] {
        [Self.string("mode", "linear"), Self.string("coordinate_transformation_mode", "pytorch_half_pixel")]
    }

    /// Patch embedding, the cls token in front, plus the position embeddings of the input's grid.
    mutating func vitEmbed(_ vit: VisionTransformer, _ x: String, grid: String) throws -> String {
        let c = vit.config, d = c.hidden
        let patches = try conv(vit.patchEmbed.proj, x, prefix: "encoder.patch_embed.proj")
        let tokens = node("Transpose", [node("Reshape", [patches, integers("vit.token_shape", [0, d, -1])])], [Self.ints("perm", [0, 2, 1])])
        let batch = node("Shape", [x], [Self.int("end", 1)])
        let cls = node("Expand", [try initializer("encoder.cls_token", vit.clsToken),
                                  node("Concat", [batch, integers("vit.cls_shape", [1, d])], [Self.int("axis", 0)])])
        // The learned grid as an image [1, D, g, g], resampled bicubically (as the model's
        // resamplePositionEmbedding; the identity at the pretraining grid).
        let g = c.gridSize
        let learned = try vit.posEmbed.narrow(dim: 1, start: 1, length: g * g).reshape([1, g, g, d]).permute([0, 3, 1, 2])
        let size = node("Concat", [integers("vit.pos_size", [1, d]), grid], [Self.int("axis", 0)])
        let resized = node("Resize", [try initializer("encoder.pos_embed.grid", learned), "", "", size],
                           [Self.string("mode", "cubic"), Self.float("cubic_coeff_a", -0.75),
                            Self.string("coordinate_transformation_mode", "pytorch_half_pixel")])
        let gridPositions = node("Transpose", [node("Reshape", [resized, integers("vit.pos_shape", [1, d, -1])])], [Self.ints("perm", [0, 2, 1])])
        let positions = node("Concat", [try initializer("encoder.pos_embed.cls", try vit.posEmbed.narrow(dim: 1, start: 0, length: 1)), gridPositions],
                             [Self.int("axis", 1)])
        return node("Add", [node("Concat", [cls, tokens], [Self.int("axis", 1)]), positions])
    }

    /// x + attn(norm1(x)), then x + mlp(norm2(x)).
    mutating func vitBlock(_ block: ViTBlock, _ x: String, prefix: String) throws -> String {
        let h = node("Add", [x, try attention(block.attn, try layerNorm(block.norm1, x, prefix: prefix + ".norm1"), prefix: prefix + ".attn")])
        let hidden = try gelu(try linear(block.mlp.fc1, try layerNorm(block.norm2, h, prefix: prefix + ".norm2"), prefix: prefix + ".mlp.fc1"))
        return node("Add", [h, try linear(block.mlp.fc2, hidden, prefix: prefix + ".mlp.fc2")])
    }

    /// Multi-head self-attention: the fused qkv projection split into heads, softmax(q k^T / sqrt(hd)) v.
    mutating func attention(_ attn: ViTAttention, _ x: String, prefix: String) throws -> String {
        let dim = attn.qkv.inFeatures, hd = dim / attn.heads
        let qkv = try linear(attn.qkv, x, prefix: prefix + ".qkv")
        // [B, N, 3, heads, hd] -> [3, B, heads, N, hd]
        let parts = node("Transpose", [node("Reshape", [qkv, integers(prefix + ".qkv_shape", [0, 0, 3, attn.heads, hd])])],
                         [Self.ints("perm", [2, 0, 3, 1, 4])])
        let (q, k, v) = (gather(parts, 0), gather(parts, 1), gather(parts, 2))
        let scale = try initializer("attention.scale.\(hd)", try Tensor([Float(1 / Double(hd).squareRoot())], shape: [1]))
        let scores = node("Mul", [node("MatMul", [q, node("Transpose", [k], [Self.ints("perm", [0, 1, 3, 2])])]), scale])
        let weighted = node("MatMul", [node("Softmax", [scores], [Self.int("axis", -1)]), v])
        let merged = node("Reshape", [node("Transpose", [weighted], [Self.ints("perm", [0, 2, 1, 3])]), integers(prefix + ".out_shape", [0, 0, dim])])
        return try linear(attn.proj, merged, prefix: prefix + ".proj")
    }

    /// Slice `index` of the first axis, that axis dropped.
    mutating func gather(_ x: String, _ index: Int) -> String {
        node("Gather", [x, integers("index.\(index)", [index], scalar: true)], [Self.int("axis", 0)])
    }

    /// x W^T + b, the weight stored transposed ([in, out]) for MatMul.
    mutating func linear(_ l: Linear, _ x: String, prefix: String) throws -> String {
        let product = node("MatMul", [x, try initializer(prefix + ".weight.T", try l.weight.t())])
        return try l.bias.map { node("Add", [product, try initializer(prefix + ".bias", $0)]) } ?? product
    }

    /// LayerNormalization (opset 17) over the normalized trailing axes.
    mutating func layerNorm(_ norm: LayerNorm, _ x: String, prefix: String) throws -> String {
        let n = norm.normalizedShape
        let scale = try norm.weight ?? Tensor.ones(n), shift = try norm.bias ?? Tensor.zeros(n)
        return node("LayerNormalization", [x, try initializer(prefix + ".weight", scale), try initializer(prefix + ".bias", shift)],
                    [Self.int("axis", -n.count), Self.float("epsilon", norm.eps)])
    }
}
