import Foundation
import Torch

/// Records a few training iterations with libtorch's profiler into a Chrome trace in the run
/// folder (one per rank in a data-parallel run), as seed 001's `--other_use prof` does. The first
/// iteration stays out of it: it carries one-off costs (allocations, cuDNN's algorithm search).
struct TrainingProfile {
    let steps: Int
    let url: URL
    let device: Device
    private let first: Int
    private var recording = false
    private var finished = false

    init(steps: Int, iterations: Int, folder: URL, rank: Int, world: Int, device: Device) {
        self.steps = steps
        self.device = device
        first = iterations > 1 ? 1 : 0
        url = folder.appendingPathComponent(world > 1 ? "profile_trace_rank\(rank).json" : "profile_trace.json")
    }

    mutating func willRun(iteration: Int) throws {
        guard !recording, !finished, iteration == first else { return }
        try Profiler.start(cuda: device.isCUDA)
        recording = true
    }

    /// The trace, once its last iteration has run.
    mutating func didRun(iteration: Int) throws -> URL? {
        guard recording, iteration == first + steps - 1 else { return nil }
        return try stop()
    }

    /// The trace of an epoch with fewer iterations than asked for.
    mutating func finishEpoch() throws -> URL? { recording ? try stop() : nil }

    private mutating func stop() throws -> URL {
        try Torch.synchronize(device) // the kernels launched so far end inside the recording
        try Profiler.stop(writingTo: url)
        recording = false
        finished = true
        return url
    }
}
