import Foundation
import MedSegModels
import Torch

/// A trained network as an ONNX model (opset 17, IR 8), for ONNX runtimes: the graph written
/// operator by operator from the network's own structure and weights (libtorch has no ONNX
/// exporter; PyTorch's is Python). Input `image` [batch, channels, spatial...] of any batch and
/// size the network accepts; output `logits` at full resolution.
///
/// Networks: nnU-Net's plain conv U-Net (`plainunet`) and residual-encoder U-Net (`resencunet`), as
/// MedSeg trains them and as nnU-Net's own model folders hold them, and MedNeXt (its full-resolution
/// output).
public enum ONNXModel {
    public static let opset = 17

    /// The ONNX bytes of `model` with `metadata` in its `metadata_props`, or an error naming the
    /// networks that can be exported.
    public static func export(_ model: Module, metadata: ONNXMetadata = .init(entries: [])) throws -> Data {
        var graph = Graph()
        let spatial: Int
        let inChannels: Int, classes: Int
        let output: String
        switch model {
        case let unet as PlainConvUNet:
            (spatial, inChannels, classes) = (unet.config.dims, unet.config.inChannels, unet.config.classes)
            output = graph.node("Identity", [try graph.plainConvUNet(unet, input: "image")], named: "logits")
        case let unet as ResidualEncoderUNet:
            let c = unet.config.plain
            (spatial, inChannels, classes) = (c.dims, c.inChannels, c.classes)
            output = graph.node("Identity", [try graph.residualEncoderUNet(unet, input: "image")], named: "logits")
        case let net as MedNeXt:
            (spatial, inChannels, classes) = (net.config.dims, net.config.inChannels, net.config.classes)
            output = graph.node("Identity", [try graph.medNeXt(net, input: "image")], named: "logits")
        default:
            throw TrainingError("ONNX export covers nnU-Net's plain conv U-Net (plainunet), residual-encoder U-Net (resencunet) and MedNeXt so far; "
                                + "this network is \(type(of: model))")
        }
        let names = ["batch"] + (0..<spatial).map { "size\($0)" }
        var g = graph.proto
        g.string(2, "medseg")
        g.message(11, valueInfo("image", dims: [.symbol(names[0]), .value(inChannels)] + names.dropFirst().map { .symbol($0) }))
        g.message(12, valueInfo(output, dims: [.symbol(names[0]), .value(classes)] + names.dropFirst().map { .symbol($0) }))
        var opsetID = ProtoWriter()
        opsetID.string(1, "")
        opsetID.varint(2, UInt64(opset))
        var m = ProtoWriter()
        m.varint(1, 8)  // IR version 8
        m.string(2, "MedSeg")
        m.message(7, g)
        m.message(8, opsetID)
        for (key, value) in metadata.entries {
            var entry = ProtoWriter()
            entry.string(1, key)
            entry.string(2, value)
            m.message(14, entry)
        }
        return m.bytes
    }

    enum Dim { case value(Int), symbol(String) }

    /// A float32 tensor's ValueInfoProto.
    static func valueInfo(_ name: String, dims: [Dim]) -> ProtoWriter {
        var shape = ProtoWriter()
        for d in dims {
            var dim = ProtoWriter()
            switch d {
            case .value(let v): dim.varint(1, UInt64(v))
            case .symbol(let s): dim.string(2, s)
            }
            shape.message(1, dim)
        }
        var tensorType = ProtoWriter()
        tensorType.varint(1, 1)  // FLOAT
        tensorType.message(2, shape)
        var type = ProtoWriter()
        type.message(1, tensorType)
        var info = ProtoWriter()
        info.string(1, name)
        info.message(2, type)
        return info
    }

    /// Nodes and initializers of a graph being written; values are named by the nodes that make them.
    struct Graph {
        private(set) var proto = ProtoWriter()
        private var count = 0
        /// Initializers already written (shared constants are written once).
        private var written: Set<String> = []

