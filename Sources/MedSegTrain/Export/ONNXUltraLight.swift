import MedSegModels
import Torch

/// UltraLight VM-UNet: conv stages with GroupNorm, the parallel vision Mamba layers with Mamba's
/// selective scan as an ONNX Scan over the tokens (the state h = exp(delta A) h + delta B x carried
/// from token to token, y = C h), the spatial-channel attention bridge, bilinear upsampling with
/// aligned corners; its logits (or the published sigmoid).
extension ONNXModel.Graph {
    mutating func ultraLight(_ net: UltraLightVMUNet, input: String) throws -> String {
        func stage(_ s: Sequential, _ x: String, prefix: String) throws -> String {
            switch s.layers[0] {
            case let pvm as PVMLayer: return try pvmLayer(pvm, x, prefix: prefix + ".0")
            default: return try layer(s, x, prefix: prefix)
            }
        }
        func up(_ x: String) -> String {
            node("Resize", [x, "", floats("ultralight.up", [1, 1, 2, 2])],
                 [Self.string("mode", "linear"), Self.string("coordinate_transformation_mode", "align_corners")])
        }
        let pool = [Self.ints("kernel_shape", [2, 2]), Self.ints("strides", [2, 2])]
        var out = input
        var skips: [String] = []
        for i in 0..<5 {
            let normed = try groupNorm(net.ebn[i], try stage(net.encoders[i], out, prefix: "encoder\(i + 1)"), prefix: "ebn\(i + 1)")
            out = try gelu(node("MaxPool", [normed], pool))
            skips.append(out)
        }
        if let scab = net.scab { skips = try attentionBridge(scab, skips) }
        out = try gelu(try stage(net.encoders[5], out, prefix: "encoder6"))
        out = node("Add", [try gelu(try groupNorm(net.dbn[0], try stage(net.decoders[0], out, prefix: "decoder1"), prefix: "dbn1")), skips[4]])
        for i in 1..<5 {
            let decoded = try groupNorm(net.dbn[i], try stage(net.decoders[i], out, prefix: "decoder\(i + 1)"), prefix: "dbn\(i + 1)")
            out = node("Add", [try gelu(up(decoded)), skips[4 - i]])
        }
        let logits = up(try conv(net.final, out, prefix: "final"))
        return net.config.sigmoidOutput ? node("Sigmoid", [logits]) : logits
    }

    /// SC_Att_Bridge: s = SA(t) t, u = s + t, out = CA(u) u + s on the five skips.
    mutating func attentionBridge(_ scab: SCAttBridge, _ ts: [String]) throws -> [String] {
        let s = try ts.map { t -> String in
            let pooled = node("Concat", [node("ReduceMean", [t], [Self.ints("axes", [1]), Self.int("keepdims", 1)]),
                                         node("ReduceMax", [t], [Self.ints("axes", [1]), Self.int("keepdims", 1)])], [Self.int("axis", 1)])
            return node("Mul", [node("Sigmoid", [try conv(scab.satt.conv, pooled, prefix: "scab.satt.shared_conv2d.0")]), t])
        }
        let u = zip(s, ts).map { node("Add", [$0, $1]) }
        let pooled = node("Concat", u.map { node("ReduceMean", [$0], [Self.ints("axes", [2, 3]), Self.int("keepdims", 0)]) }, [Self.int("axis", 1)])
        let mixed = try conv(scab.catt.getAllAtt, node("Unsqueeze", [pooled, integers("axes.1", [1])]), prefix: "scab.catt.get_all_att")
        return try scab.catt.att.enumerated().map { i, att in
            let weights = node("Sigmoid", [try linear(att, mixed, prefix: "scab.catt.att\(i + 1)")])  // [b, 1, c_i]
            let map = node("Unsqueeze", [node("Transpose", [weights], [Self.ints("perm", [0, 2, 1])]), integers("axes.3", [3])])
            return node("Add", [node("Mul", [map, u[i]]), s[i]])
        }
    }

