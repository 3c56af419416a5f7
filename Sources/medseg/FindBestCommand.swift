import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

/// `medseg find-best --dataset DIR EXP [EXP ...]`: compares trained configurations (and their
/// ensembles) on cross-validation and chooses the post-processing.
struct FindBestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "find-best",
        abstract: "Score configurations and their ensembles on cross-validation, choose post-processing, write the inference commands.")

    @Option(help: "Data set folder the experiments were trained on.") var dataset: String
    @Argument(help: "Experiment folders (the --out of `medseg train --config NAME`, holding fold_N).") var experiments: [String]
    @Option(parsing: .upToNextOption, help: "Folds to pool (default: 0 1 2 3 4).") var folds: [Int] = [0, 1, 2, 3, 4]
    @Option(help: "Where postprocessing.json and inference_instructions.txt go (default: the first experiment's parent folder).") var out: String?
    @Option(parsing: .unconditional, help: "Tolerance in mm of the normalized surface Dice (NSD) in the summaries.") var nsdTolerance = EvaluationSummary.defaultNSDTolerance

    func validate() throws { try checkNSDTolerance(nsdTolerance) }

    func run() throws {
        guard !experiments.isEmpty else { throw ValidationError("name at least one experiment folder") }
        let data = try RawDataset(URL(fileURLWithPath: dataset))
        let exps = experiments.map { URL(fileURLWithPath: $0) }
        let root = out.map { URL(fileURLWithPath: $0) } ?? exps[0].deletingLastPathComponent()
        let outcome = try ModelSelection(dataset: data, folds: folds, nsdTolerance: nsdTolerance).run(experiments: exps, root: root)
        print("cross-validation (folds \(folds.map(String.init).joined(separator: ", "))), foreground mean Dice and NSD at \(nsdTolerance) mm:")
        for c in outcome.candidates.sorted(by: { $0.dice > $1.dice }) {
            print(String(format: "  %-50@ %.4f  NSD %@  (%@)", c.name as NSString, c.dice,
                         c.summary.foreground_mean.NSD.map { String(format: "%.4f", $0) } ?? "-", c.folder.path))
        }
        print("best: \(outcome.best.name)")
        print("post-processing:")
        for line in outcome.postprocessingReport { print("  " + line) }
        print("wrote \(root.appendingPathComponent(Postprocessing.fileName).path) and \(root.appendingPathComponent("inference_instructions.txt").path):")
        print(outcome.instructions, terminator: "")
    }
}
