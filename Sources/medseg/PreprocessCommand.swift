import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

/// `medseg preprocess DIR --plans plans.json --config NAME`: crop, resample and normalize every
/// training case as the plan says, into DIR/preprocessed/NAME; finished cases are skipped.
struct PreprocessCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "preprocess",
        abstract: "Crop, resample and normalize the training cases for a planned configuration (re-running skips finished cases).")

    @Argument(help: "Data set folder.") var folder: String
    @Option(help: "plans.json (default: DIR/plans.json).") var plans: String?
    @Option(help: "Configuration of the plans to prepare.") var config = "3d_fullres"
    @Option(help: "Threads.") var workers = 2

    func run() throws {
        let root = URL(fileURLWithPath: folder)
        let dataset = try RawDataset(root)
        let planURL = plans.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent(ExperimentPlans.fileName)
        let all = try ExperimentPlans.load(planURL)
        guard let plan = all.configurations[config] else {
            throw ValidationError("\(planURL.path) has no configuration '\(config)'; it has \(all.configurations.keys.sorted().joined(separator: ", "))")
        }
        let fingerprint = try DatasetFingerprint.load(root.appendingPathComponent(DatasetFingerprint.fileName))
        guard plan.spacing.count == fingerprint.medianSpacing.count else {
            throw ValidationError("configuration '\(config)' plans \(plan.spacing.count)D patches for \(fingerprint.medianSpacing.count)D images; "
                                  + "slice-wise preprocessing of volumes is not supported yet")
        }
        let schemes: [IntensityNormalization] = plan.normalization_schemes.map { $0 == "CTNormalization" ? .ct : .zscore }
        let preprocessor = Preprocessor(targetSpacing: plan.spacing, normalization: schemes, fingerprint: fingerprint)
        let out = root.appendingPathComponent("preprocessed").appendingPathComponent(config)
        let progress = ProgressLine(label: "preprocess")
        let summary = try preprocessor.run(dataset: dataset, out: out, workers: workers) { progress.update($0, $1) }
        progress.finish()
        print("\(summary.processed.count) case(s) preprocessed, \(summary.skipped.count) already up to date, in \(out.path)")
    }
}
