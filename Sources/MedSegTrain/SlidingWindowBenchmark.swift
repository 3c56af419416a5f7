import Foundation
import MedSegModels
import Torch

/// Times whole-volume sliding-window inference (SlidingWindow: nnU-Net's step 0.5, Gaussian
/// importance map, optional mirroring over every spatial axis) of a model in eval mode on a
/// random image, the way bench/sliding_window_ref.py times the same loop in PyTorch: warm-up
/// volumes, then timed volumes.
public struct SlidingWindowBenchmark {
    public struct Result: Codable, Sendable {
        public var model: String
        public var mode: String
        public var size: [Int]
        public var patch: [Int]
        public var mirror: Bool
        public var window_batch: Int
        public var threads: Int
        public var params: Int
        public var seconds_per_volume: Double
        /// Window positions in the volume.
        public var positions: Int
        /// Windows the network saw per volume (positions x mirror combinations).
        public var windows: Int
        /// Network calls per volume (batches of windows x mirror combinations).
        public var network_calls: Int
        public var peak_mem_mb: Double
        /// Convolution and matrix-product work of one volume, the rate achieved and its fraction
        /// of the device's measured peak.
        public var gflop_per_volume: Double?
        public var tflops: Double?
        public var peak: HardwarePeak?
        public var fraction_of_peak: Double?
    }

    public var spec: ModelFactory.Spec
    public var size: [Int]
    public var patch: [Int]
    public var mirror: Bool
    public var windowBatch: Int
    public var warmup: Int
    public var runs: Int
    public var device: Device
    /// The device's peak, to compare the rate with (nil: not compared).
    public var peak: HardwarePeak?

    public init(spec: ModelFactory.Spec, size: [Int], patch: [Int], mirror: Bool, windowBatch: Int,
                warmup: Int = 1, runs: Int = 2, device: Device = .cpu) {
        self.spec = spec; self.size = size; self.patch = patch; self.mirror = mirror
        self.windowBatch = max(1, windowBatch); self.warmup = warmup; self.runs = runs; self.device = device
    }

    public func run() throws -> Result {
        Torch.manualSeed(0)
        let model = try ModelFactory.make(spec)
        try model.to(device: device)
        model.eval()
        let image = try Tensor.randn([spec.inChannels] + size, device: device)
        let window = SlidingWindow(patchSize: patch, mirrorAxes: mirror ? Array(0..<spec.dims) : [], batchSize: windowBatch)

        // Count what the network is asked for, so the JSON shows the work both sides do.
        var calls = 0
        var windows = 0
        func volume() throws {
            calls = 0; windows = 0
            _ = try withNoGrad {
                try window(image) { batch in
                    calls += 1; windows += batch.size(0)
                    return try model(batch)
                }
            }
        }
        for _ in 0..<warmup { try volume() }
        try Torch.synchronize(device)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<max(1, runs) { try volume() }
        try Torch.synchronize(device)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(max(1, runs))
        let positions = zip(size, patch).map { SlidingWindow.steps(imageSize: $0, patchSize: $1, stepFraction: window.stepFraction).count }
            .reduce(1, *)
        var result = Result(model: spec.name, mode: "sliding-window", size: size, patch: patch, mirror: mirror, window_batch: windowBatch,
                            threads: Torch.threads, params: model.parameterCount(), seconds_per_volume: seconds,
                            positions: positions, windows: windows, network_calls: calls, peak_mem_mb: Benchmark.peakResidentMB())
        // Convolution work is linear in the batch: one window's, times the windows evaluated.
        let window1 = try Tensor.randn([1, spec.inChannels] + patch, device: device)
        let flops = Double(try FLOPCounter.count { _ = try withNoGrad { try model(window1) } } * windows)
        result.gflop_per_volume = flops / 1e9
        result.tflops = flops / seconds / 1e12
        result.peak = peak
        result.fraction_of_peak = peak.map { flops / seconds / 1e12 / $0.measured_tflops }
        return result
    }
}
