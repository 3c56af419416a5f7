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
    @Option(help: "plans.json, MedSeg's or nnU-Net's own (default: DIR/plans.json).") var plans: String?
    @Option(help: "Configuration of the plans to prepare.") var config = "3d_fullres"
    @Option(help: "Threads.") var workers = 2

    func run() throws {
        let root = URL(fileURLWithPath: folder)
        let dataset = try RawDataset(root)
        let planURL = plans.map { URL(fileURLWithPath: $0) } ?? root.appendingPathComponent(ExperimentPlans.fileName)
        let setup = try PlannedSetup.load(plans: planURL, configuration: config,
                                          fingerprint: root.appendingPathComponent(DatasetFingerprint.fileName))
        let preprocessor = setup.preprocessor
        let out = setup.preprocessedFolder(dataset: root)
        let progress = ProgressBar(label: "preprocess")
        let summary = try preprocessor.run(dataset: dataset, out: out, workers: workers) { progress.update($0, $1) }
        progress.finish()
        print("\(summary.processed.count) case(s) preprocessed, \(summary.skipped.count) already up to date, in \(out.path)")
    }
}
