import Foundation
import MedSegData
import Torch

/// Inference of whole raw cases with one network or an ensemble (the folds of a cross-validation):
/// the input prepared as in training (a plan's crop, normalization and resampling, or the raw
/// image normalized), the networks' logits averaged where they were computed, brought back to the
/// raw image's grid (resampled to the cropped shape, linear by default: the plans'
/// `resampling_fn_probabilities_kwargs`), then softmax (or sigmoids) and placed in the full
/// image, background outside the crop. This is nnU-Net v2's order of steps.
public struct CaseInference {
    public let predictors: [Predictor]
    /// The plan's preprocessing, or nil for networks trained on raw images.
    public let preprocessor: Preprocessor?
    /// The cascade's previous stage, whose segmentation is part of the input.
    public let previousStage: CascadeInput.PreviousStage?
    /// The configuration whose segmentation a cascade stage's networks take as input (one-hot
    /// channels after the image's), also where they were loaded without it (`stageAlone`).
    public let previousStageConfiguration: String?

    public init(predictors: [Predictor], preprocessor: Preprocessor?, previousStage: CascadeInput.PreviousStage? = nil,
                previousStageConfiguration: String? = nil) throws {
        guard let first = predictors.first else { throw TrainingError("inference needs at least one network") }
        for p in predictors.dropFirst() where p.spec.outChannels != first.spec.outChannels || p.spec.inChannels != first.spec.inChannels
            || p.spec.binary != first.spec.binary || p.spec.regionsClassOrder != first.spec.regionsClassOrder {
            throw TrainingError("the networks of an ensemble must have the same input channels and outputs")
        }
        guard previousStage == nil || preprocessor != nil else { throw TrainingError("a cascade stage needs its plan's preprocessing") }
        self.predictors = predictors
        self.preprocessor = preprocessor
        self.previousStage = previousStage
        self.previousStageConfiguration = previousStageConfiguration
    }

    public var spec: ModelSpecRecord { predictors[0].spec }

    /// Channels a case's image files must hold: the network's input less the previous stage's.
    public var imageChannels: Int {
        spec.inChannels - (previousStage == nil && previousStageConfiguration == nil ? 0 : spec.foregroundClasses)
    }

    /// The mean of the networks' logits [K, spatial...] for a prepared image (nnU-Net v2's
    /// predictor averages its folds' logits).
    public func ensembleLogits(_ image: Tensor) throws -> Tensor {
        try withNoGrad {
            var sum = try predictors[0].logits(normalizedImage: image).to(device: .cpu)
            for p in predictors.dropFirst() { sum = try sum + p.logits(normalizedImage: image).to(device: .cpu) }
            return predictors.count == 1 ? sum : try sum / Double(predictors.count)
        }
    }

    /// Softmax (or sigmoids) of `ensembleLogits`.
    public func ensembleProbabilities(_ image: Tensor) throws -> Tensor {
        try predictors[0].probabilities(fromLogits: ensembleLogits(image))
    }

    /// Probabilities [K, spatial...] (array order) in the grid of the case's raw images, and
    /// the grid's size (x first) and geometry for writing the prediction, from the whole volume's
    /// logits at once (see `predict` for the slab-by-slab way that bounds memory).
    public func probabilities(of files: CaseFiles) throws -> (probabilities: Tensor, size: [Int], geometry: ImageGeometry) {
        let input = CaseFiles(identifier: files.identifier, images: files.images, label: nil)
        guard let preprocessor else {
            let loaded = try CaseReader.normalizer(spec: spec).load(input, classes: spec.foregroundClasses)
            try checkChannels(loaded.image.size(0), files)
            return (try ensembleProbabilities(loaded.image), Array(loaded.shape.reversed()), loaded.geometry)
        }
        var (voxels, _, properties) = try preprocessor.process(input)
        var channels = properties.channels
        if let previousStage {
            voxels += try CascadeInput.channels(previous: previousStage(input), properties: properties, classes: spec.foregroundClasses,
                                                orders: preprocessor.orders)
            channels += spec.foregroundClasses
        }
        try checkChannels(channels, files)
        let logits = try ensembleLogits(try Tensor(voxels, shape: [channels] + properties.spatialShape))
        let k = logits.size(0)
        // Array order [K, (z,) y, x] is the channel-major, x-first layout of MedicalImage.
        let stored = Array(properties.spatialShape.reversed())
        let cropped = Array(properties.shapeAfterCroppingAndBeforeResampling.reversed())
        let axis = Resampling.separateAxis(spacing: properties.spacing.reversed(), target: properties.originalSpacing.reversed())
        let resampled = Resampling.resampleImage(try logits.to(dtype: .float32).contiguous().floats(), size: stored, channels: k,
                                                 to: cropped, separateAxis: axis, order: preprocessor.orders.logits, orderZ: preprocessor.orders.logitsZ)
        let probabilities = try predictors[0].probabilities(fromLogits: Tensor(resampled, shape: [k] + cropped.reversed())).floats()
        let n = cropped.reduce(1, *)
        var full: [Float] = []
        for c in 0..<k {
            let channel = MedicalImage(size: cropped, voxels: Array(probabilities[(c * n)..<((c + 1) * n)]))
            // Outside the crop there is only background: probability 1 for the background channel.
            let background: Float = (!spec.sigmoidOutputs && c == 0) ? 1 : 0
            full += Cropping.uncrop(channel, from: properties.cropBox, fill: background).voxels
        }
        let size = properties.shapeBeforeCropping.reversed() as [Int]
        return (try Tensor(full, shape: [k] + properties.shapeBeforeCropping), Array(size), properties.geometry)
    }

