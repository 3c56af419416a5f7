/// Voxel counts of one class in a prediction against a reference, and the overlap metrics
/// derived from them (nnU-Net's definitions: NaN when the class is absent from both).
public struct ConfusionCounts: Codable, Equatable, Sendable {
    public var tp = 0, fp = 0, fn = 0, tn = 0

    public init(tp: Int = 0, fp: Int = 0, fn: Int = 0, tn: Int = 0) {
        self.tp = tp; self.fp = fp; self.fn = fn; self.tn = tn
    }

    /// Counts for `label` in two label maps of the same size.
    public init(prediction: [Int32], reference: [Int32], label: Int32) {
        self.init(prediction: prediction.map { $0 == label }, reference: reference.map { $0 == label })
    }

    /// Counts of two masks of the same size; `voxels`: how many voxels count (the masks' size, less
    /// those left out, which must be false in both), for the true negatives.
    public init(prediction: [Bool], reference: [Bool], voxels: Int? = nil) {
        precondition(prediction.count == reference.count, "prediction and reference differ in size")
        for i in prediction.indices where prediction[i] || reference[i] {
            if prediction[i] && reference[i] { tp += 1 } else if prediction[i] { fp += 1 } else { fn += 1 }
        }
        tn = (voxels ?? prediction.count) - tp - fp - fn
    }

    public static func + (a: ConfusionCounts, b: ConfusionCounts) -> ConfusionCounts {
        ConfusionCounts(tp: a.tp + b.tp, fp: a.fp + b.fp, fn: a.fn + b.fn, tn: a.tn + b.tn)
    }

    public var nPred: Int { tp + fp }
    public var nRef: Int { tp + fn }

    private static func ratio(_ a: Int, _ b: Int) -> Double { b == 0 ? .nan : Double(a) / Double(b) }

    public var dice: Double { Self.ratio(2 * tp, 2 * tp + fp + fn) }
    public var iou: Double { Self.ratio(tp, tp + fp + fn) }
    public var accuracy: Double { Self.ratio(tp + tn, tp + fp + fn + tn) }
    public var sensitivity: Double { Self.ratio(tp, tp + fn) }
    public var specificity: Double { Self.ratio(tn, tn + fp) }
    public var precision: Double { Self.ratio(tp, tp + fp) }
}
