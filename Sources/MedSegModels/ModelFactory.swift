import Torch

/// Builds a network by name for a given number of input channels and output channels.
public enum ModelFactory {

    public struct Spec: Codable, Equatable, Sendable {
        public var name: String
        public var dims: Int
        public var inChannels: Int
        public var outChannels: Int
        public var features: Int
        public var depth: Int
        /// Extra outputs at lower resolutions, trained with weighted losses (unetpp, plainunet).
        public var deepSupervision: Bool
        /// A planned network's stages (plainunet, resencunet, unetpp; from plans.json); nil for the
        /// regular one of `depth` stages.
        public var topology: Topology?
        /// setr_mla: whether its encoder is frozen; nil (older checkpoints) is frozen.
        public var freezeEncoder: Bool?
        /// mednext: its size (nil: B) and kernel size (nil: 3).
        public var modelSize: ModelSize?
        public var kernelSize: Int?
        /// primus: the input size its position embedding is made for (the patch size).
        public var inputShape: [Int]?

        public init(name: String, dims: Int, inChannels: Int, outChannels: Int, features: Int, depth: Int, deepSupervision: Bool = false,
                    topology: Topology? = nil) {
            self.name = name; self.dims = dims; self.inChannels = inChannels; self.outChannels = outChannels
            self.features = features; self.depth = depth; self.deepSupervision = deepSupervision; self.topology = topology
        }
    }

    /// Per stage features, kernel sizes and strides of a planned plain conv U-Net.
    public struct Topology: Codable, Equatable, Sendable {
        public var featuresPerStage: [Int]
        public var kernelSizes: [[Int]]
        public var strides: [[Int]]
        /// resencunet: residual blocks per encoder stage and convolutions per decoder stage (nil:
        /// nnU-Net's 1, 3, 4, 6, 6, ... and 1).
        public var blocksPerStage: [Int]?
        public var convsPerDecoderStage: Int?

        public init(featuresPerStage: [Int], kernelSizes: [[Int]], strides: [[Int]], blocksPerStage: [Int]? = nil,
                    convsPerDecoderStage: Int? = nil) {
            self.featuresPerStage = featuresPerStage; self.kernelSizes = kernelSizes; self.strides = strides
            self.blocksPerStage = blocksPerStage; self.convsPerDecoderStage = convsPerDecoderStage
        }
    }

    static func plainConfig(_ spec: Spec) -> PlainConvUNet.Config {
        guard let t = spec.topology else {
            return .regular(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels,
                            stages: spec.depth, baseFeatures: spec.features, deepSupervision: spec.deepSupervision)
        }
        return PlainConvUNet.Config(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels,
                                    featuresPerStage: t.featuresPerStage, kernelSizes: t.kernelSizes, strides: t.strides,
                                    deepSupervision: spec.deepSupervision)
    }

    /// nnU-Net's residual encoder U-Net of a planned topology (or the regular one of `depth` stages).
    static func residualConfig(_ spec: Spec) -> ResidualEncoderUNet.Config {
        let plain = plainConfig(spec)
        return ResidualEncoderUNet.Config(dims: plain.dims, inChannels: plain.inChannels, classes: plain.classes,
                                          featuresPerStage: plain.featuresPerStage, kernelSizes: plain.kernelSizes, strides: plain.strides,
                                          blocksPerStage: spec.topology?.blocksPerStage ?? ResidualEncoderUNet.Config.nnUNetBlocks(stages: plain.stages),
                                          nConvPerStageDecoder: spec.topology?.convsPerDecoderStage ?? 1, deepSupervision: spec.deepSupervision)
    }

    /// UNet++ on a planned topology (its widths, kernels and strides), or the regular one of `depth` levels.
    static func unetppConfig(_ spec: Spec) -> UNetPlusPlus.Config {
        guard let t = spec.topology else {
            return .init(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels, baseFeatures: spec.features,
                         depth: spec.depth, deepSupervision: spec.deepSupervision)
        }
        return .init(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels, featuresPerStage: t.featuresPerStage,
                     kernelSizes: t.kernelSizes, strides: t.strides, deepSupervision: spec.deepSupervision)
    }

