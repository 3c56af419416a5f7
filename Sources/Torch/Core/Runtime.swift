import CTorch
import Foundation

/// Process-wide libtorch settings and facts.
public enum Torch {
    /// The libtorch version this binary runs against.
    public static var version: String {
        initialize()
        return String(cString: mt_version())
    }

    private static let initialized: Bool = {
        mt_init()
        // libtorch starts with one intra-op thread here; use every core unless told otherwise.
        let requested = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"].flatMap(Int32.init)
        let cores = Int32(ProcessInfo.processInfo.activeProcessorCount)
        _ = mt_set_num_threads(max(1, requested ?? cores))
        return true
    }()

    /// Loads CUDA when present and sets the default thread count; every entry point calls it.
    public static func initialize() { _ = initialized }

    /// Gives the heap's free pages back to the system. MedSeg keeps freed blocks on the heap so
    /// that training steps reuse them; between the stages of a prediction (preprocessing done,
    /// the slab buffer next) they would only add to the peak.
    public static func releaseFreeMemory() { mt_release_free_memory() }

    /// Intra-op threads libtorch uses.
    public static var threads: Int {
        get { initialize(); return Int(mt_get_num_threads()) }
        set { initialize(); _ = mt_set_num_threads(Int32(max(1, newValue))) }
    }

    /// Seeds libtorch's default generators (CPU and CUDA).
    public static func manualSeed(_ seed: UInt64) {
        initialize()
        _ = mt_manual_seed(seed)
    }

    public static var cudaAvailable: Bool { initialize(); return mt_cuda_is_available() == 1 }
    public static var cudaDeviceCount: Int { initialize(); return Int(mt_cuda_device_count()) }
    public static var cudnnAvailable: Bool { initialize(); return mt_cudnn_is_available() == 1 }
    public static var glooAvailable: Bool { mt_has_gloo() == 1 }
    public static var ncclAvailable: Bool { mt_has_nccl() == 1 }

    /// The device's name with its compute capability and memory, e.g. "NVIDIA H200 (compute 9.0,
    /// 140 GiB)", read from the CUDA driver; why not, when the driver cannot say.
    public static func cudaDeviceName(_ index: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard mt_cuda_device_name(Int32(index), &buffer, buffer.count) == 0 else {
            return "(unnamed: \(String(cString: mt_last_error())))"
        }
        return String(cString: buffer)
    }

    /// The memory of CUDA device `device`, from the driver; nil on the CPU or without a driver.
    public static func cudaTotalMemoryBytes(_ device: Device) -> Int? {
        guard case .cuda(let i) = device else { return nil }
        let bytes = mt_cuda_total_memory(Int32(i))
        return bytes >= 0 ? Int(bytes) : nil
    }

    /// The most memory libtorch's caching allocator has held for tensors on `device` since the last
    /// `resetCUDAPeakMemory` (as torch.cuda.max_memory_allocated); nil on the CPU or where this
    /// libtorch keeps no statistics.
    public static func cudaPeakMemoryBytes(_ device: Device) -> Int? {
        guard case .cuda(let i) = device else { return nil }
        let bytes = mt_cuda_peak_allocated(Int32(i), 0)
        return bytes >= 0 ? Int(bytes) : nil
    }

    public static func resetCUDAPeakMemory(_ device: Device) {
        if case .cuda(let i) = device { _ = mt_cuda_peak_allocated(Int32(i), 1) }
    }

    /// Waits for queued GPU work (a no-op on CPU), so timings measure finished work.
    public static func synchronize(_ device: Device) throws {
        if case .cuda(let i) = device { try check(mt_cuda_synchronize(Int32(i))) }
    }

    /// The shared library that really serves BLAS calls (after Debian's alternatives).
    public static var blasLibrary: String {
        initialize()
        var buffer = [CChar](repeating: 0, count: 4096)
        _ = mt_blas_library(&buffer, buffer.count)
        return String(cString: buffer)
    }

    /// libtorch's build configuration summary.
    public static var buildConfig: String {
        initialize()
        return mt_config().map { String(cString: $0) } ?? ""
    }

    /// The default CPU generator's state, to store in checkpoints.
    public static func rngState() throws -> Tensor {
        initialize()
        return try wrap(mt_get_rng_state())
    }

    public static func setRNGState(_ state: Tensor) throws {
        try check(mt_set_rng_state(state.handle))
    }
}

/// Gradient recording on or off for the current thread (libtorch's grad mode is thread-local,
/// so never suspend an async task inside `body`).
public func withGradMode<R>(_ enabled: Bool, _ body: () throws -> R) rethrows -> R {
    let previous = mt_is_grad_enabled()
    mt_set_grad_enabled(enabled ? 1 : 0)
    defer { mt_set_grad_enabled(previous) }
    return try body()
}

/// Runs `body` without recording operations for autograd, like `torch.no_grad()`.
public func withNoGrad<R>(_ body: () throws -> R) rethrows -> R {
    try withGradMode(false, body)
}

public var isGradEnabled: Bool { mt_is_grad_enabled() == 1 }
