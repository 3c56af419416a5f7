import Foundation
import MedSegData
import Torch

/// nnU-Net v2's label layout of a dataset.json: plain labels (softmax, one channel per label) or
/// regions (labels given as lists of label values, one sigmoid channel per region, painted back in
/// `regions_class_order`), optionally with an ignore label (`"ignore": N`, the highest value: its
/// voxels are left out of the loss).
///
/// Use: `target(from:)` turns a label map [B, 1, spatial...] into what `loss(_:_:)` takes;
/// `loss(_:_:)` is nnU-Net's DC_and_CE_loss (labels) or DC_and_BCE_loss (regions), masked where the
/// ignore label is set; `labels(fromLogits:)` turns network logits into a label map.
public struct LabelTargets: Codable, Equatable, Sendable {
    /// Foreground regions (each a set of label values), in dataset.json order; labels: one region per
    /// foreground label.
    public var regions: [[Int]]
    /// Whether the network has one sigmoid output per region (true) or softmax over labels.
    public var usesRegions: Bool
    /// The label painted for each region (regions, same order).
    public var regionsClassOrder: [Int]
    public var ignoreLabel: Int?
    /// Label values, background first (labels: the network's classes).
    public var labelValues: [Int]
    public var batchDice: Bool
    public var smooth: Double = 1e-5

    public init(regions: [[Int]], usesRegions: Bool, regionsClassOrder: [Int], ignoreLabel: Int?, labelValues: [Int], batchDice: Bool = true) {
        self.regions = regions; self.usesRegions = usesRegions; self.regionsClassOrder = regionsClassOrder
        self.ignoreLabel = ignoreLabel; self.labelValues = labelValues; self.batchDice = batchDice
    }

    /// Network output channels: regions, or labels (background included, ignore label excluded).
    public var outputChannels: Int { usesRegions ? regions.count : labelValues.count }

    /// The layout of a data set's labels (plain labels, binary when `binary`: one sigmoid output).
    public init(_ d: DatasetDescription, batchDice: Bool = true) {
        let regions = d.regions
        self.init(regions: regions, usesRegions: d.hasRegions, regionsClassOrder: d.regions_class_order ?? regions.map { $0.max()! },
                  ignoreLabel: d.ignoreLabel, labelValues: d.labelValues.filter { $0 != d.ignoreLabel }, batchDice: batchDice)
    }

    /// From dataset.json's text (checked as `DatasetDescription.decode` does).
    public static func parse(datasetJSON data: Data, batchDice: Bool = true) throws -> LabelTargets {
        LabelTargets(try DatasetDescription.decode(data), batchDice: batchDice)
    }

    /// Whether the plain softmax-over-labels losses do (no regions, no ignore label).
    public var isPlain: Bool { !usesRegions && ignoreLabel == nil }

    /// What `loss` takes from a label map [B, 1, spatial...]: labels: the map itself (int64);
    /// regions: [B, R(+1), spatial...] float, channel r = (label in region r), plus a last channel
    /// marking ignored voxels when there is an ignore label.
    public func target(from labels: Tensor) throws -> Tensor {
        guard usesRegions else { return try labels.long() }
        var channels: [Tensor] = []
        for region in regions {
            var m = try labels.eq(Double(region[0])).float()
            for v in region.dropFirst() { m = try m + labels.eq(Double(v)).float() }
            channels.append(try m.clamp(max: 1))
        }
        if let ignoreLabel { channels.append(try labels.eq(Double(ignoreLabel)).float()) }
        return try Tensor.cat(channels, dim: 1)
    }

    /// Soft Dice (nnU-Net's MemoryEfficientSoftDiceLoss, as 1 - mean Dice) with `mask` removing voxels
    /// from the prediction and target sums.
    private func dice(_ probs: Tensor, _ target: Tensor, mask: Tensor?) throws -> Tensor {
        let spatial = Array(2..<probs.rank)
        let axes = batchDice ? [0] + spatial : spatial
        let p = try mask.map { try probs * $0 } ?? probs
        let t = try mask.map { try target * $0 } ?? target
        let intersection = try (p * t).sum(dims: axes)
        let denominator = try (p.sum(dims: axes) + t.sum(dims: axes) + smooth).clamp(min: 1e-8)
        return try 1 - ((intersection * 2 + smooth) / denominator).mean()
    }

