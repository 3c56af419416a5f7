import ArgumentParser
import Foundation
import MedSegDist
import MedSegModels
import MedSegTrain
import Torch

struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Time training or inference steps of a model, or whole-volume sliding-window inference, on random data or a data set's batches (parameters, img/s, peak memory).")

    @Option(help: "Model: \(ModelName.described).") var model = ModelName.unet
    @Option(help: "train/infer/loader: time real batches, augmented patches of --size from this data set's cases (its channels and classes), made by --workers threads as training makes them, with its training loss.")
    var dataset: String?
    @Option(name: .customLong("dim"), help: "2 or 3 spatial dimensions.") var dims = 2
    @Option(help: "Images per step.") var batchSize = 4
    @Option(help: "Spatial size: one value for every axis, or one per axis (e.g. 192,160).", transform: parseInts) var size = [256]
    @Option(help: "train (forward, BCE loss, backward, Adam step), infer (forward without gradients), loader (batches of augmented patches) or sliding-window (whole-volume inference, eval mode, no gradients; --steps volumes timed).") var mode: String = "train"
    @Option(help: "Loader mode: background workers making batches.") var workers = 2
    @Option(help: "Untimed steps first.") var warmup = 2
    @Option(help: "Timed steps.") var steps = 3
    @Option(help: "Input channels.") var inChannels = 1
    @Option(help: "Output channels.") var classes = 1
    @Option(help: "Base width (features of the first level; default: the model's published width, e.g. 64 for unet, 8 for ultralight_vmunet).") var features: Int?
    @Option(help: "Levels of the network (default: the model's).") var depth: Int?
    @Option(help: "mednext, primus: its published size, S, B, M or L (default B).") var modelSize: ModelSize?
    @Option(help: "mednext: its kernel size, 3 or 5 (default 3).") var kernelSize: Int?
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?
    @Option(help: "auto (cuda:LOCAL_RANK where CUDA is available, else cpu), cpu, cuda or cuda:N.") var device = "auto"
    @Option(help: "train/infer: fp32, or bf16/fp16 autocast (fp16 training with loss scaling).") var precision = Precision.fp32
    @Flag(help: "train/infer: channels-last weights and inputs.") var channelsLast = false
    @Flag(name: .customLong("cudnn-benchmark"), help: "cuDNN benchmark mode (GPU).") var cudnnBenchmark = false
    @Flag(help: "Print one JSON object.") var json = false
    @Option(help: "sliding-window: patch (window) size, one value for every axis or one per axis.", transform: parseInts) var patch = [64]
    @Flag(inversion: .prefixedNo, help: "sliding-window: mirror test-time augmentation over every spatial axis.") var mirror = true
    @Option(help: "sliding-window: windows per network call.") var windowBatch = 1
    @Option(help: "Data-parallel ranks to start on this machine (training mode; batch size per rank).") var nprocPerNode: Int?
    @Option(help: "Time one operation instead of a model: selective-scan (Mamba's fused scan, forward and backward).") var op: String?
    @Option(help: "selective-scan: channels E.") var channels = 16
    @Option(help: "selective-scan: sequence length L.") var length = 1024
    @Option(help: "selective-scan: state size N.") var state = 16

    func validate() throws { try checkThreads(threads) }

    func run() throws {
        if let op {
            guard op == "selective-scan" else { throw ValidationError("--op must be selective-scan, got '\(op)'") }
            if let threads { Torch.threads = threads }
            _ = try F.benchmarkSelectiveScan(batch: batchSize, channels: channels, length: length, state: state, iterations: max(1, warmup))
            let t = try F.benchmarkSelectiveScan(batch: batchSize, channels: channels, length: length, state: state, iterations: steps)
            if json {
                print("{\"op\":\"selective-scan\",\"batch\":\(batchSize),\"channels\":\(channels),\"length\":\(length),\"state\":\(state),\"forward_ms\":\(t.forwardMs),\"backward_ms\":\(t.backwardMs)}")
            } else {
                print(String(format: "selective scan B=%d E=%d L=%d N=%d: forward %.3f ms, backward %.3f ms", batchSize, channels, length, state, t.forwardMs, t.backwardMs))
            }
            return
        }
        if mode == "sliding-window" { try runSlidingWindow(); return }
        let environment = try DistributedEnvironment.fromEnvironment()
        if environment == nil, let nproc = nprocPerNode {
            let args = SelfLaunch.arguments(removing: ["--nproc-per-node"])
            try SelfLaunch.ranks(.init(nprocPerNode: nproc, masterPort: try Launcher.freePort())) { _ in args }
            return
        }
        // Launched ranks print only from rank 0.
        if let e = environment, e.rank != 0 { _ = try runBenchmark(environment: e); return }
        let r = try runBenchmark(environment: environment)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(r), as: UTF8.self))
        } else {
            print("\(r.model) \(dims)D \(r.mode), batch \(r.batch_size), \(r.size.map(String.init).joined(separator: "x")), \(r.threads) thread(s)"
                  + (r.dataset.map { ", batches of \($0)" } ?? ", random data"))
            print("parameters  \(r.params)")
            print(String(format: "img/s       %.3f", r.img_per_s))
            print(String(format: "step        %.1f ms", r.step_ms))
            print(String(format: "peak memory %.0f MB", r.peak_mem_mb))
            if let gpu = r.gpu_peak_mem_mb { print(String(format: "GPU memory  %.0f MB (most held by tensors while timed)", gpu)) }
            if let w = r.world_size, let g = r.global_img_per_s, let a = r.allreduce_ms, let h = r.hidden_fraction {
                print(String(format: "ranks       %d, %.3f img/s together; all-reduce %.1f ms, %.0f%% hidden behind backward", w, g, a, h * 100))
            }
            if let line = Self.computeLine(gflop: r.gflop_per_step, per: "step", tflops: r.tflops, fraction: r.fraction_of_peak, peak: r.peak) {
                print("compute     " + line)
            }
        }
    }

    /// "G GFLOP/step, T TFLOP/s, F% of the measured peak P TFLOP/s" (and the card's nominal peaks).
    static func computeLine(gflop: Double?, per: String, tflops: Double?, fraction: Double?, peak: HardwarePeak?) -> String? {
        guard let gflop, let tflops else { return nil }
        var line = String(format: "%.2f GFLOP/%@ (convolutions and products), %.4f TFLOP/s", gflop, per, tflops)
        if let fraction, let peak {
            line += String(format: ", %.1f%% of the measured peak %.3f TFLOP/s (GEMM %.3f, conv %.3f)", fraction * 100, peak.measured_tflops,
                           peak.gemm_tflops, peak.conv_tflops)
            if let fp32 = peak.nominal_fp32_tflops, let bf16 = peak.nominal_bf16_tflops {
                line += String(format: "; %.1f%% of the card's %.0f TFLOP/s float32 (%.0f bf16)", tflops / fp32 * 100, fp32, bf16)
            }
        }
        return line
    }

    /// The model at its published width and depth unless --features/--depth say otherwise.
    /// One value for every spatial axis, or exactly one per axis.
    private func spatial(_ values: [Int], _ option: String) throws -> [Int] {
        guard values.allSatisfy({ $0 > 0 }) else { throw ValidationError("\(option) must be positive, got \(values)") }
        if values.count == 1 { return Array(repeating: values[0], count: dims) }
        guard values.count == dims else { throw ValidationError("\(option) needs 1 or \(dims) values for --dim \(dims), got \(values.count)") }
        return values
    }

    private var networkSpec: ModelFactory.Spec {
        var spec = ModelFactory.Spec(name: model.rawValue, dims: dims, inChannels: inChannels, outChannels: classes,
                                     features: features ?? model.defaultFeatures, depth: depth ?? model.defaultDepth)
        (spec.modelSize, spec.kernelSize) = (modelSize, kernelSize)
        // Primus is made for one input size: the window in sliding-window mode, else --size.
        if [.primus, .primus_v2, .primus_v3].contains(model) { spec.inputShape = try? spatial(mode == "sliding-window" ? patch : size, "--size") }
        return spec
    }

    private func runSlidingWindow() throws {
        if let threads { Torch.threads = threads }
        var bench = SlidingWindowBenchmark(spec: networkSpec, size: try spatial(size, "--size"), patch: try spatial(patch, "--patch"),
                                           mirror: mirror, windowBatch: windowBatch, warmup: warmup, runs: steps, device: try Device.resolve(device))
        let peak = try HardwarePeak.measure(device: bench.device)
        bench.peak = peak
        let r = try bench.run()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(r), as: UTF8.self))
        } else {
            let cube = { (s: [Int]) in s.map(String.init).joined(separator: "x") }
            print("\(r.model) \(dims)D sliding window, \(cube(r.size)) in \(cube(r.patch)) windows, mirror \(r.mirror ? "on" : "off"), window batch \(r.window_batch), \(r.threads) thread(s)")
            print("parameters    \(r.params)")
            print("windows       \(r.positions) positions, \(r.windows) evaluated, \(r.network_calls) network calls")
            print(String(format: "s/volume      %.3f", r.seconds_per_volume))
            print(String(format: "peak memory   %.0f MB", r.peak_mem_mb))
            if let line = Self.computeLine(gflop: r.gflop_per_volume, per: "volume", tflops: r.tflops, fraction: r.fraction_of_peak, peak: r.peak) {
                print("compute       " + line)
            }
        }
    }

    private func runBenchmark(environment: DistributedEnvironment?) throws -> Benchmark.Result {
        if let threads { Torch.threads = threads }
        guard let m = Benchmark.Mode(rawValue: mode) else { throw ValidationError("--mode must be train, infer, loader or sliding-window, got '\(mode)'") }
        var bench = Benchmark(spec: networkSpec, batchSize: batchSize, size: try spatial(size, "--size"), mode: m,
                              warmup: warmup, steps: steps, device: try Device.resolve(device, localRank: environment?.localRank ?? 0))
        bench.distributed = environment
        if m != .loader { bench.peak = try HardwarePeak.measure(device: bench.device) }
        bench.precision = precision
        bench.channelsLast = channelsLast
        if cudnnBenchmark { Torch.cudnnBenchmark = true }
        bench.workers = workers
        if let dataset {
            // The data set decides channels, classes and loss, exactly as `medseg train` would.
            var c = TrainingConfig()
            c.model = model
            c.patch_size = try spatial(size, "--size")
            c.dims = dims
            c.batch_size = batchSize
            c.features = features
            c.depth = depth
            c.fold = -1
            try c.validate(source: "command line")
            let setup = try TrainingSetup(config: c, datasetFolder: URL(fileURLWithPath: dataset), mayPreprocess: false, say: { _ in })
            bench.spec = setup.network
            bench.cases = setup.trainCases
            bench.loss = try TrainingSetup.makeLoss(c.loss, binary: setup.binary, targets: setup.targets, batchDice: c.batch_dice)
        }
        var result = try bench.run()
        result.dataset = dataset
        return result
    }
}
