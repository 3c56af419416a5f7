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
    /// The ignore label and regions of the data set, when it has either (nil: plain labels).
    public var labelTargets: LabelTargets? = nil

    public var dims: Int { network.dims }
    public var depth: Int { network.depth }
    public var inChannels: Int { network.inChannels }
    public var outChannels: Int { network.outChannels }
    /// Foreground classes the network segments (its one sigmoid output, or softmax minus
    /// background; for regions, the labels they paint).
    public var foregroundClasses: Int {
        if let order = regionsClassOrder { return order.max() ?? 1 }
        return binary ? 1 : outChannels - 1
    }

    /// The label each sigmoid output paints, for a region-based network.
    public var regionsClassOrder: [Int]? { labelTargets?.usesRegions == true ? labelTargets!.regionsClassOrder : nil }

    /// Whether the outputs are independent sigmoids (binary or regions), not a softmax.
    public var sigmoidOutputs: Bool { binary || regionsClassOrder != nil }

    /// What validation measures: each label the network predicts, or each region.
    public var evaluationClasses: EvaluationClasses {
        if let t = labelTargets, t.usesRegions { return EvaluationClasses(regions: t.regions, ignoreLabel: t.ignoreLabel) }
        return EvaluationClasses(labels: Array(1...max(1, foregroundClasses)), ignoreLabel: labelTargets?.ignoreLabel)
    }
}
