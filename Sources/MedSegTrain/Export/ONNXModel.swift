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
        + "SegResNet, the classic U-Net (unet), UNet++ (unetpp), SETR-MLA (setr_mla) and Primus (primus, primus_v2, primus_v3)"

    /// The ONNX bytes of `model` with `metadata` in its `metadata_props`, or an error naming the
    /// networks that can be exported.
    /// `half`: float16 weights, input and output (a runtime without float16 kernels computes in
    /// float32 between them, as onnxruntime's CPU provider does).
    public static func export(_ model: Module, metadata: ONNXMetadata = .init(entries: []), half: Bool = false) throws -> Data {
        // The network's input and output channels and its emitter.
        let spatial: Int, inChannels: Int, classes: Int
        // The input size of a network made for one (Primus); nil: any size it divides.
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
        default:
            throw TrainingError("ONNX export covers \(covered); this network is \(type(of: model))")
        }
        var graph = Graph(dims: spatial, half: half)
        let output = graph.node("Identity", [try emit(&graph)], named: "logits")
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
