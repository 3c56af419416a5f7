import Foundation
import MedSegModels
import Torch

/// Times training steps (forward, loss, backward, Adam step) or inference of a model on random
/// inputs, the way the PyTorch reference scripts do: warm-up steps, then timed steps.
public struct Benchmark {
    public enum Mode: String, Codable, Sendable { case train, infer }

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
    }

    public var spec: ModelFactory.Spec
    public var batchSize: Int
    public var size: [Int]
    public var mode: Mode
    public var warmup: Int
    public var steps: Int
    public var device: Device

    public init(spec: ModelFactory.Spec, batchSize: Int, size: [Int], mode: Mode, warmup: Int = 2, steps: Int = 5, device: Device = .cpu) {
        self.spec = spec; self.batchSize = batchSize; self.size = size; self.mode = mode
        self.warmup = warmup; self.steps = steps; self.device = device
    }

    public func run() throws -> Result {
        Torch.manualSeed(0)
        let model = try ModelFactory.make(spec)
        try model.to(device: device)
        let x = try Tensor.randn([batchSize, spec.inChannels] + size, device: device)
        let y = try Tensor.rand([batchSize, spec.outChannels] + size, device: device).gt(0.5).float()
        let optimizer = Adam(model.trainableParameters(), lr: 1e-4)
        model.train(mode == .train)

        func step() throws {
            switch mode {
            case .train:
                try optimizer.zeroGrad()
                let loss = try F.binaryCrossEntropyWithLogits(model(x), target: y)
                try loss.backward()
                try optimizer.step()
            case .infer:
                _ = try withNoGrad { try model(x) }
            }
        }
        for _ in 0..<warmup { try step() }
        try Torch.synchronize(device)
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { try step() }
        try Torch.synchronize(device)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 / Double(steps)
        return Result(model: spec.name, mode: mode.rawValue, batch_size: batchSize, size: size, threads: Torch.threads,
                      params: model.parameterCount(), img_per_s: Double(batchSize) / seconds, step_ms: seconds * 1000,
                      peak_mem_mb: Self.peakResidentMB())
    }

    /// The process's peak resident memory (Linux reports ru_maxrss in KiB).
    public static func peakResidentMB() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024
    }
}
