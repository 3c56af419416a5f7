import MedSegData
import MedSegModels

/// What a checkpoint holds, so `predict` can rebuild and feed the network without the run's
/// config: the network, the patch it was trained on, the intensity normalization and the labels.
public struct ModelSpecRecord: Codable, Equatable, Sendable {
    public var network: ModelFactory.Spec
    public var patchSize: [Int]
    public var normalization: String
    /// Foreground intensity statistics per channel (CT normalization).
    public var intensityStatistics: [IntensityStatistics]?
    public var labels: [Int]
    /// Binary (one sigmoid output) or multi-class (softmax).
    public var binary: Bool
    /// The plans.json configuration the network was trained on (its preprocessing then applies
    /// to new images); nil for training on raw images.
    public var configuration: String?

    public var dims: Int { network.dims }
    public var depth: Int { network.depth }
    public var inChannels: Int { network.inChannels }
    public var outChannels: Int { network.outChannels }
    /// Foreground classes the network segments (its one sigmoid output, or softmax minus background).
    public var foregroundClasses: Int { binary ? 1 : outChannels - 1 }
}
