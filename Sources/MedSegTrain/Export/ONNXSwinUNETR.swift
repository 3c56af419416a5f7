import MedSegModels
import Torch

/// SwinUNETR (v1 and v2) for one input size: its windows, shifts, paddings and the shifted windows'
/// masks follow from the size, so they are written as fixed shapes and constants (the relative
/// position bias of each stage gathered from its table). Tokens run channels last, as the model's.
extension ONNXModel.Graph {
    mutating func swinUNETR(_ net: SwinUNETR, input: String, size: [Int]) throws -> String {
        let c = net.config, vit = net.swinViT
        guard size.count == c.dims, size.allSatisfy({ $0 > 0 && $0 % SwinUNETR.Config.divisor == 0 }) else {
            throw TrainingError("ONNX export of SwinUNETR needs an input size divisible by \(SwinUNETR.Config.divisor) per axis, got \(size)")
        }
        var h = try conv(vit.patchEmbed.proj, input, prefix: "swinViT.patch_embed.proj")
        var spatial = size.map { $0 / 2 }
        var hidden = [try channelNormalized(h, channels: c.featureSize)]
        for i in 0..<4 {
            if !vit.convStages.isEmpty { h = try unetResBlock(vit.convStages[i][0].layer, h, prefix: "swinViT.layers\(i + 1)c.0.layer") }
            h = try swinStage(vit.stages[i][0], h, spatial: spatial, channels: c.featureSize << i, prefix: "swinViT.layers\(i + 1).0")
            spatial = spatial.map { ($0 + 1) / 2 }
            hidden.append(try channelNormalized(h, channels: c.featureSize << (i + 1)))
        }
        let names = ["encoder1", "encoder2", "encoder3", "encoder4", "encoder10"]
        let inputs = [input, hidden[0], hidden[1], hidden[2], hidden[4]]
        let encoded = try zip(net.encoders, zip(names, inputs)).map { try unetResBlock($0.layer, $1.1, prefix: $1.0 + ".layer") }
        var x = encoded[4]
        let skips = [hidden[3], encoded[3], encoded[2], encoded[1], encoded[0]]
        for (k, (decoder, name)) in zip(net.decoders, ["decoder5", "decoder4", "decoder3", "decoder2", "decoder1"]).enumerated() {
            let up = try conv(decoder.transpConv.conv, x, prefix: name + ".transp_conv.conv")
            x = try unetResBlock(decoder.convBlock, node("Concat", [up, skips[k]], [Self.int("axis", 1)]), prefix: name + ".conv_block")
        }
        return try conv(net.out.conv.conv, x, prefix: "out.conv.conv")
    }

    /// MONAI's UnetResBlock: conv, InstanceNorm (no affine), LeakyReLU 0.01, conv, InstanceNorm, plus the
    /// (projected) input, LeakyReLU.
    mutating func unetResBlock(_ block: UnetResBlock, _ x: String, prefix: String) throws -> String {
        func norm(_ t: String, _ channels: Int) throws -> String {
            node("InstanceNormalization", [t, try initializer("norm.ones.\(channels)", try Tensor.ones([channels])),
                                           try initializer("norm.zeros.\(channels)", try Tensor.zeros([channels]))], [Self.float("epsilon", 1e-5)])
        }
        let out = block.conv1.conv.outChannels
        let first = node("LeakyRelu", [try norm(try conv(block.conv1.conv, x, prefix: prefix + ".conv1.conv"), out)], [Self.float("alpha", 0.01)])
        let h = try norm(try conv(block.conv2.conv, first, prefix: prefix + ".conv2.conv"), out)
        let residual = try block.conv3.map { try norm(try conv($0.conv, x, prefix: prefix + ".conv3.conv"), out) } ?? x
        return node("LeakyRelu", [node("Add", [h, residual])], [Self.float("alpha", 0.01)])
    }

    /// LayerNorm over the channels of [B, C, spatial...] without affine parameters.
    mutating func channelNormalized(_ x: String, channels: Int) throws -> String {
        let last = [0] + (2..<(dims + 2)).map { $0 } + [1], back = [0, dims + 1] + (1...dims).map { $0 }
        let normalized = node("LayerNormalization", [node("Transpose", [x], [Self.ints("perm", last)]),
                                                     try initializer("norm.ones.\(channels)", try Tensor.ones([channels])),
                                                     try initializer("norm.zeros.\(channels)", try Tensor.zeros([channels]))],
                              [Self.int("axis", -1), Self.float("epsilon", 1e-5)])
        return node("Transpose", [normalized], [Self.ints("perm", back)])
    }

