import Foundation
import MedSegData
import MedSegModels
import Torch

/// One trained network's probabilities for a prepared image: sliding-window inference and
/// softmax (or sigmoids: one binary output, or one per region), and labels from them by argmax
/// (or a 0.5 threshold, regions painted in their class order).
public struct Predictor {
    public let model: Module
    public let spec: ModelSpecRecord
    public var mirror: Bool
    /// The axes mirroring flips (spatial, 0-based); nil: all. nnU-Net's models name theirs
    /// (`inference_allowed_mirroring_axes`).
    public var mirrorAxes: [Int]?
    public var device: Device
    /// Network passes under bf16/fp16 autocast; the window sums and probabilities stay float32.
    public var precision: Precision
    /// Step, windows per call and GPU budget of the sliding window.
    public var windowSettings: WindowSettings

    public init(model: Module, spec: ModelSpecRecord, mirror: Bool = true, device: Device = .cpu, precision: Precision = .fp32,
                window: WindowSettings = .init()) {
        self.model = model
        self.spec = spec
        self.mirror = mirror
        self.device = device
        self.precision = precision
        self.windowSettings = window
    }

    /// Where an image of `voxels` voxels has its logits added up (whole, in float32, with their weights).
    public func accumulationDevice(voxels: Int) -> Device {
        withinBudget(4 * (spec.network.outChannels + 1) * voxels) ? device : .cpu
    }

    /// Whether `bytes` of logits fit on this predictor's device: its budget on a GPU
    /// (`WindowSettings.logitsBudget`, else a quarter of the GPU's memory), always elsewhere.
    private func withinBudget(_ bytes: Int) -> Bool {
        guard device.isCUDA, let budget = windowSettings.logitsBudget ?? Torch.cudaTotalMemoryBytes(device).map({ $0 / 4 }) else { return true }
        return bytes <= budget
    }

    /// The type `streamLogits` adds up an image of `spatial` size in (`chosen`, else by the slab's
    /// size: `accumulationDType`) and the memory that takes: the patch-deep slab of sums, with its
    /// float32 weights, or in float16 with each voxel's total weight over the (padded) image.
    func streamSums(spatial: [Int], chosen: DType?) -> (dtype: DType, bytes: Int) {
        let patch = window(for: spatial).patchSize
        let padded = zip(spatial, patch).map { max($0, $1) }
        let slab = patch[0] * padded.dropFirst().reduce(1, *)
        let classes = spec.network.outChannels
        let dtype = Self.accumulationDType(chosen, classes: classes, voxels: slab)
        return (dtype, dtype == .float32 ? 4 * (classes + 1) * slab : 2 * classes * slab + 4 * padded.reduce(1, *))
    }

    /// Where a slab-wise export (`SlabExport`) of an image of `spatial` size, taking `exportBytes` on
    /// a device, resamples its logits: on the GPU when the slab adds up there (`chosen` as for
    /// `streamSums`) and the export fits beside it in the budget (the logits then never leave the
    /// GPU), else nil (on the CPU).
    func exportDevice(spatial: [Int], chosen: DType?, exportBytes: Int) -> Device? {
        device.isCUDA && withinBudget(streamSums(spatial: spatial, chosen: chosen).bytes + exportBytes) ? device : nil
    }

    /// Class probabilities [K, spatial...] (K = 1 for a binary model: the foreground probability).
    public func probabilities(normalizedImage image: Tensor) throws -> Tensor {
        try probabilities(fromLogits: logits(normalizedImage: image))
    }

    /// Sigmoid of a binary model's one output, softmax over a multi-class model's channels (dim 0).
    public func probabilities(fromLogits logits: Tensor) throws -> Tensor {
        spec.sigmoidOutputs ? try logits.sigmoid() : try logits.softmax(dim: 0)
    }

    /// Network outputs [K, spatial...] over the whole image (sliding window, optional mirroring).
    /// A 2D network predicts a volume slice by slice (nnU-Net's 2d configuration), stacked back.
    public func logits(normalizedImage image: Tensor) throws -> Tensor {
        if image.rank == spec.dims + 2 {
            let slices = try (0..<image.shape[1]).map { z in try logits(normalizedImage: image.select(dim: 1, index: z)) }
            return try Tensor.stack(slices, dim: 1)
        }
        model.eval()
        let window = self.window(for: Array(image.shape.dropFirst()))
        return try window(image.to(device: device), network: network)
    }

