import MedSegModels
import Torch

/// The classic U-Net (BatchNorm with its running statistics, max-pooling, transposed convolutions,
/// skips concatenated first) and UNet++ (nnU-Net's conv-norm-nonlin blocks on nested skips; its
/// final head only, on X(0, depth-1)).
extension ONNXModel.Graph {
    mutating func unet(_ net: UNet, input: String) throws -> String {
        var h = input
        var skips: [String] = []
        for (i, block) in net.enc.enumerated() {
            if i > 0 { h = node("MaxPool", [h], pooling(kernel: [2], stride: [2], padding: [0])) }
            h = try layer(block, h, prefix: "enc.\(i)")
            skips.append(h)
        }
        skips.removeLast()
        for (i, (up, block)) in zip(net.up, net.dec).enumerated() {
            let upsampled = try conv(up, h, prefix: "up.\(i)")
            h = try layer(block, node("Concat", [skips.removeLast(), upsampled], [Self.int("axis", 1)]), prefix: "dec.\(i)")
        }
        return try conv(net.out, h, prefix: "out")
    }

    mutating func unetPlusPlus(_ net: UNetPlusPlus, input: String) throws -> String {
        let depth = net.config.depth
        var X: [[String]] = Array(repeating: [], count: depth)
        var h = input
        for i in 0..<depth {
            h = try layer(net.nodes[i][0], h, prefix: "conv\(i)_0")
            X[i].append(h)
        }
        for j in 1..<depth {
            for i in stride(from: depth - 1 - j, through: 0, by: -1) {
                let up = try conv(net.ups[i][j]!, X[i + 1][j - 1], prefix: "up\(i)_\(j)")
                X[i].append(try layer(net.nodes[i][j], node("Concat", Array(X[i][0..<j]) + [up], [Self.int("axis", 1)]), prefix: "conv\(i)_\(j)"))
            }
        }
        return try conv(net.heads[depth - 2], X[0][depth - 1], prefix: "final\(depth - 1)")
    }
}