    /// One stage on [B, C, spatial...]: its Swin blocks channels last, then the patch merging.
    mutating func swinStage(_ stage: SwinStage, _ x: String, spatial: [Int], channels: Int, prefix: String) throws -> String {
        let (window, shift) = SwinWindows.sizes(spatial, shifted: true)
        let padded = zip(spatial, window).map { ($0 + $1 - 1) / $1 * $1 }
        let mask = try initializer(prefix + ".mask", try SwinWindows.mask(padded, window: window, shift: shift, device: .cpu))
        var h = node("Transpose", [x], [Self.ints("perm", [0] + (2..<(dims + 2)).map { $0 } + [1])])
        for (b, block) in stage.blocks.enumerated() {
            h = try swinBlock(block, h, spatial: spatial, channels: channels, mask: mask, prefix: "\(prefix).blocks.\(b)")
        }
        h = try patchMerging(stage.downsample, h, spatial: spatial, prefix: prefix + ".downsample")
        return node("Transpose", [h], [Self.ints("perm", [0, dims + 1] + (1...dims).map { $0 })])
    }

    /// x + attention in (shifted) windows of norm1(x), then + mlp(norm2(.)); [B, spatial..., C].
    mutating func swinBlock(_ block: SwinBlock, _ x: String, spatial: [Int], channels: Int, mask: String, prefix: String) throws -> String {
        let (window, shift) = SwinWindows.sizes(spatial, shifted: block.shifted)
        let pads = zip(spatial, window).map { ($1 - $0 % $1) % $1 }
        var h = try layerNorm(block.norm1, x, prefix: prefix + ".norm1")
        if pads.contains(where: { $0 > 0 }) {
            h = node("Pad", [h, integers("\(prefix).pads", Array(repeating: 0, count: dims + 2) + [0] + pads + [0])])
        }
        let padded = zip(spatial, pads).map { $0 + $1 }
        let shifted = shift.contains { $0 > 0 }
        if shifted { h = roll(h, by: shift.map { -$0 }, sizes: padded) }
        // Windows [B x windows, N, C].
        var shape = [0]
        for a in 0..<dims { shape += [padded[a] / window[a], window[a]] }
        let outer = (0..<dims).map { 1 + 2 * $0 }, inner = (0..<dims).map { 2 + 2 * $0 }
        let n = window.reduce(1, *)
        let windows = node("Reshape", [node("Transpose", [node("Reshape", [h, integers("\(prefix).split", shape + [channels])])],
                                            [Self.ints("perm", [0] + outer + inner + [2 * dims + 1])]),
                                       integers("\(prefix).windows", [-1, n, channels])])
        let attended = try windowAttention(block.attn, windows, tokens: n, channels: channels, mask: shifted ? mask : nil,
                                           windowCount: zip(padded, window).map { $0 / $1 }.reduce(1, *), prefix: prefix + ".attn")
        // Back to [B, padded..., C].
        let counts = zip(padded, window).map { $0 / $1 }
        let order = [0] + (0..<dims).flatMap { [1 + $0, 1 + dims + $0] } + [2 * dims + 1]
        h = node("Reshape", [node("Transpose", [node("Reshape", [attended, integers("\(prefix).unsplit", [-1] + counts + window + [channels])])],
                                  [Self.ints("perm", order)]), integers("\(prefix).map", [-1] + padded + [channels])])
        if shifted { h = roll(h, by: shift, sizes: padded) }
        if pads.contains(where: { $0 > 0 }) {
            h = node("Slice", [h, integers("\(prefix).crop.starts", Array(repeating: 0, count: dims)), integers("\(prefix).crop.ends", spatial),
                               integers("\(prefix).crop.axes", Array(1...dims))])
        }
        let y = node("Add", [x, h])
        let hiddenUnits = try gelu(try linear(block.mlp.linear1, try layerNorm(block.norm2, y, prefix: prefix + ".norm2"), prefix: prefix + ".mlp.linear1"))
        return node("Add", [y, try linear(block.mlp.linear2, hiddenUnits, prefix: prefix + ".mlp.linear2")])
    }

