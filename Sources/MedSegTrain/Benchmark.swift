import Foundation
import MedSegData
import MedSegDist
import MedSegModels
import Torch

/// Times training steps (forward, loss, backward, Adam step) or inference of a model on random
/// inputs, the way the PyTorch reference scripts do: warm-up steps, then timed steps.
public struct Benchmark {
    public enum Mode: String, Codable, Sendable { case train, infer, loader }

    public struct Result: Codable, Sendable {
        public var model: String
        public var mode: String
        public var batch_size: Int
        public var size: [Int]
        public var threads: Int
        public var params: Int
        public var img_per_s: Double
        public var step_ms: Double
        public var peak_mem_mb: Double
        /// On a GPU: the most memory libtorch's allocator held for tensors during the timed steps
        /// (torch.cuda.max_memory_allocated after a reset).
        public var gpu_peak_mem_mb: Double?
        public var precision: String?
        public var channels_last: Bool?
        /// The data set whose batches were timed (nil: random tensors).
        public var dataset: String?
        /// Data-parallel runs: processes, images per second of all of them together, the time of
        /// a blocking all-reduce of every gradient, and the fraction of it hidden behind backward.
        public var world_size: Int?
        public var global_img_per_s: Double?
        public var allreduce_ms: Double?
        public var local_step_ms: Double?
        public var hidden_fraction: Double?
        /// Convolution and matrix-product work of one step (`FLOPCounter`: a training step counts
        /// its forward three times, for the input and weight gradients), the rate achieved, and its
        /// fraction of the device's measured peak (`HardwarePeak`).
        public var gflop_per_step: Double?
        public var tflops: Double?
        public var peak: HardwarePeak?
        public var fraction_of_peak: Double?
    }

    public var spec: ModelFactory.Spec
    public var batchSize: Int
    public var size: [Int]
    public var mode: Mode
    public var warmup: Int
    public var steps: Int
    public var device: Device
    /// Set in a launched rank: train data-parallel with the other ranks.
    public var distributed: DistributedEnvironment?
    /// Autocast precision of the network passes (fp16 training with loss scaling).
    public var precision = Precision.fp32
    /// Channels-last weights and inputs.
    public var channelsLast = false

    public init(spec: ModelFactory.Spec, batchSize: Int, size: [Int], mode: Mode, warmup: Int = 2, steps: Int = 5, device: Device = .cpu) {
        self.spec = spec; self.batchSize = batchSize; self.size = size; self.mode = mode
        self.warmup = warmup; self.steps = steps; self.device = device
    }

    /// The device's peak, to compare the step's rate with (nil: not compared).
    public var peak: HardwarePeak?

    /// Workers making batches in loader mode.
    public var workers = 2

    /// A data set's training cases and the loss its training uses: steps then take augmented
    /// patches of these cases, made by `workers` background threads as training makes them,
    /// instead of random tensors (seed 003's --benchmark on real data).
    public var cases: [LoadedCase]?
    public var loss: (any SegmentationLoss)?

    /// `count` training batches of `cases` (or of synthetic cases of the benchmark size).
    private func batches(_ count: Int) throws -> BatchLoader {
        let cases = try self.cases ?? syntheticCases()
        let source = TrainingBatches(cases: cases.map(PatchCase.init), batchSize: batchSize,
                                     sampler: PatchSampler(patchSize: size), pipeline: .nnUNet(dims: spec.dims), device: device)
        return BatchLoader(source: source, batches: count, workers: workers, prefetch: 2, seed: 0, epoch: 0)
    }

    private func syntheticCases() throws -> [LoadedCase] {
        let synth = try SyntheticCases(.init(dims: spec.dims, size: Array(size.reversed()).map { $0 + $0 / 4 }, classes: 1, seed: 0))
        let reader = CaseReader(dataset: nil, normalization: .zscore)
        return try (0..<4).map { i in
            let (image, label) = synth.makeCase(i)
            let t = try Tensor(try reader.normalize(image.voxels, channel: 0, file: URL(fileURLWithPath: "synthetic")), shape: [1] + image.size.reversed())
            var foreground: [Int] = []
            for (k, v) in label.voxels.enumerated() where v > 0 { foreground.append(k) }
            return LoadedCase(identifier: "s\(i)", image: t, label: try label.tensor(), foreground: [foreground], geometry: image.geometry,
                              shape: Array(image.size.reversed()))
        }
    }

    /// Batches per second of the training data pipeline (patch sampling with foreground
    /// oversampling and the full nnU-Net augmentation, run on `device` as training runs it) on
    /// synthetic cases of the benchmark size (or the data set's cases).
    func runLoader() throws -> Result {
        let batches = try batches(warmup + steps)
        defer { batches.stop() }
        for _ in 0..<warmup { _ = try batches.next() }
        try Torch.synchronize(device)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { _ = try batches.next() }
        try Torch.synchronize(device)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(steps)
        return Result(model: "loader (\(workers) workers, \(device))", mode: mode.rawValue, batch_size: batchSize, size: size, threads: Torch.threads,
                      params: 0, img_per_s: Double(batchSize) / seconds, step_ms: seconds * 1000, peak_mem_mb: Self.peakResidentMB())
    }

