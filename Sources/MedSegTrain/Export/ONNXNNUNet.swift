import MedSegModels
import Torch

/// nnU-Net's networks (dynamic_network_architectures): conv-norm-nonlin stacks, residual blocks, the U-Net decoder.
extension ONNXModel.Graph {
    /// dynamic_network_architectures' conv, InstanceNorm, LeakyReLU.
    mutating func convNormNonlin(_ block: ConvNormNonlin, _ x: String, prefix: String) throws -> String {
        let h = try conv(block.conv, x, prefix: prefix + ".conv")
        let normalized = try instanceNorm(h, weight: block.norm.weight!, bias: block.norm.bias!, eps: block.norm.eps, prefix: prefix + ".norm")
        return node("LeakyRelu", [normalized], [Self.float("alpha", block.nonlin.negativeSlope)])
    }

    mutating func stacked(_ blocks: StackedConvBlocks, _ x: String, prefix: String) throws -> String {
        var h = x
        for (i, layer) in blocks.convs.layers.enumerated() {
            h = try convNormNonlin(layer as! ConvNormNonlin, h, prefix: "\(prefix).convs.\(i)")
        }
        return h
    }

    /// nnU-Net's plain conv U-Net: its encoder stages, then the U-Net decoder.
    mutating func plainConvUNet(_ unet: PlainConvUNet, input: String) throws -> String {
        var h = input
        var skips: [String] = []
        for (s, stage) in unet.encoder.stages.layers.enumerated() {
            h = try stacked((stage as! Sequential)[0] as! StackedConvBlocks, h, prefix: "encoder.stages.\(s).0")
            skips.append(h)
        }
        return try decoder(unet.decoder, skips: skips)
    }

    /// nnU-Net's residual-encoder U-Net: the stem, residual stages, then the U-Net decoder.
    mutating func residualEncoderUNet(_ unet: ResidualEncoderUNet, input: String) throws -> String {
        var h = try stacked(unet.encoder.stem, input, prefix: "encoder.stem")
        var skips: [String] = []
        for (s, stage) in unet.encoder.stages.layers.enumerated() {
            for (b, block) in (stage as! StackedResidualBlocks).blocks.layers.enumerated() {
                h = try residualBlock(block as! BasicBlockD, h, prefix: "encoder.stages.\(s).blocks.\(b)", slope: unet.config.plain.negativeSlope)
            }
            skips.append(h)
        }
        return try decoder(unet.decoder, skips: skips)
    }

    mutating func convNorm(_ block: ConvNorm, _ x: String, prefix: String) throws -> String {
        let h = try conv(block.conv, x, prefix: prefix + ".conv")
        return try instanceNorm(h, weight: block.norm.weight!, bias: block.norm.bias!, eps: block.norm.eps, prefix: prefix + ".norm")
    }

    /// BasicBlockD: conv-norm-nonlin, conv-norm, plus the skip (average pool, 1x1 conv-norm), nonlin.
    mutating func residualBlock(_ block: BasicBlockD, _ x: String, prefix: String, slope: Double) throws -> String {
        let h = try convNorm(block.conv2, try convNormNonlin(block.conv1, x, prefix: prefix + ".conv1"), prefix: prefix + ".conv2")
        var residual = x
        for (i, op) in (block.skip?.layers ?? []).enumerated() {
            if let pool = op as? AvgPool {
                residual = node("AveragePool", [residual], [Self.ints("kernel_shape", pool.kernel), Self.ints("strides", pool.stride)])
            } else {
                residual = try convNorm(op as! ConvNorm, residual, prefix: "\(prefix).skip.\(i)")
            }
        }
        return node("LeakyRelu", [node("Add", [h, residual])], [Self.float("alpha", slope)])
    }

    /// The U-Net decoder: per stage the transposed convolution, the skip concatenated and the
    /// stage's convolutions; the last stage's 1x1 head.
    mutating func decoder(_ decoder: PlainConvDecoder, skips: [String]) throws -> String {
        var h = skips[skips.count - 1]
        for s in 0..<decoder.stages.count {
            let up = try conv(decoder.transpconvs[s], h, prefix: "decoder.transpconvs.\(s)")
            h = node("Concat", [up, skips[skips.count - s - 2]], [Self.int("axis", 1)])
            h = try stacked(decoder.stages[s], h, prefix: "decoder.stages.\(s)")
        }
        let last = decoder.stages.count - 1
        return try conv(decoder.segLayers[last], h, prefix: "decoder.seg_layers.\(last)")
    }
}
