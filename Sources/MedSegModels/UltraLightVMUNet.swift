import Foundation
import Torch

/// Mamba's block (mamba_simple.Mamba, slow path) with the fused selective scan: in_proj -> (x, z);
/// x through a causal depthwise Conv1d + SiLU; x_proj -> (dt, B, C); dt_proj (bias added inside
/// the scan, before softplus); y = scan(...) * silu(z); out_proj. Parameter names as published:
/// `A_log`, `D`, `in_proj`, `conv1d`, `x_proj`, `dt_proj`, `out_proj`.
public final class MambaBlock: Module {
    public let dModel: Int
    public let dInner: Int
    public let dState: Int
    public let dtRank: Int
    public let dConv: Int
    public let aLog: Tensor
    public let d: Tensor
    public let inProj: Linear
    public let conv1d: Conv1d
    public let xProj: Linear
    public let dtProj: Linear
    public let outProj: Linear

    public init(dModel: Int, dState: Int = 16, dConv: Int = 4, expand: Int = 2) throws {
        guard dModel >= 1 else { throw TorchError("Mamba needs a positive d_model, got \(dModel)") }
        self.dModel = dModel
        dInner = expand * dModel
        self.dState = dState
        self.dConv = dConv
        dtRank = (dModel + 15) / 16
        // A_log[e, n] = log(n + 1); D = 1.
        aLog = try Tensor.arange(1, Double(dState + 1)).log().unsqueeze(0).expand([dInner, dState]).contiguous()
        d = try Tensor.ones([dInner])
        inProj = try Linear(dModel, 2 * dInner, bias: false)
        conv1d = try Conv1d(dInner, dInner, kernelSize: dConv, padding: dConv - 1, groups: dInner, bias: true)
        xProj = try Linear(dInner, dtRank + 2 * dState, bias: false)
        dtProj = try Linear(dtRank, dInner, bias: true)
        outProj = try Linear(dInner, dModel, bias: false)
        super.init()
        registerParameter("A_log", aLog)
        registerParameter("D", d)
        registerModule("in_proj", inProj)
        registerModule("conv1d", conv1d)
        registerModule("x_proj", xProj)
        registerModule("dt_proj", dtProj)
        registerModule("out_proj", outProj)
    }

    /// [batch, L, d_model] -> [batch, L, d_model].
    public override func forward(_ hidden: Tensor) throws -> Tensor {
        guard hidden.rank == 3, hidden.size(2) == dModel else {
            throw TorchError("Mamba expects [batch, length, \(dModel)], got \(hidden.shape)")
        }
        let length = hidden.size(1)
        let xz = try inProj(hidden)                                   // [b, L, 2E]
        let parts = try xz.split(dInner, dim: 2)
        let z = try parts[1].transpose(1, 2)                           // [b, E, L] (view)
        var x = try conv1d(parts[0].transpose(1, 2))                   // [b, E, L + dConv - 1]
        x = try F.silu(x.narrow(dim: 2, start: 0, length: length))     // [b, E, L]
        let xdbl = try xProj(x.transpose(1, 2))                        // [b, L, R + 2N]
        let pieces = try xdbl.split(sizes: [dtRank, dState, dState], dim: 2)
        let dt = try F.linear(pieces[0], weight: dtProj.weight)         // [b, L, E], bias added in the scan
        let a = try 0 - aLog.exp()
        let y = try F.selectiveScan(x.contiguous(), delta: dt.transpose(1, 2).contiguous(), A: a,
                                    B: pieces[1].transpose(1, 2), C: pieces[2].transpose(1, 2), D: d,
                                    z: z.contiguous(), deltaBias: dtProj.bias, deltaSoftplus: true)
        return try outProj(y.transpose(1, 2))
    }
}

/// The parallel vision Mamba layer: LayerNorm, the channels split in 4 chunks run through one
/// shared Mamba block (as one batch of 4B) plus `skip_scale` x chunk, concatenated, the same
/// LayerNorm again, Linear C_in -> C_out. Tokens are the flattened spatial positions.
public final class PVMLayer: Module {
    public let inputDim: Int
    public let outputDim: Int
    public let norm: LayerNorm
    public let mamba: MambaBlock
    public let proj: Linear
    public let skipScale: Tensor

