import ArgumentParser
import Foundation
import MedSegModels
import MedSegTrain
import Torch

struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "benchmark",
        abstract: "Time training or inference steps of a model on random data (parameters, img/s, peak memory).")

    @Option(help: "Model: \(ModelFactory.names.joined(separator: ", ")).") var model = "unet"
    @Option(name: .customLong("dim"), help: "2 or 3 spatial dimensions.") var dims = 2
    @Option(help: "Images per step.") var batchSize = 4
    @Option(help: "Spatial size of each axis.") var size = 256
    @Option(help: "train (forward, BCE loss, backward, Adam step) or infer (forward without gradients).") var mode: String = "train"
    @Option(help: "Untimed steps first.") var warmup = 2
    @Option(help: "Timed steps.") var steps = 3
    @Option(help: "Input channels.") var inChannels = 1
    @Option(help: "Output channels.") var classes = 1
    @Option(help: "Base width (features of the first level).") var features = 64
    @Option(help: "Levels of the network.") var depth = 5
    @Option(help: "Intra-op threads (default: all cores).") var threads: Int?
    @Option(help: "cpu, cuda or cuda:N.") var device = "cpu"
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        if let threads { Torch.threads = threads }
        guard let m = Benchmark.Mode(rawValue: mode) else { throw ValidationError("--mode must be train or infer, got '\(mode)'") }
        let spec = ModelFactory.Spec(name: model, dims: dims, inChannels: inChannels, outChannels: classes, features: features, depth: depth)
        let bench = Benchmark(spec: spec, batchSize: batchSize, size: Array(repeating: size, count: dims), mode: m,
                              warmup: warmup, steps: steps, device: try Device(parsing: device))
        let r = try bench.run()
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(r), as: UTF8.self))
        } else {
            print("\(r.model) \(dims)D \(r.mode), batch \(r.batch_size), \(r.size.map(String.init).joined(separator: "x")), \(r.threads) thread(s)")
            print("parameters  \(r.params)")
            print(String(format: "img/s       %.3f", r.img_per_s))
            print(String(format: "step        %.1f ms", r.step_ms))
            print(String(format: "peak memory %.0f MB", r.peak_mem_mb))
        }
    }
}
