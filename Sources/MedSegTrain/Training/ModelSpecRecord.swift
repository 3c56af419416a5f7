import MedSegData

/// What network a checkpoint holds, so `predict` can rebuild it without the run's config.
public struct ModelSpecRecord: Codable, Equatable, Sendable {
    public var name: String
    public var dims: Int
    public var inChannels: Int
    public var outChannels: Int
    public var features: Int
    public var depth: Int
    public var patchSize: [Int]
    public var normalization: String
    /// Foreground intensity statistics per channel (CT normalization).
    public var intensityStatistics: [IntensityStatistics]?
    public var labels: [Int]
    /// Binary (one sigmoid output) or multi-class (softmax).
    public var binary: Bool
}