    /// The sliding window over an image of `spatial` size: windows of the training patch, but never
    /// larger than needed for a small image (rounded up to what the network accepts); a network made
    /// for one input size (Primus) always gets that size, a small image padded up to it.
    func window(for spatial: [Int]) -> SlidingWindow {
        let divisors = ModelFactory.sizeDivisors(spec.network)
        let patch = spec.network.inputShape
            ?? spec.patchSize.indices.map { a in min(spec.patchSize[a], (spatial[a] + divisors[a] - 1) / divisors[a] * divisors[a]) }
        var window = SlidingWindow(patchSize: patch, stepFraction: windowSettings.stepSize, mirrorAxes: mirror ? mirrorAxes ?? Array(0..<spec.dims) : [],
                                   batchSize: windowSettings.windowBatch)
        window.accumulationDevice = accumulationDevice(voxels: spatial.reduce(1, *))
        return window
    }

    /// The network (in eval mode) on a batch of windows, float32 logits.
    func network(_ patch: Tensor) throws -> Tensor {
        try Autocast.run(device: device, precision: precision) { try model(patch) }.to(dtype: .float32)
    }

    /// The mean logits of `predictors` over an image [C, spatial...], handed to `emit` in pieces
    /// along the first spatial axis (start, logits [K, n, rest...] where they were added up) as they are final, so
    /// that no more than a patch-deep slab of logits is held (`SlidingWindow.stream`). A 2D network
    /// on a volume emits each slice as it is predicted. Members whose windows differ (patch, step,
    /// batch, device) are each run over the whole image instead and emitted from their mean.
    /// The largest float32 slab buffer `streamLogits` keeps when no accumulation type is chosen:
    /// beyond it (a hundred classes over a CT's plane) the sums are kept in float16, as nnU-Net v2
    /// always keeps them, halving the largest buffer of a prediction.
    public static let float32SlabLimit = 1 << 30

    /// The type a slab of `voxels` voxels of `classes` logits adds up in: `chosen`, or float32
    /// while its buffer stays within `float32SlabLimit`, else float16.
    public static func accumulationDType(_ chosen: DType?, classes: Int, voxels: Int) -> DType {
        chosen ?? (4 * classes * voxels > float32SlabLimit ? .float16 : .float32)
    }

    /// `accumulationDType` nil: float32 or float16 by the slab's size (`accumulationDType(_:classes:voxels:)`).
    public static func streamLogits(_ predictors: [Predictor], normalizedImage image: Tensor, accumulationDType: DType? = .float32,
                                    emit: (_ start: Int, _ logits: Tensor) throws -> Void) throws {
        guard let first = predictors.first else { return }
        try withNoGrad {
            if image.rank == first.spec.dims + 2, predictors.allSatisfy({ $0.spec.dims == first.spec.dims }) {
                for z in 0..<image.shape[1] {
                    let slice = try image.select(dim: 1, index: z)
                    var sum = try first.logits(normalizedImage: slice).to(device: .cpu)
                    for p in predictors.dropFirst() { sum = try sum + p.logits(normalizedImage: slice).to(device: .cpu) }
                    if predictors.count > 1 { sum = try sum / Double(predictors.count) }
                    try emit(z, sum.unsqueeze(1))
                }
                return
            }
            let spatial = Array(image.shape.dropFirst())
            let windows = predictors.map { $0.window(for: spatial) }
            let alike = predictors.allSatisfy { $0.device == first.device && $0.spec.dims == first.spec.dims } && windows.allSatisfy {
                $0.patchSize == windows[0].patchSize && $0.stepFraction == windows[0].stepFraction && $0.batchSize == windows[0].batchSize
            }
            guard alike, image.rank == first.spec.dims + 1 else {
                var sum = try first.logits(normalizedImage: image).to(device: .cpu)
                for p in predictors.dropFirst() { sum = try sum + p.logits(normalizedImage: image).to(device: .cpu) }
                try emit(0, predictors.count == 1 ? sum : sum / Double(predictors.count))
                return
            }
            var window = windows[0]
            // The buffer is one patch deep: judge the GPU budget and its type on that slab, not the image.
            let sums = first.streamSums(spatial: spatial, chosen: accumulationDType)
            window.accumulationDType = sums.dtype
            window.accumulationDevice = first.withinBudget(sums.bytes) ? first.device : .cpu
            for p in predictors { p.model.eval() }
            let members = zip(predictors, windows).map { p, w in { (batch: Tensor) in try w.predictMirrored(batch, network: p.network) } }
            try window.stream(image.to(device: first.device), networks: members, emit: emit)
        }
    }

    /// Label map [spatial...] (int64) from probabilities.
    public func labels(fromProbabilities p: Tensor) throws -> Tensor { try ProbabilityFile.labels(p, regionsClassOrder: spec.regionsClassOrder) }
}

extension CaseReader {
    /// A reader configured with a checkpoint's normalization (no data set needed).
    static func normalizer(spec: ModelSpecRecord) -> CaseReader {
        CaseReader(dataset: nil, normalization: IntensityNormalization(rawValue: spec.normalization) ?? .zscore,
                   ctStatistics: spec.intensityStatistics)
    }
}