        /// A weight, under its state_dict name, as a float32 initializer.
        mutating func initializer(_ name: String, _ tensor: Tensor) throws -> String {
            guard written.insert(name).inserted else { return name }
            let values = try tensor.to(dtype: .float32).contiguous().toArray(Float.self)
            var t = ProtoWriter()
            for d in tensor.shape { t.varint(1, UInt64(d)) }
            t.varint(2, 1)  // FLOAT
            t.string(8, name)
            var raw = Data(capacity: values.count * 4)
            for v in values { raw.append(littleEndian: v.bitPattern) }
            t.bytes(9, raw)
            proto.message(5, t)
            return name
        }

        /// An int64 initializer (Pad's pads).
        mutating func integers(_ name: String, _ values: [Int]) -> String {
            var t = ProtoWriter()
            t.varint(1, UInt64(values.count))
            t.varint(2, 7)  // INT64
            t.string(8, name)
            var raw = Data(capacity: values.count * 8)
            for v in values { raw.append(littleEndian: Int64(v)) }
            t.bytes(9, raw)
            proto.message(5, t)
            return name
        }

        /// Exact GELU, x * (1 + erf(x / sqrt 2)) / 2 (opset 17 has Erf, not Gelu).
        mutating func gelu(_ x: String) throws -> String {
            let root2 = try initializer("gelu.sqrt2", try Tensor([Float(2).squareRoot()], shape: [1]))
            let one = try initializer("gelu.one", try Tensor([Float(1)], shape: [1]))
            let half = try initializer("gelu.half", try Tensor([Float(0.5)], shape: [1]))
            let erf = node("Erf", [node("Div", [x, root2])])
            return node("Mul", [node("Mul", [x, node("Add", [erf, one])]), half])
        }

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

        /// A node of `op` on `inputs`; its output's name.
        mutating func node(_ op: String, _ inputs: [String], _ attributes: [ProtoWriter] = [], named: String? = nil) -> String {
            count += 1
            let output = named ?? "\(op.lowercased())_\(count)"
            var n = ProtoWriter()
            for i in inputs { n.string(1, i) }
            n.string(2, output)
            n.string(3, output)
            n.string(4, op)
            for a in attributes { n.message(5, a) }
            proto.message(1, n)
            return output
        }

        static func ints(_ name: String, _ values: [Int]) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            for v in values { a.varint(8, UInt64(bitPattern: Int64(v))) }
            a.varint(20, 7)  // INTS
            return a
        }

        static func int(_ name: String, _ value: Int) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            a.varint(3, UInt64(bitPattern: Int64(value)))
            a.varint(20, 2)  // INT
            return a
        }

        static func float(_ name: String, _ value: Double) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            a.float(2, Float(value))
            a.varint(20, 1)  // FLOAT
            return a
        }

        /// A (transposed) convolution with its weights under `prefix`.
        mutating func conv(_ conv: ConvNd, _ x: String, prefix: String) throws -> String {
            var inputs = [x, try initializer(prefix + ".weight", conv.weight)]
            if let bias = conv.bias { inputs.append(try initializer(prefix + ".bias", bias)) }
            var attributes = [Self.ints("kernel_shape", conv.kernelSize), Self.ints("strides", conv.stride)]
            if conv.padding.contains(where: { $0 != 0 }) { attributes.append(Self.ints("pads", conv.padding + conv.padding)) }
            if conv.groups != 1 { attributes.append(Self.int("group", conv.groups)) }
            return node(conv.transposed ? "ConvTranspose" : "Conv", inputs, attributes)
        }

        /// Per-channel normalization with a scale and bias under `prefix` (an affine InstanceNorm,
        /// or a GroupNorm of one group per channel).
        mutating func instanceNorm(_ x: String, weight: Tensor, bias: Tensor, eps: Double, prefix: String) throws -> String {
            node("InstanceNormalization", [x, try initializer(prefix + ".weight", weight), try initializer(prefix + ".bias", bias)],
                 [Self.float("epsilon", eps)])
        }

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
}
