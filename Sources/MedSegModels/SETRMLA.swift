import Foundation
import Torch

/// SETR-MLA (Zheng et al., CVPR 2021; seed 002): a frozen ViT encoder and the multi-level
/// aggregation decoder.
///
/// - Four taps of the encoder (after blocks 3, 6, 9, 12 for 12 blocks) lose their cls token and
///   become (B, D, H/p, W/p) maps.
/// - `lateral.i`: 1x1 conv to `mlaChannels` + BN + ReLU per tap; top-down cumulative sum, deepest
///   first (p4 = l4, p3 = l3 + p4, ...); `smooth.i`: 3x3 conv + BN + ReLU per level.
/// - `heads.i`: two 3x3 conv + BN + ReLU (`mlaChannels` -> `headChannels` -> `headChannels`),
///   bilinear upsampling x4; the four are concatenated, `cls` (3x3 conv) maps them to the classes
///   and the result is upsampled bilinearly to the input size.
/// - `aux.i`: per-level auxiliary heads (1x1 conv to the classes, upsampled to the input size),
///   whose losses count `auxWeight` (0.4) each; see `forwardWithAux(_:)` and `loss(_:target:criterion:)`.
///
/// The encoder (`encoder.*`, timm names) is frozen at construction: its parameters do not require
/// gradients, so `trainableParameters()` (what optimizers and gradient all-reduce take) leaves it
/// out, and it runs without recording autograd history.
public final class SETRMLA: Module {
    public struct Config: Codable, Equatable, Sendable {
        public var encoder = VisionTransformer.Config()
        public var classes = 1
        /// Channels of the MLA levels (256 in SETR).
        public var mlaChannels = 256
        /// Channels of each level's head (128 in SETR; four of them are concatenated).
        public var headChannels = 128
        /// Encoder blocks tapped (1-based, shallow to deep); nil: depth/4, depth/2, 3*depth/4, depth.
        public var taps: [Int]? = nil
        /// Weight of each auxiliary head's loss.
        public var auxWeight = 0.4
        /// Freeze the encoder (requires_grad false).
        public var freezeEncoder = true

        public init(encoder: VisionTransformer.Config = .init(), classes: Int = 1, mlaChannels: Int = 256, headChannels: Int = 128,
                    taps: [Int]? = nil, auxWeight: Double = 0.4, freezeEncoder: Bool = true) {
            self.encoder = encoder; self.classes = classes; self.mlaChannels = mlaChannels; self.headChannels = headChannels
            self.taps = taps; self.auxWeight = auxWeight; self.freezeEncoder = freezeEncoder
        }

        public var resolvedTaps: [Int] { taps ?? VisionTransformer.defaultTaps(depth: encoder.depth) }
    }

    public let config: Config
    public let taps: [Int]
    public let encoder: VisionTransformer
    public let lateral: ModuleList<Sequential>
    public let smooth: ModuleList<Sequential>
    public let heads: ModuleList<Sequential>
    public let cls: Conv2d
    public let aux: ModuleList<Conv2d>

    public init(_ config: Config = Config()) throws {
        let taps = config.resolvedTaps
        guard taps.count == 4, taps.allSatisfy({ (1...config.encoder.depth).contains($0) }) else {
            throw TorchError("SETR-MLA needs 4 taps in 1...\(config.encoder.depth), got \(taps)")
        }
        guard config.classes >= 1, config.mlaChannels >= 1, config.headChannels >= 1 else {
            throw TorchError("SETR-MLA classes and decoder channels must be positive")
        }
        self.config = config
        self.taps = taps
        encoder = try VisionTransformer(config.encoder)
        let d = config.encoder.hidden, m = config.mlaChannels, h = config.headChannels
        func cbr(_ i: Int, _ o: Int, _ k: Int) throws -> [Module] {
            [try Conv2d(i, o, kernelSize: k, padding: k / 2, bias: false), try BatchNorm2d(o), ReLU(inplace: true)]
        }
        lateral = ModuleList(try (0..<4).map { _ in Sequential(try cbr(d, m, 1)) })
        smooth = ModuleList(try (0..<4).map { _ in Sequential(try cbr(m, m, 3)) })
        heads = ModuleList(try (0..<4).map { _ in Sequential(try cbr(m, h, 3) + cbr(h, h, 3)) })
        cls = try Conv2d(4 * h, config.classes, kernelSize: 3, padding: 1)
        aux = ModuleList(try (0..<4).map { _ in try Conv2d(m, config.classes, kernelSize: 1, bias: false) })
        super.init()
        registerModule("encoder", encoder)
        registerModule("lateral", lateral)
        registerModule("smooth", smooth)
        registerModule("heads", heads)
        registerModule("cls", cls)
        registerModule("aux", aux)
        if config.freezeEncoder { encoder.requiresGrad(false) }
    }

