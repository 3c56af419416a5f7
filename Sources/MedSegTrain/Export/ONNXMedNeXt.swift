import MedSegModels
import Torch

extension ONNXModel.Graph {
    /// MedNeXt: the stem, per level its blocks and the strided down block, the bottleneck, per
    /// level the up block, the skip added and its blocks; the full-resolution head. Its GroupNorm
    /// has a group per channel, which is InstanceNormalization.
    mutating func medNeXt(_ net: MedNeXt, input: String) throws -> String {
        var h = try conv(net.stem, input, prefix: "stem")
        var skips: [String] = []
        for (l, (stage, down)) in zip(net.encStages, net.downBlocks).enumerated() {
            for (b, block) in stage.layers.enumerated() { h = try medNeXtBlock(block as! MedNeXtBlock, h, prefix: "enc_stages.\(l).\(b)") }
            skips.append(h)
            h = try medNeXtBlock(down, h, prefix: "down_blocks.\(l)")
        }
        for (b, block) in net.bottleneck.layers.enumerated() { h = try medNeXtBlock(block as! MedNeXtBlock, h, prefix: "bottleneck.\(b)") }
        for (l, (up, stage)) in zip(net.upBlocks, net.decStages).enumerated() {
            h = node("Add", [try medNeXtBlock(up, h, prefix: "up_blocks.\(l)"), skips[skips.count - 1 - l]])
            for (b, block) in stage.layers.enumerated() { h = try medNeXtBlock(block as! MedNeXtBlock, h, prefix: "dec_stages.\(l).\(b)") }
        }
        return try conv(net.out0.convOut, h, prefix: "out_0.conv_out")
    }

    mutating func medNeXtBlock(_ block: MedNeXtBlock, _ x: String, prefix: String) throws -> String {
        var h = try conv(block.conv1, x, prefix: prefix + ".conv1")
        h = try instanceNorm(h, weight: block.norm.weight!, bias: block.norm.bias!, eps: block.norm.eps, prefix: prefix + ".norm")
        h = try conv(block.conv3, try gelu(try conv(block.conv2, h, prefix: prefix + ".conv2")), prefix: prefix + ".conv3")
        switch block.kind {
        case .plain:
            return block.residual ? node("Add", [x, h]) : h
        case .down:
            return try block.resConv.map { node("Add", [h, try conv($0, x, prefix: prefix + ".res_conv")]) } ?? h
        case .up:
            // One voxel at the start of each spatial axis (the transposed convolution gives 2n - 1).
            let rank = block.conv1.kernelSize.count + 2
            let pads = integers(prefix + ".pads", [0, 0] + Array(repeating: 1, count: rank - 2) + Array(repeating: 0, count: rank))
            h = node("Pad", [h, pads])
            return try block.resConv.map { node("Add", [h, node("Pad", [try conv($0, x, prefix: prefix + ".res_conv"), pads])]) } ?? h
        }
    }
}
