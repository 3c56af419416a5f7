import Torch

/// Builds a network by name for a given number of input channels and output channels.
public enum ModelFactory {
    public static let names = ["unet", "unetpp", "plainunet", "setr_mla"]

    public struct Spec: Codable, Equatable, Sendable {
        public var name: String
        public var dims: Int
        public var inChannels: Int
        public var outChannels: Int
        public var features: Int
        public var depth: Int
        /// Extra outputs at lower resolutions, trained with weighted losses (unetpp, plainunet).
        public var deepSupervision: Bool

        public init(name: String, dims: Int, inChannels: Int, outChannels: Int, features: Int, depth: Int, deepSupervision: Bool = false) {
            self.name = name; self.dims = dims; self.inChannels = inChannels; self.outChannels = outChannels
            self.features = features; self.depth = depth; self.deepSupervision = deepSupervision
        }
    }

    public static func make(_ spec: Spec) throws -> Module {
        switch spec.name {
        case "unet":
            return try UNet(.init(inChannels: spec.inChannels, classes: spec.outChannels, features: spec.features,
                                  depth: spec.depth, dims: spec.dims))
        case "plainunet":
            return try PlainConvUNet(.regular(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels,
                                              stages: spec.depth, baseFeatures: spec.features, deepSupervision: spec.deepSupervision))
        case "unetpp":
            return try UNetPlusPlus(.init(dims: spec.dims, inChannels: spec.inChannels, classes: spec.outChannels,
                                          baseFeatures: spec.features, depth: spec.depth, deepSupervision: spec.deepSupervision))
        case "setr_mla":
            guard spec.dims == 2 else { throw TorchError("setr_mla is a 2D model, got dims \(spec.dims)") }
            return try SETRMLA(.init(encoder: .init(inChannels: spec.inChannels), classes: spec.outChannels))
        default:
            throw TorchError("unknown model '\(spec.name)'; available: \(names.joined(separator: ", "))")
        }
    }

    /// The factor every spatial size of the input must be divisible by.
    public static func sizeDivisor(_ spec: Spec) -> Int { spec.name == "setr_mla" ? 16 : 1 << (spec.depth - 1) }
}