    /// Whether no encoder parameter requires a gradient.
    public var encoderIsFrozen: Bool { !encoder.parameters().contains(where: \.requiresGrad) }

    /// The four MLA levels (B, mlaChannels, H/p, W/p), shallow to deep.
    public func mlaFeatures(_ x: Tensor) throws -> [Tensor] {
        let p = config.encoder.patchSize
        let run = { try self.encoder.forwardFeatures(x, taps: self.taps) }
        // A frozen encoder on an input that needs no gradient records no graph.
        let tokens = encoderIsFrozen && !x.requiresGrad ? try withNoGrad(run) : try run()
        let (b, gh, gw, dim) = (x.size(0), x.size(2) / p, x.size(3) / p, config.encoder.hidden)
        let maps = try tokens.map { t in
            try t.narrow(dim: 1, start: 1, length: gh * gw).transpose(1, 2).reshape([b, dim, gh, gw])
        }
        var lat = try zip(lateral, maps).map { try $0.0($0.1) }
        for i in stride(from: 2, through: 0, by: -1) { lat[i] = try lat[i] + lat[i + 1] }
        return try zip(smooth, lat).map { try $0.0($0.1) }
    }

    /// The main output (B, classes, H, W) and the four auxiliary outputs of the same shape.
    public func forwardWithAux(_ x: Tensor) throws -> (main: Tensor, aux: [Tensor]) {
        let size = [x.size(2), x.size(3)]
        let levels = try mlaFeatures(x)
        let up = try zip(heads, levels).map { try F.interpolate($0.0($0.1), scaleFactor: [4], mode: .bilinear, alignCorners: false) }
        let main = try F.interpolate(cls(Tensor.cat(up, dim: 1)), size: size, mode: .bilinear, alignCorners: false)
        let auxOut = try zip(aux, levels).map { try F.interpolate($0.0($0.1), size: size, mode: .bilinear, alignCorners: false) }
        return (main, auxOut)
    }

    /// The main output only (inference).
    public override func forward(_ x: Tensor) throws -> Tensor { try forwardWithAux(x).main }

    /// criterion(main) + auxWeight * sum of criterion(aux_i), SETR's training loss.
    public func loss(_ x: Tensor, target: Tensor, criterion: (Tensor, Tensor) throws -> Tensor) throws -> Tensor {
        let (main, auxOut) = try forwardWithAux(x)
        var total = try criterion(main, target)
        for a in auxOut { total = try total + criterion(a, target) * config.auxWeight }
        return total
    }

    /// Loads pretrained encoder weights (see `VisionTransformer.loadEncoderWeights(url:strict:)`);
    /// the encoder stays frozen.
    @discardableResult
    public func loadEncoderWeights(url: URL, strict: Bool = false) throws -> EncoderLoadReport {
        try encoder.loadEncoderWeights(url: url, strict: strict)
    }
}

/// Training adds the auxiliary heads' losses (weighted by `auxWeight`) to the main output's.
extension SETRMLA: MultiOutputModel {
    public func outputs(_ x: Tensor) throws -> [Tensor] {
        let (main, aux) = try forwardWithAux(x)
        return [main] + aux
    }

    public var outputWeights: [Double] {
        [1] + Array(repeating: config.auxWeight, count: config.taps?.count ?? 4)
    }
}
