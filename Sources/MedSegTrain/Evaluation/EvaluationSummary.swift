import Foundation
import MedSegData
import Torch

/// Metrics of one label in one case, or their means. Undefined values (a label absent from both
/// prediction and reference) are nil and written as JSON null.
public struct LabelMetrics: Codable, Equatable, Sendable {
    public var Dice: Double?
    public var IoU: Double?
    public var Accuracy: Double?
    public var Sensitivity: Double?
    public var Specificity: Double?
    public var HD95: Double?
    /// Normalized surface Dice at the summary's `nsd_tolerance_mm`.
    public var NSD: Double?
    public var TP: Double
    public var FP: Double
    public var FN: Double
    public var TN: Double
    public var n_pred: Double
    public var n_ref: Double

    init(counts c: ConfusionCounts, hd95: Double?, nsd: Double? = nil) {
        func defined(_ v: Double) -> Double? { v.isFinite ? v : nil }
        Dice = defined(c.dice); IoU = defined(c.iou); Accuracy = defined(c.accuracy)
        Sensitivity = defined(c.sensitivity); Specificity = defined(c.specificity); HD95 = hd95.flatMap(defined); NSD = nsd.flatMap(defined)
        TP = Double(c.tp); FP = Double(c.fp); FN = Double(c.fn); TN = Double(c.tn)
        n_pred = Double(c.nPred); n_ref = Double(c.nRef)
    }

    /// Mean of each field over `items`, skipping undefined values (numpy's nanmean).
    static func mean(_ items: [LabelMetrics]) -> LabelMetrics {
        func m(_ key: KeyPath<LabelMetrics, Double?>) -> Double? {
            let v = items.compactMap { $0[keyPath: key] }
            return v.isEmpty ? nil : v.reduce(0, +) / Double(v.count)
        }
        func n(_ key: KeyPath<LabelMetrics, Double>) -> Double {
            items.isEmpty ? 0 : items.map { $0[keyPath: key] }.reduce(0, +) / Double(items.count)
        }
        var r = LabelMetrics(counts: ConfusionCounts(), hd95: nil)
        r.Dice = m(\.Dice); r.IoU = m(\.IoU); r.Accuracy = m(\.Accuracy); r.Sensitivity = m(\.Sensitivity)
        r.Specificity = m(\.Specificity); r.HD95 = m(\.HD95); r.NSD = m(\.NSD)
        r.TP = n(\.TP); r.FP = n(\.FP); r.FN = n(\.FN); r.TN = n(\.TN); r.n_pred = n(\.n_pred); r.n_ref = n(\.n_ref)
        return r
    }
}

public struct EvaluationError: Error, CustomStringConvertible {
    public let description: String
}

/// One evaluated case.
public struct CaseEvaluation: Codable, Equatable, Sendable {
    public var prediction_file: String
    public var reference_file: String
    /// Keyed by label value as a string ("1", "2").
    public var metrics: [String: LabelMetrics]
}

/// nnU-Net-style `summary.json`: per-case metrics, per-label means and the foreground mean.
public struct EvaluationSummary: Codable, Equatable, Sendable {
    public var metric_per_case: [CaseEvaluation]
    public var mean: [String: LabelMetrics]
    public var foreground_mean: LabelMetrics
    /// The tolerance (mm) of every NSD in the summary.
    public var nsd_tolerance_mm: Double?

    /// nnU-Net users' common surface Dice tolerance when none is given.
    public static let defaultNSDTolerance = 1.0

    /// A warning when `reference` holds far more labels than `prediction` (more than twice as many
    /// non-zero values, and more than 32): it looks like an instance map, not a class map.
    public static func instanceMapWarning(prediction: MedicalImage, reference: MedicalImage, referenceFile: String) -> String? {
        let refLabels = Set(reference.voxels.map { Int($0.rounded()) }).subtracting([0])
        let predLabels = Set(prediction.voxels.map { Int($0.rounded()) }).subtracting([0])
        guard refLabels.count > 32, refLabels.count > 2 * predLabels.count else { return nil }
        return "warning: \(referenceFile): the reference holds \(refLabels.count) labels, the prediction \(predLabels.count): "
            + "looks like an instance map (each value one object), not class labels; convert it to classes (e.g. foreground = value > 0) to evaluate"
    }

