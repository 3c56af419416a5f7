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
    @Option(help: "auto (cuda where available, else cpu), cpu, cuda or cuda:N.") var device = "auto"
    @Option(help: "fp32, or bf16/fp16 autocast for the network passes.") var precision = Precision.fp32
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?

    func validate() throws { try checkThreads(threads) }

    func run() throws {
        if let threads { Torch.threads = threads }
        let dev = try Device.resolve(device)
        let (inference, used) = try TrainedModels.inference(run: URL(fileURLWithPath: runFolder), folds: folds, checkpoint: checkpoint,
                                                   previousStage: previousStage.map { URL(fileURLWithPath: $0) }, mirror: !noMirror, device: dev, precision: precision)
        let spec = inference.spec
        let post = try postprocessing.map { try Postprocessing.load(URL(fileURLWithPath: $0)) }

        let inputURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: out)
        try InputFiles.refuseSameFolder(output: outURL, outputOption: "--out", input: inputURL, inputOption: "--input")
        let groups = try Self.cases(in: inputURL, channels: inference.imageChannels)
        guard !groups.isEmpty else { throw ValidationError("\(input): no images found") }
        // Every output is checked against every input before the first is written.
        var inputs = InputFiles()
        inputs.add(groups.flatMap(\.1), as: "an input image")
        let outputs = groups.map { id, _, ending in
            (mask: outURL.appendingPathComponent(id + ending), probabilities: ProbabilityFile.url(for: id, in: outURL),
             overlay: outURL.appendingPathComponent(id + "_overlay.png"))
        }
        for o in outputs {
            try inputs.refuseOverwriting(o.mask, option: "--out")
            if saveProbabilities { try inputs.refuseOverwriting(o.probabilities, option: "--out") }
            if overlay && spec.dims == 2 { try inputs.refuseOverwriting(o.overlay, option: "--out") }
        }
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        let progress = ProgressLine(label: "predict")
        for (i, ((id, files, _), output)) in zip(groups, outputs).enumerated() {
            var (label, probabilities) = try inference.predict(CaseFiles(identifier: id, images: files))
            if let post { label = post.apply(to: label) }
            try ImageIO.write(label, to: output.mask)
            if saveProbabilities {
                try ProbabilityFile.write(probabilities, regionsClassOrder: spec.regionsClassOrder, to: output.probabilities)
            }
            if overlay && spec.dims == 2 {
                try ImageIO.write(LabelOverlay.make(image: ImageIO.read(files[0]), label: label), to: output.overlay)
            }
            progress.update(i + 1, groups.count)
        }
        progress.finish()
        print("wrote \(groups.count) prediction(s) to \(outURL.path) (\(used.joined(separator: "; "))\(inference.predictors.count > 1 ? "; probabilities averaged" : ""))")
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
