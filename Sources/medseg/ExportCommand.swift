import ArgumentParser
import Foundation
import MedSegTrain
import Torch

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Pack a trained run into one model file (folds, checkpoint, plans, dataset.json, post-processing, inference settings) for `medseg predict --model`, or write its network as ONNX (OUTPUT ending .onnx).")

    @Argument(help: "Run folder of `medseg train`, the experiment folder holding fold_N, or a model folder nnU-Net trained.") var runFolder: String
    @Argument(help: "The model file to write (.zip), or the network as ONNX (.onnx: every network --model offers; the run's inference settings as metadata).") var output: String
    @Option(parsing: .upToNextOption, help: "Folds to pack (default: every fold that has the checkpoint); for .onnx, the folds whose logits one file averages.") var folds: [String] = []
    @Option(help: "best, final or latest.") var checkpoint = "final"
    @Option(help: "postprocessing.json (from `medseg find-best`), or nnU-Net's postprocessing.pkl/.json, that predictions from the file apply.") var postprocessing: String?
    @Flag(help: "Predict without mirror test-time augmentation.") var noMirror = false
    @Option(parsing: .unconditional, help: "Step between sliding windows, a fraction of the patch.") var stepSize = WindowSettings.defaultStepSize
    @Flag(help: "ONNX only: float16 weights, input and output (half the file).") var half = false

    func validate() throws {
        guard CheckpointName(named: checkpoint) != nil else { throw ValidationError("--checkpoint must be best, final or latest, got '\(checkpoint)'") }
        if let problem = SlidingWindow.stepProblem(stepSize) { throw ValidationError("--step-size \(problem)") }
        if half && URL(fileURLWithPath: output).pathExtension.lowercased() != "onnx" {
            throw ValidationError("--half writes float16 ONNX: give an OUTPUT ending .onnx")
        }
    }

    func run() throws {
        let destination = URL(fileURLWithPath: output)
        if destination.pathExtension.lowercased() == "onnx" { return try exportONNX(to: destination) }
        let manifest = try ModelArchive.export(run: URL(fileURLWithPath: runFolder), folds: folds, checkpoint: CheckpointName(named: checkpoint)!,
                                               postprocessing: postprocessing.map { URL(fileURLWithPath: $0) }, mirror: !noMirror,
                                               stepSize: stepSize, version: MedSegVersion.string, to: destination)
        let size = ((try? FileManager.default.attributesOfItem(atPath: destination.path))?[.size] as? Int) ?? 0
        let what = manifest.folds.isEmpty ? "the run" : "folds \(manifest.folds.joined(separator: ", "))"
        print(String(format: "wrote %@ (%.1f MB): %@, checkpoint %@%@%@", destination.path, Double(size) / 1_048_576, what, manifest.checkpoint,
                     manifest.configuration.map { ", configuration \($0)" } ?? "", manifest.postprocessing ? ", post-processing" : ""))
        print("predict with: medseg predict --model \(destination.path) --input INPUT_FOLDER --out OUTPUT_FOLDER")
    }

    /// One run's network as ONNX, or its folds' (`--folds`) in one file that averages their
    /// logits as predict does (each fold alone: one export per fold), written atomically.
    private func exportONNX(to destination: URL) throws {
        let (inference, used) = try TrainedModels.inference(run: URL(fileURLWithPath: runFolder), folds: folds, checkpoint: checkpoint,
                                                            previousStage: nil, mirror: !noMirror, device: .cpu,
                                                            window: WindowSettings(stepSize: stepSize), stageAlone: true)
        guard inference.predictors.count == 1 || !folds.isEmpty else {
            throw ValidationError("\(runFolder) holds \(inference.predictors.count) folds: give the ones to average in one file with --folds (e.g. --folds 0 1 2 3 4), or one fold per file")
        }
        // The preprocessing, window and labels the network predicts with go into the file's metadata.
        var metadata = ONNXMetadata(inference, version: MedSegVersion.string)
        if inference.predictors.count > 1 { metadata.entries.append(("folds_averaged", "\(inference.predictors.count)")) }
        // Networks whose graph depends on the input size (SwinUNETR) are written for the patch they predict with.
        let bytes = try ONNXModel.export(inference.predictors.map(\.model), metadata: metadata, half: half,
                                         inputSize: inference.predictors[0].spec.patchSize)
        try AtomicFile.write(bytes, to: destination)
        print(String(format: "wrote %@ (%.1f MB, ONNX opset %d, %@): %@; input 'image' [batch, %d, spatial...], output 'logits'", destination.path,
                     Double(bytes.count) / 1_048_576, ONNXModel.opset, half ? "float16" : "float32", used.joined(separator: ", "),
                     inference.predictors[0].spec.inChannels))
    }
}