    /// The PVM layer on [B, C, H, W]: tokens normalized, the channels in 4 chunks through one shared
    /// Mamba (as a batch of 4B) plus skip_scale times the chunk, joined, normalized, projected.
    mutating func pvmLayer(_ pvm: PVMLayer, _ x: String, prefix: String) throws -> String {
        let c = pvm.inputDim, q = c / 4
        let tokens = node("Transpose", [node("Reshape", [x, integers("pvm.flat.\(c)", [0, c, -1])])], [Self.ints("perm", [0, 2, 1])])
        let normed = try layerNorm(pvm.norm, tokens, prefix: prefix + ".norm")
        // [B, L, C] -> [4B, L, C/4], chunk-major as torch.cat(chunks, 0).
        let length = node("Shape", [tokens], [Self.int("start", 1), Self.int("end", 2)])
        let stackedShape = node("Concat", [integers("minus.one", [-1]), length, integers("pvm.quarter.\(q)", [q])], [Self.int("axis", 0)])
        let stacked = node("Reshape", [node("Transpose", [node("Reshape", [normed, integers("pvm.chunks.\(q)", [0, 0, 4, q])])],
                                            [Self.ints("perm", [2, 0, 1, 3])]), stackedShape])
        let mixed = node("Add", [try mamba(pvm.mamba, stacked, prefix: prefix + ".mamba"),
                                 node("Mul", [stacked, try initializer(prefix + ".skip_scale", pvm.skipScale)])])
        // Back: [4, B, L, C/4] -> [B, L, 4, C/4] -> [B, L, C].
        let quarters = node("Concat", [integers("pvm.four", [4]), integers("minus.one", [-1]), length, integers("pvm.quarter.\(q)", [q])],
                            [Self.int("axis", 0)])
        let merged = node("Reshape", [node("Transpose", [node("Reshape", [mixed, quarters])], [Self.ints("perm", [1, 2, 0, 3])]),
                                      integers("pvm.merged.\(c)", [0, 0, c])])
        let out = try linear(pvm.proj, try layerNorm(pvm.norm, merged, prefix: prefix + ".norm"), prefix: prefix + ".proj")
        let mapShape = node("Concat", [integers("pvm.map.\(pvm.outputDim)", [0, pvm.outputDim]), node("Shape", [x], [Self.int("start", 2)])],
                            [Self.int("axis", 0)])
        return node("Reshape", [node("Transpose", [out], [Self.ints("perm", [0, 2, 1])]), mapShape])
    }

