import MedSegData

/// What overlap metrics are computed over: each foreground label, or each region (a set of label
/// values, as nnU-Net v2 evaluates region-based data sets), with the ignore label's voxels left
/// out of every count (nnU-Net's compute_metrics masks them in both maps).
public struct EvaluationClasses: Equatable, Sendable {
    /// Each class's label values (one for a label, several for a region).
    public var groups: [[Int]]
    public var usesRegions: Bool
    public var ignoreLabel: Int?

    public init(labels: [Int], ignoreLabel: Int? = nil) {
        groups = labels.map { [$0] }; usesRegions = false; self.ignoreLabel = ignoreLabel
    }

    public init(regions: [[Int]], ignoreLabel: Int? = nil) {
        groups = regions; usesRegions = true; self.ignoreLabel = ignoreLabel
    }

    /// A data set's foreground labels or regions and its ignore label.
    public init(_ d: DatasetDescription) {
        if d.hasRegions { self.init(regions: d.regions, ignoreLabel: d.ignoreLabel) } else {
            self.init(labels: d.foregroundLabels, ignoreLabel: d.ignoreLabel)
        }
    }

    /// summary.json keys: "1" for a label, nnU-Net's "(1, 2, 3)" (Python's tuple text) for a region.
    public var keys: [String] {
        groups.map { g in usesRegions ? (g.count == 1 ? "(\(g[0]),)" : "(" + g.map(String.init).joined(separator: ", ") + ")") : String(g[0]) }
    }

    /// Voxels of class `index` in a label map, false where `reference` holds the ignore label.
    public func mask(_ map: [Int32], _ index: Int, reference: [Int32]) -> [Bool] {
        let members = Set(groups[index].map(Int32.init))
        guard let ignore = ignoreLabel.map(Int32.init) else { return map.map { members.contains($0) } }
        return map.indices.map { reference[$0] != ignore && members.contains(map[$0]) }
    }

    /// Counts of every class in a prediction against a reference of the same size.
    public func counts(prediction: [Int32], reference: [Int32]) -> [ConfusionCounts] {
        precondition(prediction.count == reference.count, "prediction and reference differ in size")
        let ignore = ignoreLabel.map(Int32.init)
        let kept = ignore.map { i in reference.reduce(0) { $0 + ($1 == i ? 0 : 1) } } ?? reference.count
        return groups.indices.map { k in
            ConfusionCounts(prediction: mask(prediction, k, reference: reference), reference: mask(reference, k, reference: reference), voxels: kept)
        }
    }
}
