import MedSegModels
import Torch

/// MONAI's SegResNet: GroupNorm (8 groups, see `groupNorm`), ReLU, pre-activated residual blocks,
/// a 1x1 convolution and linear upsampling (Resize) before each summed skip.
extension ONNXModel.Graph {
    mutating func segResNet(_ net: SegResNet, input: String) throws -> String {
        var h = try layer(net.convInit, input, prefix: "convInit")
        var skips: [String] = []
        for (l, level) in net.downLayers.enumerated() {
            h = try layer(level, h, prefix: "down_layers.\(l)")
            skips.append(h)
        }
        for (i, (up, blocks)) in zip(net.upSamples, net.upLayers).enumerated() {
            let upsampled = try layer(up, h, prefix: "up_samples.\(i)")
            h = try layer(blocks, node("Add", [upsampled, skips[skips.count - 2 - i]]), prefix: "up_layers.\(i)")
        }
        return try layer(net.convFinal, h, prefix: "conv_final")
    }

    /// x + conv2(relu(norm2(conv1(relu(norm1(x)))))).
    mutating func segResBlock(_ block: SegResBlock, _ x: String, prefix: String) throws -> String {
        var h = node("Relu", [try groupNorm(block.norm1, x, prefix: prefix + ".norm1")])
        h = try layer(block.conv1, h, prefix: prefix + ".conv1")
        h = node("Relu", [try groupNorm(block.norm2, h, prefix: prefix + ".norm2")])
        return node("Add", [try layer(block.conv2, h, prefix: prefix + ".conv2"), x])
    }
}
