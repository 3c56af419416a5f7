import CTorch
import Foundation

/// libtorch's profiler (torch.profiler, through Kineto): records the operators run between
/// `start` and `stop` (and, on a GPU, their CUDA kernels) and writes them as a Chrome trace, for
/// chrome://tracing or ui.perfetto.dev. One recording at a time per process.
public enum Profiler {
    public static func start(cuda: Bool) throws {
        Torch.initialize()
        try check(mt_profiler_start(cuda ? 1 : 0))
    }

    /// Ends the recording and writes its trace (JSON) to `url`.
    public static func stop(writingTo url: URL) throws {
        try check(mt_profiler_stop(url.path))
    }
}
