import ArgumentParser
import Foundation
import MedSegData
import MedSegDist
import MedSegModels
import MedSegTrain
import Torch

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Segment images with a trained run; masks keep the input's format and geometry.")

    @Option(name: .customLong("run"), help: "Run folder of `medseg train`, the experiment folder holding fold_N, or a model folder nnU-Net v2 trained (plans.json, dataset.json, fold_N/checkpoint_final.pth).") var runFolder: String?
    @Option(help: "A model file made by `medseg export` (its folds, checkpoint, post-processing and settings), instead of --run.") var model: String?
    @Option(parsing: .upToNextOption, help: "Folds to ensemble (RUN/fold_N, N or all), averaging their probabilities.") var folds: [String] = []
    @Option(help: "For a 3d_cascade_fullres run: the 3d_lowres experiment folder, predicted first with the same --folds.") var previousStage: String?
    @Option(help: "best, final, latest or a checkpoint file (default: best; final for a model folder nnU-Net trained, as nnU-Net predicts).") var checkpoint: String?
    @Option(help: "Folder of images (CASE_0000.ext per channel, or single files), of DICOM series folders (one case each), one DICOM series folder, or a DICOMweb study or series address (http://HOST:PORT/dicom-web/studies/UID[/series/UID]; fetched with WADO-RS, one case named by its series UID).")
    var input: String
    @Option(help: "DICOMweb: seconds to wait for each answer (requests failing for the network's sake are tried twice more).") var webTimeout: Double = 60
    @Option(help: "DICOM: the series (number or UID) to predict in folders holding several.") var series: String?
    @Option(help: "Output folder.") var out: String
    @Option(help: "nifti, dicom-seg (a DICOM Segmentation per DICOM series case: CASE.dcm, referencing the series; segments named from the model's dataset.json) or rtstruct (an RT Structure Set per series case: each label a ROI of its contours on every slice).")
    var outputFormat = OutputFormat.nifti
    @Option(help: "dicom-seg: segment labels and codes, as dcmqi's metadata JSON (see `medseg data convert --help`).") var segmentCodes: String?
    @Option(help: "dicom-seg: also send each case's SEG to this DICOMweb server (its root, e.g. http://HOST:8042/dicom-web) with STOW-RS, once it is written; a case the server refuses counts as failed.")
    var store: String?
    @Option(help: "postprocessing.json (from `medseg find-best`), or nnU-Net's postprocessing.pkl/.json, to apply to the predictions.") var postprocessing: String?
    @Flag(help: "Also write PNG overlays of 2D predictions.") var overlay = false
    @Flag(help: "Also write class probabilities (CASE_probabilities.safetensors), for `medseg ensemble`.") var saveProbabilities = false
    @Option(help: "float32 or float16: the type --save-probabilities writes (float16 halves the files).") var probabilitiesDtype = FloatChoice.float32
    @Option(help: "auto, float32 or float16: the type the sliding window adds logits up in (float16 halves its slab buffer, as nnU-Net v2; auto: float32 while that buffer stays within 1 GiB, else float16).") var accumulate = AccumulationChoice.auto
    @Flag(help: "Disable mirror test-time augmentation.") var noMirror = false
    @Option(help: "auto (cuda where available, else cpu), cpu, cuda or cuda:N.") var device = "auto"
    @Option(help: "fp32, or bf16/fp16 autocast for the network passes.") var precision = Precision.fp32
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?
    @Option(parsing: .unconditional, help: "Step between sliding windows, a fraction of the patch (default nnU-Net's 0.5, or the model file's; 1: no overlap, faster).")
    var stepSize: Double?
    @Option(parsing: .unconditional, help: "Windows per network call.") var windowBatch = 1
    @Option(parsing: .unconditional, help: "On a GPU: the MB its logits may take there (default: a quarter of the GPU's memory). A patch-deep slab of sums that fits stays there, and so does the export (resampling back, softmax, labels) when its slices fit beside it; else they run on the CPU.")
    var maxLogitsMb: Int?
    @Flag(help: "Skip cases whose prediction is already in --out (resume an interrupted prediction).") var continuePrediction = false
    @Option(parsing: .unconditional, help: "Processes on this node, each predicting its share of the cases (on GPU cuda:LOCAL_RANK).") var nprocPerNode: Int?
    @Option(parsing: .unconditional, help: "Nodes sharing the cases (with --node-rank).") var nnodes = 1
    @Option(parsing: .unconditional, help: "This node's index, 0..nnodes-1.") var nodeRank = 0

    static let launcherOptions: Set<String> = ["--nproc-per-node", "--nnodes", "--node-rank"]

    func validate() throws {
        try checkThreads(threads)
        guard (runFolder == nil) != (model == nil) else { throw ValidationError("give the trained model with --run RUN or --model MODEL.zip (one of them)") }
        if model != nil, !folds.isEmpty || previousStage != nil {
            throw ValidationError("--model files carry their folds; --folds and --previous-stage go with --run")
        }
        if let stepSize, let problem = SlidingWindow.stepProblem(stepSize) { throw ValidationError("--step-size \(problem)") }
        if let store {
            guard outputFormat.isDICOM else { throw ValidationError("--store sends DICOM results: give --output-format dicom-seg or rtstruct") }
            guard DICOMWebLocation.isWebAddress(store), URL(string: store)?.host != nil else {
                throw ValidationError("--store takes a DICOMweb server's root address (http://HOST:PORT/dicom-web), got '\(store)'")
            }
        }
        guard windowBatch >= 1 else { throw ValidationError("--window-batch must be at least 1, got \(windowBatch)") }
        if let maxLogitsMb, maxLogitsMb < 1 { throw ValidationError("--max-logits-mb must be at least 1, got \(maxLogitsMb)") }
        if let nprocPerNode, nprocPerNode < 1 { throw ValidationError("--nproc-per-node must be at least 1, got \(nprocPerNode)") }
        guard nnodes >= 1, (0..<nnodes).contains(nodeRank) else {
            throw ValidationError("--node-rank must be 0 to \(max(0, nnodes - 1)) for --nnodes \(nnodes), got \(nodeRank)")
        }
    }

    func run() throws {
        // Each process predicts every world-th case; no process needs another, so no rendezvous.
        let ownLauncher = nprocPerNode != nil || nnodes > 1
        let environment = try DistributedEnvironment.fromEnvironment(slurm: !ownLauncher)
        if environment == nil, ownLauncher {
            let args = SelfLaunch.arguments(removing: Self.launcherOptions)
            try SelfLaunch.ranks(.init(nprocPerNode: nprocPerNode ?? 1, nnodes: nnodes, nodeRank: nodeRank)) { _ in args }
            return
        }
        let rank = environment?.rank ?? 0, world = environment?.worldSize ?? 1
        if let cpus = threads ?? SLURMEnvironment.cpusPerTask(ProcessInfo.processInfo.environment) { Torch.threads = cpus }
        let dev = try Device.resolve(device, localRank: environment?.localRank ?? 0)
        // A model file is unpacked and predicts exactly as its run folders would.
        let archive = try model.map { try ModelArchive.open(URL(fileURLWithPath: $0)) }
        defer { archive?.remove() }
        let window = WindowSettings(stepSize: stepSize ?? archive?.manifest.step_size ?? WindowSettings.defaultStepSize, windowBatch: windowBatch,
                                                  logitsBudget: maxLogitsMb.map { $0 << 20 })
        let source = archive?.modelFolder ?? URL(fileURLWithPath: runFolder!)
        let (inference, used) = try archive.describingErrors { try TrainedModels.inference(run: source, folds: archive?.manifest.folds ?? folds,
                                                   checkpoint: archive?.manifest.checkpoint ?? checkpoint
                                                       ?? (NNUNetModelFolder.isModelFolder(source) ? "final" : "best"),
                                                   previousStage: previousStage.map { URL(fileURLWithPath: $0) },
                                                   mirror: !noMirror && (archive?.manifest.mirror ?? true), device: dev,
                                                   precision: precision, window: window) }
        let spec = inference.spec
        let post = try archive.describingErrors { try (postprocessing.map { URL(fileURLWithPath: $0) } ?? archive?.postprocessing).map { try Postprocessing.load($0) } }

        // A DICOMweb series is fetched into a folder of its own first, then predicted as a series folder.
        let staged = try DICOMWebLocation.isWebAddress(input) ? DICOMWebStaging.fetch(input, series: series, timeout: webTimeout) : nil
        defer { staged?.remove() }
        let inputURL = staged?.folder ?? URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: out)
        try InputFiles.refuseSameFolder(output: outURL, outputOption: "--out", input: inputURL, inputOption: "--input")
        let (groups, unreadable) = try Self.cases(in: inputURL, channels: inference.imageChannels, series: series)
        guard !groups.isEmpty || !unreadable.isEmpty else { throw ValidationError("\(input): no images found") }
        // Case folders that cannot be listed are reported with the others that fail, at the end.
        if rank == 0 { for (id, error) in unreadable { FileHandle.standardError.write(Data("Error: case \(id): \(error)\n".utf8)) } }
        // Every output is checked against every input before the first is written.
        var inputs = InputFiles()
        inputs.add(groups.flatMap { $0.1 + ($0.3?.files ?? []) }, as: "an input image")
        if outputFormat.isDICOM, let image = groups.first(where: { $0.3 == nil }) {
            throw ValidationError("--output-format \(outputFormat.rawValue) writes \(outputFormat == .rtstruct ? "RT Structure Sets" : "Segmentations") of DICOM series; case \(image.0) is an image file (\(image.1.first?.path ?? ""))")
        }
        let codes = try segmentCodes.map { try SegmentDescription.read(codes: URL(fileURLWithPath: $0)) } ?? [:]
        let labelNames = Self.labelNames(of: source)
        let outputs = groups.map { id, _, ending, _ in
            (mask: outURL.appendingPathComponent(id + (outputFormat.isDICOM ? ".dcm" : ending)), probabilities: ProbabilityFile.url(for: id, in: outURL),
             overlay: outURL.appendingPathComponent(id + "_overlay.png"))
        }
        for o in outputs {
            try inputs.refuseOverwriting(o.mask, option: "--out")
            if saveProbabilities { try inputs.refuseOverwriting(o.probabilities, option: "--out") }
            if overlay && spec.dims == 2 { try inputs.refuseOverwriting(o.overlay, option: "--out") }
        }
        try FileManager.default.createDirectory(at: outURL, withIntermediateDirectories: true)
        // This process's share, less what an earlier (interrupted) prediction finished.
        let mine = zip(groups, outputs).enumerated().filter { $0.offset % world == rank }.map(\.element)
        let todo = !continuePrediction ? mine : mine.filter { _, output in
            !FileManager.default.fileExists(atPath: output.mask.path)
                || (saveProbabilities && !FileManager.default.fileExists(atPath: output.probabilities.path))
        }
        let progress = ProgressBar(label: world > 1 ? "predict rank \(rank)" : "predict")
        // One case that cannot be predicted is reported and skipped; the others are written.
        var failed: [String] = rank == 0 ? unreadable.map(\.0) : []
        let stageTimings = ProcessInfo.processInfo.environment["MEDSEG_STAGE_TIMINGS"] == "1"
        for (i, ((id, files, _, dicom), output)) in todo.enumerated() {
            do {
                let began = Date()
                var (label, times) = try Self.staged(dicom, files) {
                    try inference.predict(CaseFiles(identifier: id, images: $0), probabilities: saveProbabilities ? output.probabilities : nil,
                                          probabilitiesDType: probabilitiesDtype.dtype, accumulationDType: accumulate.dtype)
                }
                let written = Date()
                let read = written.timeIntervalSince(began) - times.preprocess - times.network - times.export
                if let post { label = post.apply(to: label) }
                if outputFormat.isDICOM, let dicom {
                    // Segments (ROIs) for every label the model knows, so that each case's object numbers them alike.
                    let count = max(labelNames.keys.max() ?? 0, DICOMSegmentation.segmentCount(of: label), codes.keys.max() ?? 0)
                    if count == 0 || !label.voxels.contains(where: { $0 > 0 }) {
                        FileHandle.standardError.write(Data("warning: case \(id): nothing segmented; a DICOM \(outputFormat == .rtstruct ? "RT Structure Set needs a contour" : "SEG needs at least one frame"), none written\n".utf8))
                    } else {
                        if outputFormat == .rtstruct {
                            try RTStructureSet.write(labels: label, reference: dicom, rois: RTStructureSet.rois(count: count, names: labelNames), to: output.mask)
                        } else {
                            try DICOMSegmentation.write(labels: label, reference: dicom,
                                                        segments: SegmentDescription.segments(count: count, names: labelNames, codes: codes), to: output.mask)
                        }
                        if let store { try DICOMWebClient(timeout: webTimeout).store([output.mask], to: URL(string: store)!) }
                    }
                } else {
                    try ImageIO.write(label, to: output.mask)
                }
                if overlay && spec.dims == 2, let image = files.first {
                    try ImageIO.write(LabelOverlay.make(image: ImageIO.read(image), label: label), to: output.overlay)
                }
                if stageTimings {
                    // Peak resident memory so far at the end of each stage (network and export run interleaved).
                    for (stage, seconds, peak) in [("read", read, times.preprocessPeakMB), ("preprocess", times.preprocess, times.preprocessPeakMB),
                                                   ("network", times.network, times.predictionPeakMB), ("export", times.export, times.predictionPeakMB),
                                                   ("write", Date().timeIntervalSince(written), Benchmark.peakResidentMB())] {
                        let place = stage == "export" ? times.exportDevice.map { ", on \($0)" } ?? "" : ""
                        print(String(format: "case %@ stage %@: %.2f s, peak RSS %.0f MB", id, stage, max(0, seconds), peak) + place)
                    }
                }
            } catch {
                let text = archive.map { $0.describe(FileErrorText.readable(error) ?? error) } ?? String(describing: FileErrorText.readable(error) ?? error)
                FileHandle.standardError.write(Data("Error: case \(id): \(text)\n".utf8))
                failed.append(id)
            }
            progress.update(i + 1, todo.count)
        }
        progress.finish()
        let skipped = mine.count - todo.count
        let unreadableHere = rank == 0 ? unreadable.count : 0
        print("\(world > 1 ? "rank \(rank) of \(world): " : "")wrote \(todo.count - (failed.count - unreadableHere)) prediction(s) to \(outURL.path)"
              + (skipped > 0 ? ", \(skipped) already there" : "")
              + " (\(used.joined(separator: "; "))\(inference.predictors.count > 1 ? "; logits averaged" : ""))")
        if !failed.isEmpty {
            let total = todo.count + unreadableHere
            throw TrainingError("\(failed.count) of \(total) case(s) could not be predicted (each named above): \(failed.joined(separator: ", "))")
        }
    }

    /// Cases in a folder: nnU-Net channel files (CASE_0000.ext, CASE_0001.ext) grouped by case,
    /// otherwise every image on its own; a DICOM series folder (the input itself, or each folder
    /// in it) is one case named after its folder, predicted as NIfTI in the series' geometry.
    /// Series folders that cannot be read are returned apart, with their reason.
    static func cases(in folder: URL, channels: Int, series choice: String?) throws
        -> (cases: [(String, [URL], String, DICOMSeries?)], unreadable: [(String, Error)]) {
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".") }.sorted()
        func dicomCase(_ url: URL) throws -> (String, [URL], String, DICOMSeries?) {
            guard channels == 1 else {
                throw DataError(file: url, "a DICOM series is one channel, and this model takes \(channels); give nnU-Net channel files (CASE_0000, CASE_0001, ...) instead")
            }
            return (url.lastPathComponent, [], ".nii.gz", try DICOM.select(in: url, series: choice))
        }
        if DICOM.isSeriesFolder(folder) { return ([try dicomCase(folder)], []) }
        var out: [(String, [URL], String, DICOMSeries?)] = [], unreadable: [(String, Error)] = []
        for name in names {
            let url = folder.appendingPathComponent(name)
            var isFolder: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
                do {
                    if try !DICOM.series(in: url).isEmpty { out.append(try dicomCase(url)) }
                } catch {
                    unreadable.append((name, error))
                }
                continue
            }
            let ending = ImageIO.fileEnding(of: url)
            guard ImageIO.readableEndings.contains(ending) else { continue }
            let stem = ImageIO.stem(of: url)
            if let (id, channel) = ChannelFileName.parse(stem) {
                guard channel == 0 else { continue }
                out.append((id, ChannelFileName.files(id, channels: channels, ending: ending, in: folder), ending, nil))
            } else {
                out.append((stem, [url], ending, nil))
            }
        }
        return (out, unreadable)
    }

    /// Label names of the model's dataset.json: a model folder's own, or the data set its runs
    /// (the folder itself or its fold_N) trained on.
    static func labelNames(of source: URL) -> [Int: String] {
        let folds = ((try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []).filter { $0.hasPrefix("fold_") }.sorted()
        for run in [source] + folds.map({ source.appendingPathComponent($0) }) {
            for case let url? in [run.appendingPathComponent("dataset.json"), RunFolder(run).savedDataset?.appendingPathComponent("dataset.json")]
            where FileManager.default.fileExists(atPath: url.path) {
                if let description = try? DatasetDescription.load(url) { return SegmentDescription.names(of: description) }
            }
        }
        return [:]
    }

    /// What a prediction is written as.
    enum OutputFormat: String, ExpressibleByArgument {
        case nifti, dicomSeg = "dicom-seg", rtstruct

        /// A DICOM object per series case, referencing it.
        var isDICOM: Bool { self != .nifti }
    }

    /// Runs `predict` on the case's files, or on a DICOM series written as a temporary NIfTI (the
    /// prediction is then resampled to, and written in, the series' own geometry).
    static func staged<T>(_ dicom: DICOMSeries?, _ files: [URL], _ predict: ([URL]) throws -> T) throws -> T {
        guard let dicom else { return try predict(files) }
        let staging = FileManager.default.temporaryDirectory.appendingPathComponent("medseg-dicom-\(UUID().uuidString)_0000.nii.gz")
        defer { try? FileManager.default.removeItem(at: staging) }
        try ImageIO.write(try DICOM.read(dicom), to: staging)
        return try predict([staging])
    }
}

extension Optional where Wrapped == ModelArchive.Opened {
    /// Runs `body`; an error from a model file's unpacked entries names the model file instead.
    func describingErrors<T>(_ body: () throws -> T) throws -> T {
        guard let archive = self else { return try body() }
        do { return try body() } catch { throw TrainingError(archive.describe(error)) }
    }
}