    /// Mamba on [b, L, d_model]: in_proj to x and z; x through the causal depthwise conv and SiLU;
    /// x_proj to dt, B, C; the selective scan; y + D x, times SiLU(z); out_proj.
    mutating func mamba(_ m: MambaBlock, _ hidden: String, prefix: String) throws -> String {
        let (e, n, r) = (m.dInner, m.dState, m.dtRank)
        func slice(_ t: String, _ from: Int, _ to: Int, axis: Int) -> String {
            node("Slice", [t, integers("at.\(from)", [from]), integers("at.\(to)", [to]), integers("axis.\(axis)", [axis])])
        }
        func silu(_ t: String) -> String { node("Mul", [t, node("Sigmoid", [t])]) }
        let xz = try linear(m.inProj, hidden, prefix: prefix + ".in_proj")                            // [b, L, 2E]
        let z = node("Transpose", [slice(xz, e, 2 * e, axis: 2)], [Self.ints("perm", [0, 2, 1])])        // [b, E, L]
        // Causal: the (k - 1) padding on the left only gives Conv1d's first L outputs.
        let conv = m.conv1d
        let convolved = node("Conv", [node("Transpose", [slice(xz, 0, e, axis: 2)], [Self.ints("perm", [0, 2, 1])]),
                                      try initializer(prefix + ".conv1d.weight", conv.weight), try initializer(prefix + ".conv1d.bias", conv.bias!)],
                             [Self.ints("kernel_shape", conv.kernelSize), Self.ints("pads", [m.dConv - 1, 0]), Self.int("group", conv.groups)])
        let x = silu(convolved)                                                                        // [b, E, L]
        let tokens = node("Transpose", [x], [Self.ints("perm", [0, 2, 1])])                              // [b, L, E]
        let xdbl = try linear(m.xProj, tokens, prefix: prefix + ".x_proj")                              // [b, L, R + 2N]
        let dt = node("MatMul", [slice(xdbl, 0, r, axis: 2), try initializer(prefix + ".dt_proj.weight.T", try m.dtProj.weight.t())])
        let delta = node("Softplus", [node("Add", [dt, try initializer(prefix + ".dt_proj.bias", m.dtProj.bias!)])])  // [b, L, E]
        let a = try initializer(prefix + ".A", try (0 - m.aLog.exp()))                                  // [E, N]
        let deltaA = node("Exp", [node("Mul", [node("Unsqueeze", [delta, integers("axes.3", [3])]), a])])  // [b, L, E, N]
        let deltaBx = node("Mul", [node("Unsqueeze", [node("Mul", [delta, tokens]), integers("axes.3", [3])]),
                                   node("Unsqueeze", [slice(xdbl, r, r + n, axis: 2), integers("axes.2", [2])])])  // [b, L, E, N]
        let cs = node("Unsqueeze", [slice(xdbl, r + n, r + 2 * n, axis: 2), integers("axes.2", [2])])     // [b, L, 1, N]
        // The state starts at zero, shaped as one token's deltaA.
        let h0 = node("Mul", [node("Gather", [deltaA, integers("index.0", [0], scalar: true)], [Self.int("axis", 1)]),
                              try initializer("scan.zero", try Tensor([Float(0)], shape: [1]))])
        let y = scan(h0: h0, deltaA: deltaA, deltaBx: deltaBx, c: cs, states: [e, n])                  // [b, E, L]
        let d = try initializer(prefix + ".D", try m.d.reshape([e, 1]))
        let gated = node("Mul", [node("Add", [y, node("Mul", [x, d])]), silu(z)])
        return try linear(m.outProj, node("Transpose", [gated], [Self.ints("perm", [0, 2, 1])]), prefix: prefix + ".out_proj")
    }

    /// ONNX Scan along the tokens (axis 1 of each [b, L, ...] input): per token h = deltaA h + deltaBx,
    /// y = sum over the state of h C; the ys stacked on the last axis ([b, E, L]).
    mutating func scan(h0: String, deltaA: String, deltaBx: String, c: String, states: [Int]) -> String {
        scanCount += 1
        let p = "scan\(scanCount)_"
        var body = ProtoWriter()
        func add(_ op: String, _ inputs: [String], _ output: String, _ attributes: [ProtoWriter] = []) {
            body.message(1, Self.nodeProto(op, inputs, [output], attributes))
        }
        add("Mul", [p + "deltaA", p + "h"], p + "decayed")
        add("Add", [p + "decayed", p + "deltaBx"], p + "h_next")
        add("Mul", [p + "h_next", p + "c"], p + "weighted")
        add("ReduceSum", [p + "weighted", integers("axes.2", [2])], p + "y", [Self.int("keepdims", 0)])
        body.string(2, p + "body")
        let unknown = ONNXModel.Dim.symbol("batch")
        let stateDims = [unknown] + states.map { ONNXModel.Dim.value($0) }
        for (name, dims) in [("h", stateDims), ("deltaA", stateDims), ("deltaBx", stateDims), ("c", [unknown, .value(1), .value(states[1])])] {
            body.message(11, ONNXModel.valueInfo(p + name, type: elementType, dims: dims))
        }
        body.message(12, ONNXModel.valueInfo(p + "h_next", type: elementType, dims: stateDims))
        body.message(12, ONNXModel.valueInfo(p + "y", type: elementType, dims: [unknown, .value(states[0])]))
        var graphAttribute = ProtoWriter()
        graphAttribute.string(1, "body")
        graphAttribute.message(6, body)
        graphAttribute.varint(20, 5)  // GRAPH
        let outputs = node("Scan", [h0, deltaA, deltaBx, c],
                           [graphAttribute, Self.int("num_scan_inputs", 3), Self.ints("scan_input_axes", [1, 1, 1]),
                            Self.ints("scan_output_axes", [2])], outputs: 2)
        return outputs[1]
    }
}
