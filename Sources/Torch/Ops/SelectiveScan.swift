import CTorch
import Foundation

/// Gradients of the selective scan, as `F.selectiveScanBackward` returns them. The entries of
/// optional inputs that were not given (D, z, deltaBias) are zeros.
public struct SelectiveScanGradients {
    public let u: Tensor
    public let delta: Tensor
    public let A: Tensor
    public let B: Tensor
    public let C: Tensor
    public let D: Tensor
    public let z: Tensor
    public let deltaBias: Tensor
}

extension F {
    /// Mamba's selective scan (`selective_scan_fn`), differentiable with respect to every tensor
    /// argument. CPU tensors: one fused kernel, forward and backward, parallel over batch x
    /// channels. CUDA tensors: forward and backward kernels compiled at run time with NVRTC, or
    /// the ATen fallback (a chunked loop over time in libtorch ops) when NVRTC or the driver cannot
    /// be loaded. MEDSEG_SCAN=fallback forces the fallback on every device; MEDSEG_SCAN=emulated
    /// runs the CUDA kernels' code on the host for CPU tensors (slow; tests check it against the
    /// fused kernel).
    ///
    ///     dt_t   = softplus(delta_t + deltaBias)        (no softplus when deltaSoftplus is false)
    ///     h_t[n] = exp(dt_t A[n]) h_{t-1}[n] + dt_t B_t[n] u_t,   h_{-1} = 0
    ///     y_t    = sum_n C_t[n] h_t[n] + D u_t,   times silu(z_t) when z is given
    ///
    /// Shapes: u, delta, z [batch, E, L]; A [E, N]; B, C [batch, N, L]; D, deltaBias [E];
    /// returns [batch, E, L]. float32 tensors on one device; B and C may be transposed views of
    /// [batch, L, N] tensors (read without a copy).
    public static func selectiveScan(_ u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor? = nil,
                                     z: Tensor? = nil, deltaBias: Tensor? = nil, deltaSoftplus: Bool = true) throws -> Tensor {
        try wrap(mt_selective_scan(u.handle, delta.handle, A.handle, B.handle, C.handle, D?.handle, z?.handle,
                                   deltaBias?.handle, deltaSoftplus ? 1 : 0))
    }

    /// The implementation `selectiveScan` takes for inputs like `u`: "fused CPU kernel",
    /// "NVRTC CUDA kernels", "CUDA kernels emulated on the CPU" or "ATen fallback".
    public static func selectiveScanBackend(_ u: Tensor) -> String {
        String(cString: mt_selective_scan_backend(u.handle))
    }

    /// The PTX that NVRTC makes of the scan's CUDA kernels for a virtual architecture such as
    /// "compute_80", with the NVRTC library at `nvrtcLibrary` (nil: the one the CUDA path would
    /// load). Needs no GPU or driver; throws with NVRTC's log when the kernels do not compile.
    public static func selectiveScanKernelsPTX(nvrtcLibrary: String? = nil, architecture: String = "compute_80") throws -> String {
        guard let p = mt_selective_scan_kernels_ptx(nvrtcLibrary, architecture) else { throw TorchError.last() }
        defer { mt_free_string(p) }
        return String(cString: p)
    }

    /// The scan's explicit backward for an output gradient `gradOutput` (no autograd involved).
    public static func selectiveScanBackward(_ gradOutput: Tensor, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                                             D: Tensor? = nil, z: Tensor? = nil, deltaBias: Tensor? = nil,
                                             deltaSoftplus: Bool = true) throws -> SelectiveScanGradients {
        let g = try unpack(mt_selective_scan_backward(gradOutput.handle, u.handle, delta.handle, A.handle, B.handle, C.handle,
                                                      D?.handle, z?.handle, deltaBias?.handle, deltaSoftplus ? 1 : 0))
        guard g.count == 8 else { throw TorchError("selective scan backward returned \(g.count) tensors, expected 8") }
        return SelectiveScanGradients(u: g[0], delta: g[1], A: g[2], B: g[3], C: g[4], D: g[5], z: g[6], deltaBias: g[7])
    }

    /// Times the fused scan at one shape with the Mamba block's arguments (D, z, delta bias,
    /// softplus): the mean milliseconds of a forward (recording the graph) and of the backward
    /// that follows it, over `iterations` runs after two warm-up runs. Inputs are drawn as the
    /// block sees them (A = -exp(log(1...N)), delta around softplus(-4)).
    public static func benchmarkSelectiveScan(batch: Int, channels: Int, length: Int, state: Int = 16,
                                              iterations: Int = 20) throws -> (forwardMs: Double, backwardMs: Double) {
        guard batch > 0, channels > 0, length > 0, state > 0, iterations > 0 else {
            throw TorchError("benchmarkSelectiveScan needs positive sizes and iterations")
        }
        let u = try Tensor.randn([batch, channels, length]).requiresGrad(true)
        let delta = try (Tensor.randn([batch, channels, length]) * 0.5 - 4).requiresGrad(true)
        let aLog = try Tensor.arange(1, Double(state + 1)).log().unsqueeze(0).expand([channels, state]).contiguous()
        let A = try (0 - aLog.exp()).requiresGrad(true)
        let B = try Tensor.randn([batch, length, state]).requiresGrad(true)
        let C = try Tensor.randn([batch, length, state]).requiresGrad(true)
        let D = try Tensor.ones([channels]).requiresGrad(true)
        let z = try Tensor.randn([batch, channels, length]).requiresGrad(true)
        let bias = try Tensor.zeros([channels]).requiresGrad(true)
        let gy = try Tensor.randn([batch, channels, length])
        var forward = 0.0, backward = 0.0
        for i in 0..<(iterations + 2) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let y = try selectiveScan(u, delta: delta, A: A, B: B.transpose(1, 2), C: C.transpose(1, 2), D: D, z: z,
                                      deltaBias: bias, deltaSoftplus: true)
            let t1 = DispatchTime.now().uptimeNanoseconds
            try y.backward(gy)
            let t2 = DispatchTime.now().uptimeNanoseconds
            if i >= 2 {
                forward += Double(t1 - t0) / 1e6
                backward += Double(t2 - t1) / 1e6
            }
            for p in [u, delta, A, B, C, D, z, bias] { p.grad = nil }
        }
        return (forward / Double(iterations), backward / Double(iterations))
    }
}
