import Foundation
import MedSegData
import Torch

/// nnU-Net-style post-processing of predicted label maps, chosen on cross-validation results and
/// stored as `postprocessing.json` next to them, so that inference applies the same steps.
/// `find-best` chooses with nnU-Net v2's components (`connectivity` full: skimage's label joins
/// diagonal neighbours; every component of the largest size kept where sizes tie). Files without
/// `connectivity` (written before) keep their face-connected components (scipy.ndimage.label's
/// default, nnU-Net v1), the first largest kept.
public struct Postprocessing: Codable, Equatable, Sendable {
    /// First keep only the largest connected component of all foreground labels together.
    public var foreground_as_one: Bool
    /// Then, for each of these labels, keep only its own largest component.
    public var keep_largest_component: [Int]
    /// Then nnU-Net v2's steps, as its postprocessing.pkl/json name them: in order, the voxels of
    /// each set of labels keep only their largest component.
    public var keep_largest_of: [[Int]]?
    /// Which voxels touch: face (absent: scipy's default, nnU-Net v1), or full (skimage's default,
    /// nnU-Net v2's, which also keeps every largest component where sizes tie).
    public var connectivity: ConnectedComponents.Connectivity?

    public static let fileName = "postprocessing.json"

    public init(foreground_as_one: Bool = false, keep_largest_component: [Int] = [], keep_largest_of: [[Int]]? = nil,
                connectivity: ConnectedComponents.Connectivity? = nil) {
        self.foreground_as_one = foreground_as_one
        self.keep_largest_component = keep_largest_component
        self.keep_largest_of = keep_largest_of
        self.connectivity = connectivity
    }

    /// Nothing to do.
    public var isIdentity: Bool { !foreground_as_one && keep_largest_component.isEmpty && (keep_largest_of ?? []).isEmpty }

    /// The label map with removed components set to background (0). Voxel values are labels
    /// stored as Float; size, geometry and pixel type are kept.
    public func apply(to image: MedicalImage) -> MedicalImage {
        precondition(image.channels == 1, "post-processing applies to single-channel label maps")
        var result = image
        let labels = image.voxels.map { Int($0.rounded()) }
        let connectivity = connectivity ?? .face
        let ties = connectivity == .full
        if foreground_as_one {
            Self.keepLargest(of: labels.map { $0 != 0 }, in: &result, connectivity: connectivity, keepingTies: ties)
        }
        for label in keep_largest_component {
            // Labels as they are now: removing foreground voxels above only ever makes them background.
            Self.keepLargest(of: result.voxels.map { Int($0.rounded()) == label }, in: &result, connectivity: connectivity, keepingTies: ties)
        }
        for set in keep_largest_of ?? [] {
            let members = Set(set)
            Self.keepLargest(of: result.voxels.map { members.contains(Int($0.rounded())) }, in: &result, connectivity: connectivity, keepingTies: ties)
        }
        return result
    }