    public init(inputDim: Int, outputDim: Int, dState: Int = 16, dConv: Int = 4, expand: Int = 2) throws {
        guard inputDim % 4 == 0 else { throw TorchError("a PVM layer needs channels divisible by 4, got \(inputDim)") }
        self.inputDim = inputDim
        self.outputDim = outputDim
        skipScale = try Tensor.ones([1])
        norm = try LayerNorm(inputDim)
        mamba = try MambaBlock(dModel: inputDim / 4, dState: dState, dConv: dConv, expand: expand)
        proj = try Linear(inputDim, outputDim)
        super.init()
        registerParameter("skip_scale", skipScale)
        registerModule("norm", norm)
        registerModule("mamba", mamba)
        registerModule("proj", proj)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        let shape = x.shape
        guard shape.count >= 3, shape[1] == inputDim else {
            throw TorchError("PVM layer expects [batch, \(inputDim), ...], got \(shape)")
        }
        let batch = shape[0]
        let spatial = Array(shape.dropFirst(2))
        let tokens = spatial.reduce(1, *)
        let flat = try x.reshape([batch, inputDim, tokens]).transpose(1, 2)       // [b, L, C]
        let normed = try norm(flat)
        let chunks = try normed.chunk(4, dim: 2)                                  // 4 x [b, L, C/4]
        let stacked = try Tensor.cat(chunks, dim: 0)                              // [4b, L, C/4]
        let mixed = try mamba(stacked) + (skipScale * stacked)
        let merged = try Tensor.cat(mixed.chunk(4, dim: 0), dim: 2)              // [b, L, C]
        let out = try proj(norm(merged))                                          // [b, L, C_out]
        return try out.transpose(1, 2).reshape([batch, outputDim] + spatial)
    }
}

/// Channel attention of the SC_Att_Bridge: pooled skips concatenated, one Conv1d across them,
/// then per skip Linear + sigmoid.
public final class ChannelAttBridge: Module {
    public let getAllAtt: Conv1d
    public let att: [Linear]

    public init(channels: [Int]) throws {
        let total = channels.dropLast().reduce(0, +)
        getAllAtt = try Conv1d(1, 1, kernelSize: 3, padding: 1, bias: false)
        att = try channels.dropLast().map { try Linear(total, $0) }
        super.init()
        registerModule("get_all_att", getAllAtt)
        for (i, l) in att.enumerated() { registerModule("att\(i + 1)", l) }
    }

    /// Per-skip attention maps [b, c_i, 1, 1].
    public func attention(_ ts: [Tensor]) throws -> [Tensor] {
        let pooled = try Tensor.cat(ts.map { try $0.mean(dims: [2, 3]) }, dim: 1)   // [b, sum c]
        let mixed = try getAllAtt(pooled.unsqueeze(1))                                // [b, 1, sum c]
        return try att.map { try F.sigmoid($0(mixed)).transpose(1, 2).unsqueeze(-1) }  // [b, c_i, 1, 1]
    }
}

/// Spatial attention of the SC_Att_Bridge: [mean, max] over channels -> one shared dilated 7x7
/// conv -> sigmoid (`shared_conv2d.0`).
public final class SpatialAttBridge: Module {
    public let sharedConv2d: Sequential
    public let conv: Conv2d

    public override init() {
        conv = try! Conv2d(2, 1, kernelSize: 7, stride: 1, padding: 9, dilation: 3)
        sharedConv2d = Sequential(conv, Sigmoid())
        super.init()
        registerModule("shared_conv2d", sharedConv2d)
    }

    public func attention(_ t: Tensor) throws -> Tensor {
        let pooled = try Tensor.cat([t.mean(dim: 1, keepDim: true), t.max(dims: [1], keepDim: true)], dim: 1)
        return try sharedConv2d(pooled)
    }
}

/// SC_Att_Bridge: s = SA(t) * t; u = s + t; out = CA(u) * u + s, on the five skips.
public final class SCAttBridge: Module {
    public let catt: ChannelAttBridge
    public let satt: SpatialAttBridge

    public init(channels: [Int]) throws {
        catt = try ChannelAttBridge(channels: channels)
        satt = SpatialAttBridge()
        super.init()
        registerModule("catt", catt)
        registerModule("satt", satt)
    }

    public func forward(_ ts: [Tensor]) throws -> [Tensor] {
        let s = try ts.map { try satt.attention($0) * $0 }
        let u = try zip(s, ts).map { try $0 + $1 }
        let c = try catt.attention(u)
        return try (0..<ts.count).map { try c[$0] * u[$0] + s[$0] }
    }
}