    public func run() throws -> Result {
        if mode == .loader { return try runLoader() }
        Torch.manualSeed(0)
        let model = try ModelFactory.make(spec)
        try model.to(device: device)
        let memoryFormat: MemoryFormat? = channelsLast ? .channelsLast(rank: size.count + 2) : nil
        if let memoryFormat { try model.to(memoryFormat: memoryFormat) }
        var x = try Tensor.randn([batchSize, spec.inChannels] + size, device: device)
        var y = try Tensor.rand([batchSize, spec.outChannels] + size, device: device).gt(0.5).float()
        // With a data set, every step takes the loader's next batch (its wait is part of the step).
        let real = try cases.map { _ in try batches(warmup + steps) }
        defer { real?.stop() }
        let loss = self.loss ?? BCEWithLogitsLoss()
        let optimizer = Adam(model.trainableParameters(), lr: 1e-4)
        model.train(mode == .train)
        let ddp = try distributed.map {
            try DistributedDataParallel(model: model, group: $0.joinProcessGroup(nccl: device.isCUDA))
        }

        // The training step itself, as `medseg train` runs it (without reading the loss back).
        let trainStep = try TrainStep(model: model, ddp: ddp, optimizer: optimizer, loss: loss, skipNonFinite: false,
                                      precision: precision, memoryFormat: memoryFormat)
        func step() throws {
            if let batch = try real?.next() { (x, y) = (batch.image, batch.label) }
            switch mode {
            case .train:
                try trainStep(x, y)
            case .infer:
                let input = try memoryFormat.map { try x.contiguous(memoryFormat: $0) } ?? x
                _ = try withNoGrad { try Autocast.run(device: device, precision: precision) { try model(input) } }
            case .loader:
                break
            }
        }
        for _ in 0..<warmup { try step() }
        try Torch.synchronize(device)
        Torch.resetCUDAPeakMemory(device)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { try step() }
        try Torch.synchronize(device)
        let gpuPeak = Torch.cudaPeakMemoryBytes(device)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(steps)
        var result = Result(model: spec.name, mode: mode.rawValue, batch_size: batchSize, size: size, threads: Torch.threads,
                            params: model.parameterCount(), img_per_s: Double(batchSize) / seconds, step_ms: seconds * 1000,
                            peak_mem_mb: Self.peakResidentMB())
        result.gpu_peak_mem_mb = gpuPeak.map { Double($0) / 1_048_576 }
        let forward = try FLOPCounter.count {
            let input = try memoryFormat.map { try x.contiguous(memoryFormat: $0) } ?? x
            _ = try withNoGrad { try model(input) }
        }
        result.setWork(flops: Double(forward * (mode == .train ? 3 : 1)), seconds: seconds, peak: peak)
        result.precision = precision.rawValue
        result.channels_last = channelsLast
        if let ddp, mode == .train {
            // The same step without communication, and the communication alone: what the
            // overlapped step costs beyond the local step, against a blocking all-reduce.
            func time(_ n: Int, _ body: () throws -> Void) rethrows -> Double {
                let t = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<n { try body() }
                return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6 / Double(n)
            }
            // All gradients as one flat buffer: the bucketed all-reduce without any overlap.
            let flat = try Tensor.cat(model.trainableParameters().compactMap(\.grad).map { try $0.flatten() })
            try ddp.group.barrier()
            let allReduce = try time(steps) { try ddp.group.allReduceSum(flat) }
            try ddp.group.barrier()
            let localStep = try TrainStep(model: model, optimizer: optimizer, loss: loss, skipNonFinite: false,
                                          precision: precision, memoryFormat: memoryFormat)
            let local = try time(steps) { try localStep(x, y) }
            let world = ddp.group.worldSize
            let exposed = max(0, result.step_ms - local)
            result.world_size = world
            result.global_img_per_s = result.img_per_s * Double(world)
            result.allreduce_ms = allReduce
            result.local_step_ms = local
            result.hidden_fraction = allReduce > 0 ? min(1, max(0, 1 - exposed / allReduce)) : nil
        }
        return result
    }

    /// The process's peak resident memory (Linux reports ru_maxrss in KiB).
    public static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}

extension Benchmark.Result {
    mutating func setWork(flops: Double, seconds: Double, peak: HardwarePeak?) {
        gflop_per_step = flops / 1e9
        tflops = flops / seconds / 1e12
        self.peak = peak
        fraction_of_peak = peak.map { flops / seconds / 1e12 / $0.measured_tflops }
    }
}