    /// torch.roll along the spatial axes 1...dims of [B, spatial..., C] by `shifts` (negative: towards the start).
    mutating func roll(_ x: String, by shifts: [Int], sizes: [Int]) -> String {
        var h = x
        for (a, s) in shifts.enumerated() where s != 0 {
            let size = sizes[a], cut = ((size - s) % size + size) % size  // the new first element's index
            let axis = integers("roll.axis.\(a + 1)", [a + 1])
            let tail = node("Slice", [h, integers("roll.at.\(cut)", [cut]), integers("roll.at.\(size)", [size]), axis])
            let head = node("Slice", [h, integers("roll.at.0", [0]), integers("roll.at.\(cut)", [cut]), axis])
            h = node("Concat", [tail, head], [Self.int("axis", a + 1)])
        }
        return h
    }

    /// Window attention with the relative position bias (a constant for this window size) and, for
    /// shifted windows, the mask.
    mutating func windowAttention(_ attn: SwinWindowAttention, _ x: String, tokens n: Int, channels: Int, mask: String?, windowCount: Int,
                                  prefix: String) throws -> String {
        let heads = attn.heads, hd = channels / heads
        let parts = node("Transpose", [node("Reshape", [try linear(attn.qkv, x, prefix: prefix + ".qkv"),
                                                        integers("swin.qkv_shape.\(heads).\(hd)", [0, 0, 3, heads, hd])])],
                         [Self.ints("perm", [2, 0, 3, 1, 4])])
        let scale = try initializer("attention.scale.\(hd)", try Tensor([Float(attn.scale)], shape: [1]))
        let q = node("Mul", [gather(parts, 0), scale])
        var scores = node("MatMul", [q, node("Transpose", [gather(parts, 1)], [Self.ints("perm", [0, 1, 3, 2])])])
        let rows = try attn.relativePositionIndex.narrow(dim: 0, start: 0, length: n).narrow(dim: 1, start: 0, length: n).reshape([-1])
        let bias = try attn.relativePositionBiasTable.indexSelect(dim: 0, index: rows).reshape([n, n, heads]).permute([2, 0, 1])
        scores = node("Add", [scores, try initializer(prefix + ".relative_position_bias", bias.contiguous())])
        if let mask {
            let grouped = node("Reshape", [scores, integers("swin.grouped.\(windowCount).\(heads).\(n)", [-1, windowCount, heads, n, n])])
            let masked = node("Add", [grouped, node("Reshape", [mask, integers("swin.mask_shape.\(windowCount).\(n)", [1, windowCount, 1, n, n])])])
            scores = node("Reshape", [masked, integers("swin.scores.\(heads).\(n)", [-1, heads, n, n])])
        }
        let weighted = node("MatMul", [node("Softmax", [scores], [Self.int("axis", -1)]), gather(parts, 2)])
        let merged = node("Reshape", [node("Transpose", [weighted], [Self.ints("perm", [0, 2, 1, 3])]), integers("swin.merged.\(channels)", [0, 0, channels])])
        return try linear(attn.proj, merged, prefix: prefix + ".proj")
    }

    /// Each 2x(x2)x2 neighbourhood's channels concatenated in the model's order, normalized, reduced.
    mutating func patchMerging(_ merging: SwinPatchMerging, _ x: String, spatial: [Int], prefix: String) throws -> String {
        var h = x
        if spatial.contains(where: { $0 % 2 == 1 }) {
            h = node("Pad", [h, integers("\(prefix).pads", Array(repeating: 0, count: dims + 2) + [0] + spatial.map { $0 % 2 } + [0])])
        }
        let padded = spatial.map { $0 + $0 % 2 }
        let parts = merging.offsets.map { offset in
            node("Slice", [h, integers("merge.starts.\(offset.map(String.init).joined())", offset), integers("merge.ends.\(padded.map(String.init).joined(separator: "x"))", padded),
                           integers("merge.axes.\(dims)", Array(1...dims)), integers("merge.steps.\(dims)", Array(repeating: 2, count: dims))])
        }
        let joined = node("Concat", parts, [Self.int("axis", -1)])
        return try linear(merging.reduction, try layerNorm(merging.norm, joined, prefix: prefix + ".norm"), prefix: prefix + ".reduction")
    }
}
