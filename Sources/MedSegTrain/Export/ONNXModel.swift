import Foundation
import MedSegModels
import Torch

/// A trained network as an ONNX model (opset 17, IR 8), for ONNX runtimes: the graph written
/// operator by operator from the network's own structure and weights (libtorch has no ONNX
/// exporter; PyTorch's is Python). Input `image` [batch, channels, spatial...] of any batch and
/// size the network accepts; output `logits` at full resolution.
///
/// Networks: nnU-Net's plain conv U-Net (`plainunet`) and residual-encoder U-Net (`resencunet`), as
/// MedSeg trains them and as nnU-Net's own model folders hold them, MedNeXt, SegResNet, the classic
/// U-Net, UNet++ and SETR-MLA; of a deeply supervised network its full-resolution output only.
public enum ONNXModel {
    public static let opset = 17

    /// The networks `export` writes, in words.
    public static let covered = "nnU-Net's plain conv U-Net (plainunet) and residual-encoder U-Net (resencunet), MedNeXt, "
        + "SegResNet, the classic U-Net (unet), UNet++ (unetpp), SETR-MLA (setr_mla), Primus (primus, primus_v2, primus_v3), SwinUNETR "
        + "(swinunetr, swinunetr_v2; for the run's patch size) and UltraLight VM-UNet (ultralight_vmunet, its selective scan as a Scan)"

    /// The ONNX bytes of `model` with `metadata` in its `metadata_props`, or an error naming the
    /// networks that can be exported.
    /// `half`: float16 weights, input and output (a runtime without float16 kernels computes in
    /// float32 between them, as onnxruntime's CPU provider does).
    /// `inputSize`: the spatial size of a network whose graph depends on it (SwinUNETR: the run's patch).
    public static func export(_ model: Module, metadata: ONNXMetadata = .init(entries: []), half: Bool = false, inputSize: [Int]? = nil) throws -> Data {
        try export([model], metadata: metadata, half: half, inputSize: inputSize)
    }

    /// Several networks of one kind (the folds of a run) in one file whose `logits` are the mean of
    /// theirs, as predict averages folds; each network's weights under `foldN/`.
    public static func export(_ models: [Module], metadata: ONNXMetadata = .init(entries: []), half: Bool = false,
                              inputSize: [Int]? = nil) throws -> Data {
        guard let first = models.first else { throw TrainingError("ONNX export: no network to write") }
        let emitters = try models.map { try emitter($0, inputSize: inputSize) }
        let (spatial, inChannels, classes, fixedSize) = (emitters[0].spatial, emitters[0].inChannels, emitters[0].classes, emitters[0].fixedSize)
        guard emitters.allSatisfy({ $0.spatial == spatial && $0.inChannels == inChannels && $0.classes == classes && $0.fixedSize == fixedSize }) else {
            throw TrainingError("ONNX export: the folds' networks differ (\(type(of: first)) of other inputs, outputs or sizes); give one fold")
        }
        var graph = Graph(dims: spatial, half: half)
        var outputs: [String] = []
        for (i, e) in emitters.enumerated() {
            graph.weightPrefix = models.count > 1 ? "fold\(i)/" : ""
            outputs.append(try e.emit(&graph))
        }
        let logits = outputs.count == 1 ? outputs[0] : graph.node("Mean", outputs)
        let output = graph.node("Identity", [logits], named: "logits")
        let sizes: [Dim] = fixedSize.map { $0.map { .value($0) } } ?? (0..<spatial).map { .symbol("size\($0)") }
        var g = graph.proto
        g.string(2, "medseg")
        g.message(11, valueInfo("image", type: graph.elementType, dims: [.symbol("batch"), .value(inChannels)] + sizes))
        g.message(12, valueInfo(output, type: graph.elementType, dims: [.symbol("batch"), .value(classes)] + sizes))
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

    /// A network's spatial dimensions, input and output channels, fixed input size (Primus; nil:
    /// any size its strides divide) and the function that writes its graph.
    struct Emitter {
        var spatial = 0, inChannels = 0, classes = 0
        var fixedSize: [Int]? = nil
        var emit: (inout Graph) throws -> String = { _ in "" }
    }

    static func emitter(_ model: Module, inputSize: [Int]?) throws -> Emitter {
        var spatial: Int, inChannels: Int, classes: Int
        var fixedSize: [Int]? = nil
        let emit: (inout Graph) throws -> String
        switch model {
        case let unet as PlainConvUNet:
            (spatial, inChannels, classes) = (unet.config.dims, unet.config.inChannels, unet.config.classes)
            emit = { try $0.plainConvUNet(unet, input: "image") }
        case let unet as ResidualEncoderUNet:
            let c = unet.config.plain
            (spatial, inChannels, classes) = (c.dims, c.inChannels, c.classes)
            emit = { try $0.residualEncoderUNet(unet, input: "image") }
        case let net as MedNeXt:
            (spatial, inChannels, classes) = (net.config.dims, net.config.inChannels, net.config.classes)
            emit = { try $0.medNeXt(net, input: "image") }
        case let net as SegResNet:
            (spatial, inChannels, classes) = (net.config.dims, net.config.inChannels, net.config.classes)
            emit = { try $0.segResNet(net, input: "image") }
        case let net as UNet:
            (spatial, inChannels, classes) = (net.config.dims, net.config.inChannels, net.config.classes)
            emit = { try $0.unet(net, input: "image") }
        case let net as UNetPlusPlus:
            (spatial, inChannels, classes) = (net.config.dims, net.config.inChannels, net.config.classes)
            emit = { try $0.unetPlusPlus(net, input: "image") }
        case let net as SETRMLA:
            (spatial, inChannels, classes) = (2, net.config.encoder.inChannels, net.config.classes)
            emit = { try $0.setrMLA(net, input: "image") }
        case let net as Primus:
            (spatial, inChannels, classes, fixedSize) = (3, net.config.inChannels, net.config.classes, net.config.inputShape)
            emit = { try $0.primus(net, input: "image") }
        case let net as UltraLightVMUNet:
            (spatial, inChannels, classes) = (2, net.config.inChannels, net.config.classes)
            emit = { try $0.ultraLight(net, input: "image") }
        case let net as SwinUNETR:
            guard let size = inputSize else {
                throw TrainingError("ONNX export of SwinUNETR writes one input size (its windows and masks follow from it): give it (the run's patch)")
            }
            (spatial, inChannels, classes, fixedSize) = (net.config.dims, net.config.inChannels, net.config.classes, size)
            emit = { try $0.swinUNETR(net, input: "image", size: size) }
        default:
            throw TrainingError("ONNX export covers \(covered); this network is \(type(of: model))")
        }
        return Emitter(spatial: spatial, inChannels: inChannels, classes: classes, fixedSize: fixedSize, emit: emit)
    }

    enum Dim { case value(Int), symbol(String) }

    /// The ValueInfoProto of a tensor of element `type` (FLOAT 1, FLOAT16 10).
    static func valueInfo(_ name: String, type elementType: UInt64, dims: [Dim]) -> ProtoWriter {
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
        tensorType.varint(1, elementType)
        tensorType.message(2, shape)
        var type = ProtoWriter()
        type.message(1, tensorType)
        var info = ProtoWriter()
        info.string(1, name)
        info.message(2, type)
        return info
    }
}