    /// nnU-Net's loss for logits [B, C, spatial...] and `target(from:)`'s tensor: labels: cross
    /// entropy (mean over non-ignored voxels) + Dice over the foreground classes; regions: BCE with
    /// logits (mean over non-ignored voxels) + Dice over the regions (sigmoid).
    public func loss(_ logits: Tensor, _ target: Tensor) throws -> Tensor {
        if usesRegions {
            let r = regions.count
            let regionTarget = try target.slice(dim: 1, start: 0, end: r)
            let probs = try logits.sigmoid()
            guard ignoreLabel != nil else {
                return try F.binaryCrossEntropyWithLogits(logits, target: regionTarget) + dice(probs, regionTarget, mask: nil)
            }
            let mask = try 1 - target.slice(dim: 1, start: r, end: r + 1)
            let bce = try F.binaryCrossEntropyWithLogits(logits, target: regionTarget, reduction: .none)
            // As nnU-Net: the BCE summed over regions and non-ignored voxels, divided by the non-ignored voxels.
            let ce = try (bce * mask).sum() / mask.sum().clamp(min: 1e-8)
            return try ce + dice(probs, regionTarget, mask: mask)
        }
        let labels = target.rank == logits.rank ? try target.squeeze(dim: 1) : target
        let classes = logits.size(1)
        let probs = try logits.softmax(dim: 1)
        var mask: Tensor?
        var clean = labels
        if let ignoreLabel {
            let m = try labels.ne(Double(ignoreLabel))
            mask = try m.float().unsqueeze(1)
            clean = try labels.maskedFill(labels.eq(Double(ignoreLabel)), 0)
        }
        let ce = try F.crossEntropy(logits, target: labels, ignoreIndex: ignoreLabel ?? -100)
        var oneHot = try F.oneHot(clean, numClasses: classes)
        oneHot = try oneHot.permute([0, oneHot.rank - 1] + Array(1..<(oneHot.rank - 1))).float()
        let d = try dice(probs.slice(dim: 1, start: 1), oneHot.slice(dim: 1, start: 1), mask: mask)
        return try ce + d
    }

    /// A label map [B, 1, spatial...] (int64) from logits: argmax of the classes (mapped to the label
    /// values), or for regions sigmoid > 0.5 painted in `regionsClassOrder`.
    public func labels(fromLogits logits: Tensor) throws -> Tensor {
        guard usesRegions else {
            let index = try logits.argmax(dim: 1, keepDim: true)
            guard labelValues != Array(0..<labelValues.count) else { return index }
            var out = try Tensor.zeros(like: index)
            for (i, v) in labelValues.enumerated() where i > 0 { out = try out + index.eq(Double(i)).long() * Double(v) }
            return out
        }
        return try Self.paint(logits.sigmoid(), regionsClassOrder: regionsClassOrder)
    }

    /// Regions: sigmoid probabilities [B, R, spatial...] to labels [B, 1, spatial...] (> 0.5, later
    /// regions of `regionsClassOrder` painted over earlier ones, as nnU-Net).
    public static func paint(_ probs: Tensor, regionsClassOrder: [Int]) throws -> Tensor {
        var out = try Tensor.zeros(like: probs.slice(dim: 1, start: 0, end: 1)).long()
        for (i, c) in regionsClassOrder.enumerated() {
            let hit = try probs.slice(dim: 1, start: i, end: i + 1).gt(0.5)
            out = try out.maskedFill(hit, Double(c))
        }
        return out
    }
}

/// As a training loss: the label map is turned into the loss's target first (after deep
/// supervision has resized it).
extension LabelTargets: SegmentationLoss {
    public func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor {
        let map = labels.rank == logits.rank ? labels : try labels.unsqueeze(1)
        return try loss(logits, target(from: map))
    }
}