    /// Seconds spent in each stage of a case's prediction.
    public struct StageTimes: Sendable {
        /// Reading the images, cropping, normalizing and resampling them to the network's grid.
        public var preprocess = 0.0
        /// The sliding window (network passes and adding up the logits).
        public var network = 0.0
        /// Resampling the logits back, softmax, labels and writing the probabilities.
        public var export = 0.0
        /// The process's peak resident memory (MB) by the end of preprocessing, and by the end of
        /// the sliding window and export (which run interleaved, slab by slab).
        public var preprocessPeakMB = 0.0
        public var predictionPeakMB = 0.0
        /// The GPU the export ran on (its logits never left it); nil: the CPU.
        public var exportDevice: Device?
    }

    /// The label image of a case in its raw grid (uint8, uint16 beyond 255 labels), its
    /// probabilities written to `probabilities` when given (`ProbabilityFile`, `probabilitiesDType`
    /// float32 or float16). Memory is bounded by a patch-deep slab of logits, not by the volume
    /// times the classes: the logits are resampled, turned into labels and written slab by slab as
    /// the sliding window finishes them (`SlabExport`). A plan that resamples logits with cubic
    /// splines needs whole lines, so such a case is exported from the whole volume's logits.
    public func predict(_ files: CaseFiles, probabilities url: URL? = nil, probabilitiesDType: DType = .float32,
                        accumulationDType: DType? = .float32) throws -> (label: MedicalImage, times: StageTimes) {
        var times = StageTimes()
        var clock = Date()
        func lap() -> Double { defer { clock = Date() }; return Date().timeIntervalSince(clock) }
        let input = CaseFiles(identifier: files.identifier, images: files.images, label: nil)
        let image: Tensor, export: SlabExport, geometry: ImageGeometry
        let labelCount = spec.regionsClassOrder.map { ($0.max() ?? 0) + 1 } ?? max(2, spec.outChannels)
        let pixelType: PixelType = labelCount > 256 ? .uint16 : .uint8
        func exporter(stored: [Int], cropped: [Int], box: CropBox?, orders: [Resampling.Order]) throws -> SlabExport {
            // On a GPU whose budget holds the slab and the export's slices, the logits stay there.
            let bytes = SlabExport.deviceBytes(classes: spec.outChannels, stored: stored, cropped: cropped)
            let device = Set(predictors.map(\.device)).count == 1 && spec.dims == stored.count
                ? predictors[0].exportDevice(spatial: stored.reversed(), chosen: accumulationDType, exportBytes: bytes) : nil
            return try SlabExport(classes: spec.outChannels, sigmoid: spec.sigmoidOutputs, regionsClassOrder: spec.regionsClassOrder, stored: stored,
                                  cropped: cropped, box: box, orders: orders, probabilities: url, probabilitiesDType: probabilitiesDType,
                                  device: device)
        }
        if let preprocessor {
            let orders = preprocessor.orders
            guard orders.logits != .cubic, orders.logitsZ != .cubic else {
                let (p, size, geometry) = try probabilities(of: files)
                times.network = lap()
                if let url { try ProbabilityFile.write(p, regionsClassOrder: spec.regionsClassOrder, dtype: probabilitiesDType, to: url) }
                let labels = try predictors[0].labels(fromProbabilities: p).to(dtype: .float32).floats()
                times.export = lap()
                return (MedicalImage(size: size, voxels: labels, pixelType: pixelType, geometry: geometry), times)
            }
            var (voxels, _, properties) = try preprocessor.process(input)
            var channels = properties.channels
            if let previousStage {
                voxels += try CascadeInput.channels(previous: previousStage(input), properties: properties, classes: spec.foregroundClasses,
                                                    orders: orders)
                channels += spec.foregroundClasses
            }
            try checkChannels(channels, files)
            image = try Tensor(voxels, shape: [channels] + properties.spatialShape)
            voxels = []
            // Array order [K, (z,) y, x] is the channel-major, x-first layout of MedicalImage.
            let stored = Array(properties.spatialShape.reversed())
            let axis = Resampling.separateAxis(spacing: properties.spacing.reversed(), target: properties.originalSpacing.reversed())
            export = try exporter(stored: stored, cropped: Array(properties.shapeAfterCroppingAndBeforeResampling.reversed()),
                                  box: properties.cropBox, orders: stored.indices.map { $0 == axis ? orders.logitsZ : orders.logits })
            geometry = properties.geometry
        } else {
            let loaded = try CaseReader.normalizer(spec: spec).load(input, classes: spec.foregroundClasses)
            try checkChannels(loaded.image.size(0), files)
            image = loaded.image
            let size = Array(loaded.shape.reversed())
            export = try exporter(stored: size, cropped: size, box: nil, orders: size.map { _ in .nearest })
            geometry = loaded.geometry
        }
        times.preprocess = lap()
        times.preprocessPeakMB = Benchmark.peakResidentMB()
        Torch.releaseFreeMemory()
        try Predictor.streamLogits(predictors, normalizedImage: image, accumulationDType: accumulationDType) { start, logits in
            try export.add(start: start, logits: logits)
        }
        let labels = try export.finish()
        times.export = export.seconds
        times.exportDevice = export.device
        times.network = lap() - export.seconds
        times.predictionPeakMB = Benchmark.peakResidentMB()
        return (MedicalImage(size: export.fullSize, voxels: labels, pixelType: pixelType, geometry: geometry), times)
    }

    private func checkChannels(_ count: Int, _ files: CaseFiles) throws {
        guard count == spec.inChannels else {
            throw DataError(file: files.images[0], "the model expects \(spec.inChannels) channel(s), the case has \(count)")
        }
    }
}
