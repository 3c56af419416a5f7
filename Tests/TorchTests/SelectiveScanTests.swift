import XCTest
import TestSupport
@testable import Torch

/// The fused selective scan against a naive per-timestep loop built from Tensor ops (autograd
/// through the loop gives the reference gradients) and against PyTorch (Fixtures/scan/scan.json,
/// from scripts/fixtures/make_ultralight_fixtures.py).
final class SelectiveScanTests: XCTestCase {
    struct Inputs {
        var u, delta, A, B, C: Tensor
        var D, z, bias: Tensor?
        var all: [Tensor?] { [u, delta, A, B, C, D, z, bias] }
        static let names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]

        /// Fresh leaves holding the same values, recording gradients.
        func leaves() throws -> Inputs {
            func leaf(_ t: Tensor) throws -> Tensor { try t.detach().clone().requiresGrad(true) }
            return Inputs(u: try leaf(u), delta: try leaf(delta), A: try leaf(A), B: try leaf(B), C: try leaf(C),
                          D: try D.map(leaf), z: try z.map(leaf), bias: try bias.map(leaf))
        }
    }

    /// Random inputs; without softplus delta is drawn positive (a step size, as softplus makes it).
    static func random(batch: Int, channels: Int, length: Int, state: Int, withZ: Bool = true, withD: Bool = true,
                       withBias: Bool = true, softplus: Bool = true) throws -> Inputs {
        Inputs(u: try Tensor.randn([batch, channels, length]),
               delta: softplus ? try Tensor.randn([batch, channels, length]) * 0.5 - 1 : try Tensor.rand([batch, channels, length]) * 0.5 + 0.05,
               A: try 0 - (Tensor.rand([channels, state]) * 2.5).exp(),
               B: try Tensor.randn([batch, state, length]),
               C: try Tensor.randn([batch, state, length]),
               D: withD ? try Tensor.randn([channels]) : nil,
               z: withZ ? try Tensor.randn([batch, channels, length]) : nil,
               bias: withBias ? try Tensor.randn([channels]) * 0.3 : nil)
    }

    /// The recurrence one timestep at a time.
    static func naiveScan(_ x: Inputs, softplus: Bool) throws -> Tensor {
        var dt = x.delta
        if let bias = x.bias { dt = try dt + bias.unsqueeze(-1) }
        if softplus { dt = try F.softplus(dt) }
        let dA = try (dt.unsqueeze(-1) * x.A.unsqueeze(0).unsqueeze(2)).exp()                     // [b, e, l, n]
        let dBu = try dt.unsqueeze(-1) * x.u.unsqueeze(-1) * x.B.transpose(1, 2).unsqueeze(1)      // [b, e, l, n]
        let (b, e, l, n) = (x.u.size(0), x.u.size(1), x.u.size(2), x.A.size(1))
        var h = try Tensor.zeros([b, e, n])
        var ys: [Tensor] = []
        for t in 0..<l {
            h = try dA.select(dim: 2, index: t) * h + dBu.select(dim: 2, index: t)
            ys.append(try (h * x.C.select(dim: 2, index: t).unsqueeze(1)).sum(dim: -1))
        }
        var y = try Tensor.stack(ys, dim: 2)
        if let D = x.D { y = try y + x.u * D.unsqueeze(-1) }
        if let z = x.z { y = try y * F.silu(z) }
        return y
    }

    static func fused(_ x: Inputs, softplus: Bool) throws -> Tensor {
        try F.selectiveScan(x.u, delta: x.delta, A: x.A, B: x.B, C: x.C, D: x.D, z: x.z, deltaBias: x.bias, deltaSoftplus: softplus)
    }

    func compareWithNaive(_ x: Inputs, softplus: Bool, _ what: String) throws {
        let gy = try Tensor.randn(x.u.shape)
        let ref = try x.leaves(), mine = try x.leaves()
        let yRef = try Self.naiveScan(ref, softplus: softplus)
        try yRef.backward(gy)
        let y = try Self.fused(mine, softplus: softplus)
        try y.backward(gy)
        try FixtureSupport.assertClose(y, yRef, rtol: 1e-4, atol: 1e-4, "\(what): output")
        for (i, (a, b)) in zip(mine.all, ref.all).enumerated() {
            guard let a, let b else { continue }
            try FixtureSupport.assertClose(try XCTUnwrap(a.grad, "\(what): no grad for \(Inputs.names[i])"), try XCTUnwrap(b.grad),
                                           rtol: 1e-4, atol: 1e-4, "\(what): grad \(Inputs.names[i])")
        }
        // The explicit backward gives the same gradients without autograd.
        let g = try F.selectiveScanBackward(gy, u: x.u, delta: x.delta, A: x.A, B: x.B, C: x.C, D: x.D, z: x.z,
                                            deltaBias: x.bias, deltaSoftplus: softplus)
        let explicit: [Tensor] = [g.u, g.delta, g.A, g.B, g.C, g.D, g.z, g.deltaBias]
        for (i, (a, b)) in zip(explicit, mine.all).enumerated() {
            guard let b else { continue }
            try FixtureSupport.assertClose(a, try XCTUnwrap(b.grad), rtol: 1e-6, atol: 1e-6, "\(what): explicit grad \(Inputs.names[i])")
        }
    }

    /// Runs `body` with MEDSEG_SCAN=`backend`: "fallback" (the ATen scan instead of the fused CPU
    /// kernel) or "emulated" (the CUDA kernels' code run on the host).
    static func withScan<R>(_ backend: String, _ body: () throws -> R) rethrows -> R {
        setenv("MEDSEG_SCAN", backend, 1)
        defer { unsetenv("MEDSEG_SCAN") }
        return try body()
    }

    /// Output and input gradients (autograd) of the scan for `x` on `device`, as CPU tensors, plus
    /// the explicit backward's gradients.
    static func run(_ x: Inputs, softplus: Bool, gy: Tensor, device: Device = .cpu) throws -> (y: Tensor, grads: [Tensor?], explicit: [Tensor]) {
        func move(_ t: Tensor) throws -> Tensor { try t.detach().to(device: device).clone().requiresGrad(true) }
        let m = Inputs(u: try move(x.u), delta: try move(x.delta), A: try move(x.A), B: try move(x.B), C: try move(x.C),
                       D: try x.D.map(move), z: try x.z.map(move), bias: try x.bias.map(move))
        let y = try fused(m, softplus: softplus)
        XCTAssertEqual(y.device, device)
        try y.backward(try gy.to(device: device))
        let grads = try m.all.map { try $0.map { try XCTUnwrap($0.grad).to(device: .cpu) } }
        func d(_ t: Tensor?) throws -> Tensor? { try t.map { try $0.detach().to(device: device) } }
        let g = try F.selectiveScanBackward(try gy.to(device: device), u: try d(x.u)!, delta: try d(x.delta)!, A: try d(x.A)!,
                                            B: try d(x.B)!, C: try d(x.C)!, D: try d(x.D), z: try d(x.z),
                                            deltaBias: try d(x.bias), deltaSoftplus: softplus)
        let explicit = try [g.u, g.delta, g.A, g.B, g.C, g.D, g.z, g.deltaBias].map { try $0.to(device: .cpu) }
        return (try y.to(device: .cpu), grads, explicit)
    }

    /// Outputs within `tolerance` (absolute and relative); gradients within `tolerance` absolute
    /// and 10 x `tolerance` relative: they are float32 sums over time and state taken in another
    /// order (delta's, without softplus, differs by 6e-5 relative at length 70).
    static func compare(_ a: (y: Tensor, grads: [Tensor?], explicit: [Tensor]), _ b: (y: Tensor, grads: [Tensor?], explicit: [Tensor]),
                        tolerance: Double, _ what: String) throws {
        try FixtureSupport.assertClose(a.y, b.y, rtol: tolerance, atol: tolerance, "\(what): output")
        for i in 0..<Inputs.names.count {
            if let ga = a.grads[i], let gb = b.grads[i] {
                try FixtureSupport.assertClose(ga, gb, rtol: 10 * tolerance, atol: tolerance, "\(what): grad \(Inputs.names[i])")
            }
            try FixtureSupport.assertClose(a.explicit[i], b.explicit[i], rtol: 10 * tolerance, atol: tolerance,
                                           "\(what): explicit grad \(Inputs.names[i])")
        }
    }

    /// The shapes and optional inputs both back-ends are compared on (length 150 spans three of the
    /// fallback's 64-step chunks).
    static func variants() throws -> [(Inputs, Bool, String)] {
        [(try random(batch: 2, channels: 6, length: 17, state: 16), true, "full"),
         (try random(batch: 3, channels: 4, length: 9, state: 5, withZ: false, withD: false, withBias: false, softplus: false),
          false, "no z, D, bias, softplus"),
         (try random(batch: 2, channels: 3, length: 150, state: 16, withZ: false), true, "long, no z"),
         (try random(batch: 2, channels: 5, length: 33, state: 8, withBias: false), true, "z and D, no bias"),
         (try random(batch: 1, channels: 4, length: 70, state: 16, withD: false, softplus: false), false, "no D, no softplus"),
         (try random(batch: 4, channels: 2, length: 1, state: 16), true, "length 1")]
    }

    /// The scan under MEDSEG_SCAN=`backend` against the fused CPU kernel on every variant.
    func assertMatchesTheFusedKernel(underScan backend: String, seed: UInt64) throws {
        Torch.manualSeed(seed)
        for (x, softplus, what) in try Self.variants() {
            let gy = try Tensor.randn(x.u.shape)
            let fusedRun = try Self.run(x, softplus: softplus, gy: gy)
            let otherRun = try Self.withScan(backend) { try Self.run(x, softplus: softplus, gy: gy) }
            try Self.compare(otherRun, fusedRun, tolerance: 1e-5, "\(backend) vs fused, \(what)")
        }
    }

    func testATenFallbackMatchesTheFusedKernel() throws {
        try assertMatchesTheFusedKernel(underScan: "fallback", seed: 11)
    }

    /// The CUDA kernels' arithmetic (the text NVRTC compiles, built for the host) against the
    /// fused CPU kernel: forward, autograd backward and explicit backward.
    func testEmulatedCUDAKernelsMatchTheFusedKernel() throws {
        try assertMatchesTheFusedKernel(underScan: "emulated", seed: 17)
    }

    /// The NVRTC library set-up fetches (.deps/nvrtc, from PyPI's nvidia-cuda-nvrtc-cu12) or
    /// MEDSEG_NVRTC; nil when neither is there.
    static func nvrtcLibrary() -> String? {
        if let path = ProcessInfo.processInfo.environment["MEDSEG_NVRTC"] { return path }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let path = root.appendingPathComponent(".deps/nvrtc/nvidia/cuda_nvrtc/lib/libnvrtc.so.12").path
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }

    /// NVRTC compiles both kernels to PTX without a GPU (the device path's first step, checked on
    /// every machine); a bad architecture is an error carrying NVRTC's log.
    func testNVRTCCompilesTheKernels() throws {
        guard let library = Self.nvrtcLibrary() else {
            throw XCTSkip("no NVRTC library: scripts/setup.sh fetches it into .deps/nvrtc (or set MEDSEG_NVRTC)")
        }
        // (CUDA 13's NVRTC no longer targets compute_70: the GPU check runs this with that one.)
        for arch in ["compute_80", "compute_90"] {
            let ptx = try F.selectiveScanKernelsPTX(nvrtcLibrary: library, architecture: arch)
            XCTAssertTrue(ptx.contains(".target sm_\(arch.dropFirst("compute_".count))"), "\(arch): \(ptx.prefix(400))")
            XCTAssertTrue(ptx.contains(".entry mt_scan_forward("), arch)
            XCTAssertTrue(ptx.contains(".entry mt_scan_backward("), arch)
            // No atomic adds: each sequence writes its share of dA, dB, dC (same gradients every run).
            XCTAssertFalse(ptx.contains("atom.") || ptx.contains("red."), arch)
        }
        XCTAssertThrowsError(try F.selectiveScanKernelsPTX(nvrtcLibrary: library, architecture: "compute_1")) {
            XCTAssertTrue("\($0)".contains("could not compile the scan kernels"), "\($0)")
        }
        XCTAssertThrowsError(try F.selectiveScanKernelsPTX(nvrtcLibrary: "/nonexistent/libnvrtc.so.12")) {
            XCTAssertTrue("\($0)".contains("cannot load NVRTC from /nonexistent/libnvrtc.so.12"), "\($0)")
        }
    }

    func testBackendChoice() throws {
        let u = try Tensor.randn([1, 2, 5])
        XCTAssertEqual(F.selectiveScanBackend(u), "fused CPU kernel")
        XCTAssertEqual(Self.withScan("fallback") { F.selectiveScanBackend(u) }, "ATen fallback")
        XCTAssertEqual(Self.withScan("emulated") { F.selectiveScanBackend(u) }, "CUDA kernels emulated on the CPU")
        XCTAssertEqual(F.selectiveScanBackend(u), "fused CPU kernel", "MEDSEG_SCAN is read on every call")
        // The fallback checks the inputs as the fused kernel does.
        let x = try Self.random(batch: 1, channels: 2, length: 5, state: 3)
        XCTAssertThrowsError(try Self.withScan("fallback") { try F.selectiveScan(x.u, delta: x.delta, A: try Tensor.zeros([4, 4]), B: x.B, C: x.C) }) {
            XCTAssertTrue("\($0)".contains("A must be [channels, state]"), "\($0)")
        }
    }

    func testCUDAScanMatchesTheCPUKernel() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        // The CUDA wheel ships NVRTC: the kernels, not the fallback, must be what runs.
        XCTAssertEqual(F.selectiveScanBackend(try Tensor.zeros([1, 1, 1]).to(device: .cuda(0))), "NVRTC CUDA kernels")
        Torch.manualSeed(13)
        for (x, softplus, what) in try Self.variants() {
            let gy = try Tensor.randn(x.u.shape)
            let cpu = try Self.run(x, softplus: softplus, gy: gy)
            let cuda = try Self.run(x, softplus: softplus, gy: gy, device: .cuda(0))
            try Self.compare(cuda, cpu, tolerance: 1e-4, "CUDA (\(F.selectiveScanBackend(x.u.to(device: .cuda(0))))) vs CPU, \(what)")
            // No atomics in the kernels: a second run gives the same gradients to the bit.
            let again = try Self.run(x, softplus: softplus, gy: gy, device: .cuda(0))
            for (a, b) in zip(cuda.explicit, again.explicit) { XCTAssertTrue(try a.equal(b), "\(what): CUDA gradients differ between runs") }
            let fallback = try Self.withScan("fallback") { try Self.run(x, softplus: softplus, gy: gy, device: .cuda(0)) }
            try Self.compare(fallback, cpu, tolerance: 1e-4, "CUDA ATen fallback vs CPU, \(what)")
        }
    }

    func testMatchesTheNaiveLoop() throws {
        Torch.manualSeed(7)
        try compareWithNaive(try Self.random(batch: 2, channels: 6, length: 17, state: 16), softplus: true, "full")
        try compareWithNaive(try Self.random(batch: 3, channels: 4, length: 9, state: 5, withZ: false, withD: false, withBias: false,
                                                 softplus: false),
                             softplus: false, "no z, D, bias")
        try compareWithNaive(try Self.random(batch: 1, channels: 3, length: 64, state: 16, withZ: false), softplus: true, "long, no z")
        try compareWithNaive(try Self.random(batch: 4, channels: 2, length: 1, state: 16), softplus: true, "length 1")
    }

    func testMatchesPyTorch() throws {
        let fx = try fixtures.json("scan/scan.json")
        let cases = try XCTUnwrap(fx["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for (k, c) in cases.enumerated() {
            func t(_ name: String) throws -> Tensor? { c[name] == nil ? nil : try FixtureSupport.tensor(c[name]) }
            let x = Inputs(u: try t("u")!, delta: try t("delta")!, A: try t("A")!, B: try t("B")!, C: try t("C")!,
                           D: try t("D"), z: try t("z"), bias: try t("delta_bias"))
            let softplus = try XCTUnwrap(c["softplus"] as? Bool)
            let leaves = try x.leaves()
            let y = try Self.fused(leaves, softplus: softplus)
            try FixtureSupport.assertClose(y, try t("y")!, rtol: 1e-4, atol: 1e-4, "case \(k): output")
            try y.backward(try t("gy")!)
            for (i, p) in leaves.all.enumerated() {
                guard let p else { continue }
                try FixtureSupport.assertClose(try XCTUnwrap(p.grad), try t("grad_" + Inputs.names[i])!, rtol: 1e-4, atol: 1e-4,
                                               "case \(k): grad \(Inputs.names[i])")
            }
        }
    }

    func testTransposedViewsOfBAndCAreReadInPlace() throws {
        Torch.manualSeed(3)
        let x = try Self.random(batch: 2, channels: 3, length: 8, state: 4)
        let bLN = try x.B.transpose(1, 2).contiguous(), cLN = try x.C.transpose(1, 2).contiguous()
        let a = try Self.fused(x, softplus: true)
        var viewed = x
        viewed.B = try bLN.transpose(1, 2)
        viewed.C = try cLN.transpose(1, 2)
        XCTAssertFalse(viewed.B.isContiguous)
        try FixtureSupport.assertClose(try Self.fused(viewed, softplus: true), a, rtol: 0, atol: 0, "views")
    }

    func testBadShapesAreClearErrors() throws {
        let x = try Self.random(batch: 2, channels: 3, length: 8, state: 4)
        XCTAssertThrowsError(try F.selectiveScan(x.u, delta: x.delta, A: try Tensor.zeros([4, 4]), B: x.B, C: x.C)) {
            XCTAssertTrue("\($0)".contains("A must be [channels, state]"), "\($0)")
        }
        XCTAssertThrowsError(try F.selectiveScan(x.u, delta: x.delta, A: x.A, B: x.B, C: try Tensor.zeros([2, 4, 7]))) {
            XCTAssertTrue("\($0)".contains("C must be"), "\($0)")
        }
        XCTAssertThrowsError(try F.selectiveScan(x.u.to(dtype: .float64), delta: x.delta, A: x.A, B: x.B, C: x.C)) {
            XCTAssertTrue("\($0)".contains("float32"), "\($0)")
        }
    }

    func testBenchmarkHookRuns() throws {
        let r = try F.benchmarkSelectiveScan(batch: 2, channels: 4, length: 16, state: 16, iterations: 2)
        XCTAssertGreaterThan(r.forwardMs, 0)
        XCTAssertGreaterThan(r.backwardMs, 0)
    }
}
