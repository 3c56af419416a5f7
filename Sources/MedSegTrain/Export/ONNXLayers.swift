import MedSegModels
import Torch

/// Torch layers as ONNX operators (opset 17), in eval mode; `layer` walks containers and refuses a
/// layer it has no operators for by its state_dict name, before anything is written.
extension ONNXModel.Graph {
    /// `m` (named `prefix` in the state_dict) applied to `x`.
    mutating func layer(_ m: Module, _ x: String, prefix: String) throws -> String {
        switch m {
        case let s as Sequential:
            var h = x
            for (i, child) in s.layers.enumerated() { h = try layer(child, h, prefix: "\(prefix).\(i)") }
            return h
        case let c as ConvNd: return try conv(c, x, prefix: prefix)
        case let c as MONAIConvolution: return try conv(c.conv, x, prefix: prefix + ".conv")
        case let block as ConvNormNonlin: return try convNormNonlin(block, x, prefix: prefix)
        case let block as SegResBlock: return try segResBlock(block, x, prefix: prefix)
        case let n as GroupNorm: return try groupNorm(n, x, prefix: prefix)
        case let n as BatchNorm: return try batchNorm(n, x, prefix: prefix)
        case is ReLU: return node("Relu", [x])
        case let r as LeakyReLU: return node("LeakyRelu", [x], [Self.float("alpha", r.negativeSlope)])
        case is Identity: return x
        case let u as Upsample: return try resize(u, x, prefix: prefix)
        case let p as MaxPool: return node("MaxPool", [x], pooling(kernel: p.kernel, stride: p.stride, padding: p.padding))
        case let p as AvgPool:
            // PyTorch counts the padding in the average.
            return node("AveragePool", [x], pooling(kernel: p.kernel, stride: p.stride, padding: p.padding) + [Self.int("count_include_pad", 1)])
        default:
            throw TrainingError("ONNX export has no operators for layer \(prefix) (\(type(of: m))); nothing was written")
        }
    }

    /// A (transposed) convolution with its weights under `prefix`.
    mutating func conv(_ conv: ConvNd, _ x: String, prefix: String) throws -> String {
        var inputs = [x, try initializer(prefix + ".weight", conv.weight)]
        if let bias = conv.bias { inputs.append(try initializer(prefix + ".bias", bias)) }
        var attributes = [Self.ints("kernel_shape", conv.kernelSize), Self.ints("strides", conv.stride)]
        if conv.padding.contains(where: { $0 != 0 }) { attributes.append(Self.ints("pads", conv.padding + conv.padding)) }
        if conv.dilation.contains(where: { $0 != 1 }) { attributes.append(Self.ints("dilations", conv.dilation)) }
        if conv.transposed, conv.outputPadding.contains(where: { $0 != 0 }) { attributes.append(Self.ints("output_padding", conv.outputPadding)) }
        if conv.groups != 1 { attributes.append(Self.int("group", conv.groups)) }
        return node(conv.transposed ? "ConvTranspose" : "Conv", inputs, attributes)
    }

    /// Per-channel normalization with a scale and bias under `prefix` (an affine InstanceNorm,
    /// or a GroupNorm of one group per channel).
    mutating func instanceNorm(_ x: String, weight: Tensor, bias: Tensor, eps: Double, prefix: String) throws -> String {
        node("InstanceNormalization", [x, try initializer(prefix + ".weight", weight), try initializer(prefix + ".bias", bias)],
             [Self.float("epsilon", eps)])
    }

    /// GroupNorm at opset 17, which has no GroupNormalization (opset 18's scales groups, not
    /// channels; 21 fixed that, but few runtimes read 21 yet): the channels viewed as [N, groups, -1],
    /// instance-normalized without affine, viewed back, then the per-channel scale and bias.
    mutating func groupNorm(_ norm: GroupNorm, _ x: String, prefix: String) throws -> String {
        let g = norm.numGroups
        if g == norm.numChannels, let weight = norm.weight, let bias = norm.bias {
            return try instanceNorm(x, weight: weight, bias: bias, eps: norm.eps, prefix: prefix)
        }
        let grouped = node("Reshape", [x, integers(prefix + ".grouped_shape", [0, g, -1])])
        let scale = try initializer("groupnorm.\(g).ones", try Tensor.ones([g]))
        let shift = try initializer("groupnorm.\(g).zeros", try Tensor.zeros([g]))
        let normalized = node("InstanceNormalization", [grouped, scale, shift], [Self.float("epsilon", norm.eps)])
        let h = node("Reshape", [normalized, node("Shape", [x])])
        guard let weight = norm.weight, let bias = norm.bias else { return h }
        let perChannel = [norm.numChannels] + Array(repeating: 1, count: dims)
        return node("Add", [node("Mul", [h, try initializer(prefix + ".weight", try weight.reshape(perChannel))]),
                            try initializer(prefix + ".bias", try bias.reshape(perChannel))])
    }

    /// BatchNorm with its running statistics (eval mode); one without them normalizes each batch
    /// by itself, which is no fixed operator.
    mutating func batchNorm(_ norm: BatchNorm, _ x: String, prefix: String) throws -> String {
        guard let mean = norm.runningMean, let variance = norm.runningVar else {
            throw TrainingError("ONNX export: layer \(prefix) (BatchNorm) keeps no running statistics; nothing was written")
        }
        let scale = try norm.weight ?? Tensor.ones([norm.numFeatures]), shift = try norm.bias ?? Tensor.zeros([norm.numFeatures])
        return node("BatchNormalization", [x, try initializer(prefix + ".weight", scale), try initializer(prefix + ".bias", shift),
                                           try initializer(prefix + ".running_mean", mean), try initializer(prefix + ".running_var", variance)],
                    [Self.float("epsilon", norm.eps)])
    }

    /// Upsample as Resize: (bi/tri)linear with PyTorch's half-pixel centres (or aligned corners),
    /// nearest as PyTorch's floor of the asymmetric source index.
    mutating func resize(_ up: Upsample, _ x: String, prefix: String) throws -> String {
        let scales = floats(prefix + ".scales", [1, 1] + up.scaleFactor.map { Float($0) })
        var attributes: [ProtoWriter]
        switch up.mode {
        case .linear, .bilinear, .trilinear:
            attributes = [Self.string("mode", "linear"),
                          Self.string("coordinate_transformation_mode", up.alignCorners ? "align_corners" : "pytorch_half_pixel")]
        case .nearest:
            attributes = [Self.string("mode", "nearest"), Self.string("coordinate_transformation_mode", "asymmetric"),
                          Self.string("nearest_mode", "floor")]
        case .bicubic:
            throw TrainingError("ONNX export has no operators for layer \(prefix) (bicubic Upsample); nothing was written")
        }
        return node("Resize", [x, "", scales], attributes)
    }

    func pooling(kernel: [Int], stride: [Int], padding: [Int]) -> [ProtoWriter] {
        func perAxis(_ v: [Int]) -> [Int] { v.count == dims ? v : Array(repeating: v[0], count: dims) }
        var attributes = [Self.ints("kernel_shape", perAxis(kernel)), Self.ints("strides", perAxis(stride))]
        if padding.contains(where: { $0 != 0 }) { attributes.append(Self.ints("pads", perAxis(padding) + perAxis(padding))) }
        return attributes
    }
}
