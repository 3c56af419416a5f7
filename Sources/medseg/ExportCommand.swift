import ArgumentParser
import Foundation
import MedSegTrain

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Pack a trained run into one model file (folds, checkpoint, plans, dataset.json, post-processing, inference settings) for `medseg predict --model`.")

    @Argument(help: "Run folder of `medseg train`, the experiment folder holding fold_N, or a model folder nnU-Net trained.") var runFolder: String
    @Argument(help: "The model file to write (.zip).") var output: String
    @Option(parsing: .upToNextOption, help: "Folds to pack (default: every fold that has the checkpoint).") var folds: [String] = []
    @Option(help: "best, final or latest.") var checkpoint = "final"
    @Option(help: "postprocessing.json (from `medseg find-best`), or nnU-Net's postprocessing.pkl/.json, that predictions from the file apply.") var postprocessing: String?
    @Flag(help: "Predict without mirror test-time augmentation.") var noMirror = false
    @Option(parsing: .unconditional, help: "Step between sliding windows, a fraction of the patch.") var stepSize = WindowSettings.defaultStepSize

    func validate() throws {
        guard CheckpointName(named: checkpoint) != nil else { throw ValidationError("--checkpoint must be best, final or latest, got '\(checkpoint)'") }
        if let problem = SlidingWindow.stepProblem(stepSize) { throw ValidationError("--step-size \(problem)") }
    }

    func run() throws {
        let destination = URL(fileURLWithPath: output)
        let manifest = try ModelArchive.export(run: URL(fileURLWithPath: runFolder), folds: folds, checkpoint: CheckpointName(named: checkpoint)!,
                                               postprocessing: postprocessing.map { URL(fileURLWithPath: $0) }, mirror: !noMirror,
                                               stepSize: stepSize, version: MedSegVersion.string, to: destination)
        let size = ((try? FileManager.default.attributesOfItem(atPath: destination.path))?[.size] as? Int) ?? 0
        let what = manifest.folds.isEmpty ? "the run" : "folds \(manifest.folds.joined(separator: ", "))"
        print(String(format: "wrote %@ (%.1f MB): %@, checkpoint %@%@%@", destination.path, Double(size) / 1_048_576, what, manifest.checkpoint,
                     manifest.configuration.map { ", configuration \($0)" } ?? "", manifest.postprocessing ? ", post-processing" : ""))
        print("predict with: medseg predict --model \(destination.path) --input INPUT_FOLDER --out OUTPUT_FOLDER")
    }
}