    /// Reads and evaluates prediction and reference files (the summary names them by file name);
    /// `classes` nil: every non-zero value found in either. Instance-map references are reported to `warn`.
    public static func evaluate(files: [(prediction: URL, reference: URL)], classes: EvaluationClasses?, surfaceDistance: Bool = true,
                                nsdTolerance: Double = defaultNSDTolerance, warn: (String) -> Void = { _ in }) throws -> EvaluationSummary {
        var cases: [(prediction: MedicalImage, reference: MedicalImage, predictionFile: String, referenceFile: String)] = []
        var found = Set<Int>()
        for (p, r) in files {
            let prediction = try ImageIO.read(p), reference = try ImageIO.read(r)
            try LabelValues.check(prediction, file: p)
            try LabelValues.check(reference, file: r)
            if classes == nil { for v in Set(reference.voxels).union(prediction.voxels) where v > 0 { found.insert(Int(v.rounded())) } }
            if let warning = instanceMapWarning(prediction: prediction, reference: reference, referenceFile: r.path) { warn(warning) }
            cases.append((prediction, reference, p.lastPathComponent, r.lastPathComponent))
        }
        return try evaluate(cases: cases, classes: classes ?? EvaluationClasses(labels: found.sorted()), surfaceDistance: surfaceDistance,
                            nsdTolerance: nsdTolerance)
    }

    /// Evaluates label maps (prediction, reference) for every label or region of `classes`.
    public static func evaluate(cases: [(prediction: MedicalImage, reference: MedicalImage, predictionFile: String, referenceFile: String)],
                                classes: EvaluationClasses, surfaceDistance: Bool = true,
                                nsdTolerance: Double = defaultNSDTolerance) throws -> EvaluationSummary {
        var perCase: [CaseEvaluation] = []
        let keys = classes.keys
        for c in cases {
            guard c.prediction.size == c.reference.size else {
                throw EvaluationError(description: "\(c.predictionFile): prediction size \(c.prediction.size) differs from reference \(c.referenceFile) size \(c.reference.size)")
            }
            let pred = c.prediction.voxels.map { Int32($0.rounded()) }, ref = c.reference.voxels.map { Int32($0.rounded()) }
            var metrics: [String: LabelMetrics] = [:]
            for (k, counts) in classes.counts(prediction: pred, reference: ref).enumerated() {
                // One pair of distance transforms gives both HD95 and the surface Dice.
                let d = surfaceDistance && counts.nPred > 0 && counts.nRef > 0
                    ? SurfaceDistance.distances(prediction: classes.mask(pred, k, reference: ref), reference: classes.mask(ref, k, reference: ref),
                                                size: c.reference.size, spacing: c.reference.geometry.spacing)
                    : nil
                let nsd = !surfaceDistance ? nil : d.map { SurfaceDistance.surfaceDice($0, tolerance: nsdTolerance) }
                    ?? (counts.nPred > 0 || counts.nRef > 0 ? 0 : nil)
                metrics[keys[k]] = LabelMetrics(counts: counts, hd95: d.map(SurfaceDistance.hd95), nsd: nsd)
            }
            perCase.append(CaseEvaluation(prediction_file: c.predictionFile, reference_file: c.referenceFile, metrics: metrics))
        }
        var mean: [String: LabelMetrics] = [:]
        for key in keys {
            mean[key] = LabelMetrics.mean(perCase.compactMap { $0.metrics[key] })
        }
        return EvaluationSummary(metric_per_case: perCase, mean: mean, foreground_mean: LabelMetrics.mean(keys.map { mean[$0]! }),
                                 nsd_tolerance_mm: surfaceDistance ? nsdTolerance : nil)
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// A plain-text table of the per-label means.
    public func table(labelNames: [Int: String] = [:]) -> String {
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "   -  " }
        var lines = ["label            Dice    IoU     Sens    Spec    HD95    NSD" + (nsd_tolerance_mm.map { String(format: "@%gmm", $0) } ?? "")]
        let keys = mean.keys.sorted { (Int($0) ?? Int.max, $0) < (Int($1) ?? Int.max, $1) }
        for k in keys {
            let m = mean[k]!
            let name = (Int(k).flatMap { labelNames[$0] }.map { "\(k) \($0)" } ?? k).padding(toLength: 14, withPad: " ", startingAt: 0)
            lines.append("\(name)  \(f(m.Dice))  \(f(m.IoU))  \(f(m.Sensitivity))  \(f(m.Specificity))  \(f(m.HD95))  \(f(m.NSD))")
        }
        let fg = foreground_mean
        lines.append("foreground mean \(f(fg.Dice))  \(f(fg.IoU))  \(f(fg.Sensitivity))  \(f(fg.Specificity))  \(f(fg.HD95))  \(f(fg.NSD))")
        return lines.joined(separator: "\n")
    }
}
