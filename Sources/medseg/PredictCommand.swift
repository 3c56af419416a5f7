import ArgumentParser
import Foundation
import MedSegData
import MedSegModels
import MedSegTrain
import Torch

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Segment images with a trained run; masks keep the input's format and geometry.")

    @Option(name: .customLong("run"), help: "Run folder of `medseg train` (with --folds: the folder holding fold_N).") var runFolder: String
    @Option(parsing: .upToNextOption, help: "Folds to ensemble (RUN/fold_N, N or all), averaging their probabilities.") var folds: [String] = []
    @Option(help: "For a 3d_cascade_fullres run: the 3d_lowres experiment folder, predicted first with the same --folds.") var previousStage: String?
    @Option(help: "best, final, latest or a checkpoint file.") var checkpoint = "best"
    @Option(help: "Folder of images (CASE_0000.ext per channel, or single files).") var input: String
    @Option(help: "Output folder.") var out: String
    @Option(help: "postprocessing.json (from `medseg find-best`) to apply to the predictions.") var postprocessing: String?
    @Flag(help: "Also write PNG overlays of 2D predictions.") var overlay = false
    @Flag(help: "Also write class probabilities (CASE_probabilities.safetensors), for `medseg ensemble`.") var saveProbabilities = false
    @Flag(help: "Disable mirror test-time augmentation.") var noMirror = false
    @Option(help: "cpu, cuda or cuda:N.") var device = "cpu"
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?

    func run() throws {
        if let threads { Torch.threads = threads }
        let dev = try Device(parsing: device)
        let (inference, used) = try Self.inference(run: URL(fileURLWithPath: runFolder), folds: folds, checkpoint: checkpoint,
                                                   previousStage: previousStage.map { URL(fileURLWithPath: $0) }, mirror: !noMirror, device: dev)
        let spec = inference.spec
        let post = try postprocessing.map { try Postprocessing.load(URL(fileURLWithPath: $0)) }

        let inputURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        let groups = try Self.cases(in: inputURL, channels: inference.imageChannels)
        guard !groups.isEmpty else { throw ValidationError("\(input): no images found") }
        let progress = ProgressLine(label: "predict")
        for (i, (id, files, ending)) in groups.enumerated() {
            var (label, probabilities) = try inference.predict(CaseFiles(identifier: id, images: files))
            if let post { label = post.apply(to: label) }
            try ImageIO.write(label, to: outURL.appendingPathComponent(id + ending))
            if saveProbabilities { try ProbabilityFile.write(probabilities, to: ProbabilityFile.url(for: id, in: outURL)) }
            if overlay && spec.dims == 2 {
                try ImageIO.write(Overlay.make(image: ImageIO.read(files[0]), label: label), to: outURL.appendingPathComponent(id + "_overlay.png"))
            }
            progress.update(i + 1, groups.count)
        }
        progress.finish()
        print("wrote \(groups.count) prediction(s) to \(outURL.path) (\(used.joined(separator: "; "))\(inference.predictors.count > 1 ? "; probabilities averaged" : ""))")
    }

    /// The networks of a run (or of its folds) with their preprocessing, and for a cascade stage
    /// the previous stage's inference in front; plus a line per checkpoint used.
    static func inference(run: URL, folds: [String], checkpoint: String, previousStage: URL?, mirror: Bool,
                          device dev: Device) throws -> (CaseInference, [String]) {
        let modelFolders = folds.isEmpty ? [run] : folds.map { run.appendingPathComponent("fold_\($0)") }
        var predictors: [Predictor] = []
        var used: [String] = []
        for folder in modelFolders {
            let file = ["best", "final", "latest"].contains(checkpoint)
                ? TrainingRun.checkpointURL(folder, "checkpoint_\(checkpoint)") : URL(fileURLWithPath: checkpoint)
            guard FileManager.default.fileExists(atPath: file.path) else { throw ValidationError("\(file.path): no such checkpoint") }
            let loaded = try Checkpoint.load(file)
            let model = try ModelFactory.make(loaded.state.model.network)
            try model.loadState(loaded.model)
            try model.to(device: dev)
            predictors.append(Predictor(model: model, spec: loaded.state.model, mirror: mirror, device: dev))
            used.append("\(folds.isEmpty ? "" : folder.lastPathComponent + "/")\(file.lastPathComponent), epoch \(loaded.state.epoch)")
        }
        let spec = predictors[0].spec
        // A planned network sees new images preprocessed as its training cases were.
        let setup = try spec.configuration.map { try PlannedSetup.load(runFolder: modelFolders[0], configuration: $0) }
        var previous: CascadeInput.PreviousStage? = nil
        if let stage = setup?.plan.previous_stage {
            guard let previousStage else {
                throw ValidationError("\(run.path) is a cascade stage trained on \(stage) segmentations: give that experiment with --previous-stage EXP")
            }
            let (first, firstUsed) = try inference(run: previousStage, folds: folds, checkpoint: checkpoint, previousStage: nil, mirror: mirror, device: dev)
            previous = { files in try first.predict(files).label }
            used = firstUsed.map { "\(stage) \($0)" } + used
        }
        return (try CaseInference(predictors: predictors, preprocessor: setup?.preprocessor, previousStage: previous), used)
    }

    /// Cases in a folder: nnU-Net channel files (CASE_0000.ext, CASE_0001.ext) grouped by case,
    /// otherwise every image on its own.
    static func cases(in folder: URL, channels: Int) throws -> [(String, [URL], String)] {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }.sorted()
        var out: [(String, [URL], String)] = []
        for name in names {
            let url = folder.appendingPathComponent(name)
            let ending = ImageIO.fileEnding(of: url)
            guard ImageIO.readableEndings.contains(ending) else { continue }
            let stem = ImageIO.stem(of: url)
            if stem.count > 5, stem.dropLast(4).hasSuffix("_"), let channel = Int(stem.suffix(4)) {
                guard channel == 0 else { continue }
                let id = String(stem.dropLast(5))
                out.append((id, (0..<channels).map { folder.appendingPathComponent(String(format: "%@_%04d%@", id, $0, ending)) }, ending))
            } else {
                out.append((stem, [url], ending))
            }
        }
        return out
    }
}

/// A colour overlay of a 2D label map on its image.
enum Overlay {
    static let colors: [(Float, Float, Float)] = [(255, 0, 0), (0, 200, 0), (0, 90, 255), (255, 200, 0), (200, 0, 255), (0, 220, 220)]

    static func make(image: MedicalImage, label: MedicalImage) -> MedicalImage {
        let n = label.voxelCount
        let gray = image.channels == 1 ? image.voxels : Array(image.voxels[0..<n])
        let lo = gray.min() ?? 0, hi = gray.max() ?? 1
        let scale = hi > lo ? 255 / (hi - lo) : 1
        var rgb = [Float](repeating: 0, count: 3 * n)
        for i in 0..<n {
            let g = (gray[i] - lo) * scale
            let l = Int(label.voxels[i])
            for c in 0..<3 {
                var v = g
                if l > 0 {
                    let color = colors[(l - 1) % colors.count]
                    v = 0.55 * g + 0.45 * [color.0, color.1, color.2][c]
                }
                rgb[c * n + i] = v.rounded()
            }
        }
        return MedicalImage(size: label.size, channels: 3, voxels: rgb, pixelType: .rgb8, geometry: label.geometry)
    }
}