/// UltraLight VM-UNet (Wu et al. 2024; seed 000), exactly the published model: c_list
/// [8, 16, 24, 32, 48, 64], conv stages 1-3, PVM stages 4-6, GroupNorm(4), SC_Att_Bridge,
/// PVM decoders 1-3, conv decoders 4-5, 1x1 head, sigmoid output (probabilities). 49,457
/// parameters and 129 state_dict entries named as the published state_dict (`encoder1.0.weight`,
/// `encoder4.0.mamba.A_log`, `scab.catt.att1.weight`, ...), with its initialization.
public final class UltraLightVMUNet: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var inChannels = 3
        public var classes = 1
        public var channels = [8, 16, 24, 32, 48, 64]
        public var bridge = true
        /// The published forward ends with a sigmoid; false returns the logits instead.
        public var sigmoidOutput = true

        public init(inChannels: Int = 3, classes: Int = 1, channels: [Int] = [8, 16, 24, 32, 48, 64],
                    bridge: Bool = true, sigmoidOutput: Bool = true) {
            self.inChannels = inChannels
            self.classes = classes
            self.channels = channels
            self.bridge = bridge
            self.sigmoidOutput = sigmoidOutput
        }
    }

    public let config: Config
    public let encoders: [Sequential]
    public let decoders: [Sequential]
    public let scab: SCAttBridge?
    public let ebn: [GroupNorm]
    public let dbn: [GroupNorm]
    public let final: Conv2d

    /// Inputs must have spatial sizes divisible by this (five 2x2 poolings).
    public static let sizeDivisor = 32

    public init(_ config: Config = Config()) throws {
        let c = config.channels
        guard c.count == 6 else { throw TorchError("UltraLight VM-UNet needs 6 channel widths, got \(c)") }
        guard c.allSatisfy({ $0 > 0 && $0 % 4 == 0 }) else {
            throw TorchError("UltraLight VM-UNet channel widths must be multiples of 4 (GroupNorm(4), 4 PVM chunks), got \(c)")
        }
        guard config.inChannels >= 1, config.classes >= 1 else {
            throw TorchError("UltraLight VM-UNet needs positive input channels and classes")
        }
        self.config = config
        func conv3(_ i: Int, _ o: Int) throws -> Conv2d { try Conv2d(i, o, kernelSize: 3, stride: 1, padding: 1) }
        encoders = [
            Sequential(try conv3(config.inChannels, c[0])),
            Sequential(try conv3(c[0], c[1])),
            Sequential(try conv3(c[1], c[2])),
            Sequential(try PVMLayer(inputDim: c[2], outputDim: c[3])),
            Sequential(try PVMLayer(inputDim: c[3], outputDim: c[4])),
            Sequential(try PVMLayer(inputDim: c[4], outputDim: c[5])),
        ]
        scab = config.bridge ? try SCAttBridge(channels: c) : nil
        decoders = [
            Sequential(try PVMLayer(inputDim: c[5], outputDim: c[4])),
            Sequential(try PVMLayer(inputDim: c[4], outputDim: c[3])),
            Sequential(try PVMLayer(inputDim: c[3], outputDim: c[2])),
            Sequential(try conv3(c[2], c[1])),
            Sequential(try conv3(c[1], c[0])),
        ]
        ebn = try (0..<5).map { try GroupNorm(4, c[$0]) }
        dbn = try (0..<5).map { try GroupNorm(4, c[4 - $0]) }
        final = try Conv2d(c[0], config.classes, kernelSize: 1)
        super.init()
        for (i, m) in encoders.enumerated() { registerModule("encoder\(i + 1)", m) }
        if let scab { registerModule("scab", scab) }
        for (i, m) in decoders.enumerated() { registerModule("decoder\(i + 1)", m) }
        for (i, m) in ebn.enumerated() { registerModule("ebn\(i + 1)", m) }
        for (i, m) in dbn.enumerated() { registerModule("dbn\(i + 1)", m) }
        registerModule("final", final)
        try initializeWeights()
    }

    /// The published `_init_weights`: Linear trunc_normal(std 0.02) with zero bias; Conv1d weight
    /// normal(0, sqrt(2 / (k * out))), bias left at PyTorch's default; Conv2d weight normal(0,
    /// sqrt(2 / fan_out)) with zero bias. A_log, D, skip_scale and the norms keep their values.
    public func initializeWeights() throws {
        for (_, m) in namedModules() {
            if let l = m as? Linear {
                try Init.truncNormal_(l.weight, std: 0.02)
                if let b = l.bias { try Init.constant_(b, 0) }
            } else if let conv = m as? ConvNd, conv.kernelSize.count == 1 {
                try Init.normal_(conv.weight, std: (2.0 / Double(conv.kernelSize[0] * conv.outChannels)).squareRoot())
            } else if let conv = m as? ConvNd, conv.kernelSize.count == 2 {
                let fanOut = conv.kernelSize[0] * conv.kernelSize[1] * conv.outChannels / conv.groups
                try Init.normal_(conv.weight, std: (2.0 / Double(fanOut)).squareRoot())
                if let b = conv.bias { try Init.constant_(b, 0) }
            }
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == 4, x.size(1) == config.inChannels else {
            throw TorchError("UltraLight VM-UNet expects [batch, \(config.inChannels), H, W], got \(x.shape)")
        }
        guard x.size(2) % Self.sizeDivisor == 0, x.size(3) % Self.sizeDivisor == 0 else {
            throw TorchError("UltraLight VM-UNet needs H and W divisible by \(Self.sizeDivisor), got \(x.size(2))x\(x.size(3))")
        }
        func up(_ t: Tensor) throws -> Tensor {
            try F.interpolate(t, scaleFactor: [2, 2], mode: .bilinear, alignCorners: true)
        }
        var out = x
        var skips: [Tensor] = []
        for i in 0..<5 {
            out = try F.gelu(F.maxPool2d(ebn[i](encoders[i](out)), kernel: 2, stride: 2))
            skips.append(out)
        }
        if let scab { skips = try scab.forward(skips) }
        out = try F.gelu(encoders[5](out))
        out = try F.gelu(dbn[0](decoders[0](out))) + skips[4]
        for i in 1..<5 {
            out = try F.gelu(up(dbn[i](decoders[i](out)))) + skips[4 - i]
        }
        let logits = try up(final(out))
        return config.sigmoidOutput ? try F.sigmoid(logits) : logits
    }
}