    public static func make(_ spec: Spec) throws -> Module {
        switch spec.name {
        case "unet":
            return try UNet(.init(inChannels: spec.inChannels, classes: spec.outChannels, features: spec.features,
                                  depth: spec.depth, dims: spec.dims))
        case "plainunet":
            return try PlainConvUNet(plainConfig(spec))
        case "resencunet":
            return try ResidualEncoderUNet(residualConfig(spec))
        case "unetpp":
            return try UNetPlusPlus(unetppConfig(spec))
        case "ultralight_vmunet":
            // Widths f, 2f, 3f, 4f, 6f, 8f: the published [8, 16, 24, 32, 48, 64] for f = 8. Logits out
            // (the published sigmoid is folded into the loss), so training and prediction treat it
            // like every other binary model; the weights are the same.
            guard spec.dims == 2 else { throw TorchError("ultralight_vmunet is a 2D model, got dims \(spec.dims)") }
            let f = spec.features
            return try UltraLightVMUNet(.init(inChannels: spec.inChannels, classes: spec.outChannels,
                                              channels: [f, 2 * f, 3 * f, 4 * f, 6 * f, 8 * f], sigmoidOutput: false))
        case "setr_mla":
            guard spec.dims == 2 else { throw TorchError("setr_mla is a 2D model, got dims \(spec.dims)") }
            // features = ViT width (768 for ViT-B/16), depth = its blocks (12); heads of 64 channels.
            let encoder = VisionTransformer.Config(inChannels: spec.inChannels, hidden: spec.features, depth: spec.depth,
                                                   heads: max(1, spec.features / 64), mlpDim: 4 * spec.features)
            return try SETRMLA(.init(encoder: encoder, classes: spec.outChannels, freezeEncoder: spec.freezeEncoder ?? true))
        case "segresnet":
            return try SegResNet(.monai(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels, initFilters: spec.features,
                                        levels: spec.depth))
        case "mednext":
            return try MedNeXt(.init(size: spec.modelSize ?? .B, dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels,
                                     kernelSize: spec.kernelSize ?? 3, deepSupervision: spec.deepSupervision))
        case "swinunetr", "swinunetr_v2":
            return try SwinUNETR(.init(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels, featureSize: spec.features,
                                       useV2: spec.name == "swinunetr_v2"))
        case "primus", "primus_v2", "primus_v3":
            guard spec.dims == 3, let shape = spec.inputShape else {
                throw TorchError("\(spec.name) is a 3D network made for one input size (the patch size), got dims \(spec.dims)"
                                 + (spec.inputShape == nil ? " and no input size" : ""))
            }
            let embedding: Primus.Config.Embedding = spec.name == "primus" ? .patch : spec.name == "primus_v2" ? .residual : .residualWithSkips
            return try Primus(.published(spec.modelSize ?? .B, inChannels: spec.inChannels, classes: spec.outChannels, inputShape: shape,
                                         embedding: embedding))
        default:
            throw TorchError("unknown model '\(spec.name)'; available: \(ModelName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    /// Per spatial axis, the factor every size of the input must be divisible by.
    public static func sizeDivisors(_ spec: Spec) -> [Int] {
        switch spec.name {
        case "setr_mla": return Array(repeating: 16, count: spec.dims)
        case "swinunetr", "swinunetr_v2": return Array(repeating: SwinUNETR.Config.divisor, count: spec.dims)
        case "mednext": return Array(repeating: 16, count: spec.dims)
        case "primus", "primus_v2", "primus_v3": return Array(repeating: 8, count: spec.dims)
        case "ultralight_vmunet": return Array(repeating: UltraLightVMUNet.sizeDivisor, count: spec.dims)
        case "plainunet" where spec.topology != nil, "resencunet" where spec.topology != nil: return plainConfig(spec).divisor
        case "unetpp": return unetppConfig(spec).divisor
        default: return Array(repeating: 1 << (spec.depth - 1), count: spec.dims)
        }
    }
}