    /// Clears the voxels of `mask` outside its largest component.
    private static func keepLargest(of mask: [Bool], in image: inout MedicalImage, connectivity: ConnectedComponents.Connectivity,
                                    keepingTies: Bool) {
        let kept = ConnectedComponents.largestComponentMask(mask, size: image.size, connectivity: connectivity, keepingTies: keepingTies)
        for i in mask.indices where mask[i] && !kept[i] {
            image.voxels[i] = 0
        }
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// The largest label a post-processing file may name (labels are stored as uint16 at most).
    public static let largestLabel = 65_535
    /// The most steps a file may hold: one per label or region is what nnU-Net and find-best write.
    public static let maxSteps = 1_000

    public static func load(_ url: URL) throws -> Postprocessing {
        let data: Data
        do { data = try RegularFile.contents(url, limit: 64 << 20) } catch {
            throw ConfigError("\(url.path): cannot read the post-processing file (\(error))")
        }
        // nnU-Net v2's own files: the pickle its predictor reads, or the JSON written beside it.
        if url.pathExtension.lowercased() == "pkl" { return try NNUNetPostprocessingFile.postprocessing(pickle: data, source: url.path) }
        if let nnunet = try NNUNetPostprocessingFile.postprocessing(json: data, source: url.path) { return nnunet }
        let loaded: Postprocessing
        do { loaded = try JSONFile.decode(Postprocessing.self, from: data) } catch let error as DataError {
            throw ConfigError("\(url.path): not a valid post-processing file: \(error.problem)")
        }
        guard loaded.keep_largest_component.count + (loaded.keep_largest_of ?? []).count <= maxSteps else {
            throw ConfigError("\(url.path): more than \(maxSteps) steps; one per label or region is what find-best writes")
        }
        if let bad = (loaded.keep_largest_component + (loaded.keep_largest_of ?? []).flatMap { $0 }).first(where: { $0 <= 0 || $0 > largestLabel }) {
            throw ConfigError("\(url.path): lists label \(bad) to keep the largest component of, which is not a foreground label")
        }
        return loaded
    }

    /// nnU-Net v2's rule (`determine_postprocessing`), on cross-validation predictions:
    /// 1. keep `foreground_as_one` when it raises the mean foreground Dice strictly and lowers no
    ///    label's mean Dice; later steps start from the predictions it produced;
    /// 2. with more than one foreground label, add each label whose mean Dice rises strictly when
    ///    only its largest component is kept (with one label this would repeat step 1).
    /// Dice means are those of `EvaluationSummary` (labels absent from both prediction and
    /// reference are left out of the case mean), so the numbers match `summary.json`.
    public static func choose(cases: [(prediction: MedicalImage, reference: MedicalImage)],
                              labels: [Int]) throws -> (Postprocessing, report: [String]) {
        guard !cases.isEmpty else { throw EvaluationError(description: "post-processing: no cases to choose on") }
        let foreground = labels.filter { $0 != 0 }
        guard !foreground.isEmpty else {
            throw EvaluationError(description: "post-processing: no foreground labels among \(labels)")
        }
        let references = cases.map(\.reference)
        func summary(_ predictions: [MedicalImage], _ labels: [Int]) throws -> EvaluationSummary {
            try EvaluationSummary.evaluate(
                cases: zip(predictions, references).enumerated().map { index, pair in
                    (prediction: pair.0, reference: pair.1, predictionFile: "case \(index)", referenceFile: "case \(index)")
                },
                classes: EvaluationClasses(labels: labels), surfaceDistance: false)
        }

        var chosen = Postprocessing(connectivity: .full)
        var report: [String] = []
        var predictions = cases.map(\.prediction)

        let before = try summary(predictions, foreground)
        let merged = predictions.map { Postprocessing(foreground_as_one: true, connectivity: .full).apply(to: $0) }
        let after = try summary(merged, foreground)
        let comparison = "mean foreground Dice \(format(before.foreground_mean.Dice)) -> \(format(after.foreground_mean.Dice))"
        let worse = foreground.filter { label in
            isGreater(before.mean[String(label)]?.Dice, than: after.mean[String(label)]?.Dice)
        }
        if !isGreater(after.foreground_mean.Dice, than: before.foreground_mean.Dice) {
            report.append("largest foreground component: \(comparison): not kept (no strict gain)")
        } else if !worse.isEmpty {
            let details = worse.map { "label \($0) \(format(before.mean[String($0)]?.Dice)) -> \(format(after.mean[String($0)]?.Dice))" }
            report.append("largest foreground component: \(comparison), but Dice fell for \(details.joined(separator: ", ")): not kept")
        } else {
            report.append("largest foreground component: \(comparison): kept")
            chosen.foreground_as_one = true
            predictions = merged
        }

        guard foreground.count > 1 else {
            report.append("one foreground label: its largest component is the largest foreground component, checked above")
            return (chosen, report)
        }
        // Keeping one label's largest component only turns that label's voxels into background,
        // so it changes no other label's Dice: each label is judged on its own.
        for label in foreground {
            let key = String(label)
            let pruned = predictions.map { Postprocessing(keep_largest_component: [label], connectivity: .full).apply(to: $0) }
            let diceBefore = try summary(predictions, [label]).mean[key]?.Dice
            let diceAfter = try summary(pruned, [label]).mean[key]?.Dice
            let comparison = "label \(label) largest component: mean Dice \(format(diceBefore)) -> \(format(diceAfter))"
            if isGreater(diceAfter, than: diceBefore) {
                report.append("\(comparison): kept")
                chosen.keep_largest_component.append(label)
                predictions = pruned
            } else {
                report.append("\(comparison): not kept (no strict gain)")
            }
        }
        return (chosen, report)
    }

    /// Undefined means (no case defines the label) compare false, as NaN does in nnU-Net.
    private static func isGreater(_ a: Double?, than b: Double?) -> Bool {
        guard let a, let b else { return false }
        return a > b
    }

    private static func format(_ value: Double?) -> String {
        value.map { String(format: "%.5f", $0) } ?? "undefined"
    }
}
