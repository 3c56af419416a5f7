import Foundation
import TestSupport
import XCTest
@testable import Torch

final class MixedPrecisionTests: XCTestCase {
    func testPrecisionCodesAsItsName() throws {
        XCTAssertEqual(Precision(rawValue: "bf16"), .bf16)
        XCTAssertNil(Precision(rawValue: "fp8"))
        XCTAssertEqual(String(decoding: try JSONEncoder().encode([Precision.bf16]), as: UTF8.self), "[\"bf16\"]")
        XCTAssertEqual(try JSONDecoder().decode([Precision].self, from: Data("[\"fp16\"]".utf8)), [.fp16])
        XCTAssertEqual(Precision.bf16.autocastDType, .bfloat16)
        XCTAssertEqual(Precision.fp16.autocastDType, .float16)
        XCTAssertNil(Precision.fp32.autocastDType)
        XCTAssertTrue(Precision.fp16.needsGradScaler)
        XCTAssertFalse(Precision.bf16.needsGradScaler)
        XCTAssertEqual(DType.bfloat16.byteSize, 2)
        XCTAssertEqual(DType.float16.byteSize, 2)
    }

    func testAutocastMakesConvolutionsBFloat16InsideTheScopeOnly() throws {
        let conv = try Conv2d(2, 3, kernelSize: 3, padding: 1)
        let x = try Tensor.randn([1, 2, 5, 5])
        XCTAssertFalse(Autocast.isEnabled(.cpu))
        let (inside, nested, relu) = try Autocast.run(device: .cpu, dtype: .bfloat16) { () throws -> (DType, DType, DType) in
            XCTAssertTrue(Autocast.isEnabled(.cpu))
            XCTAssertEqual(Autocast.dtype(.cpu), .bfloat16)
            let y = try conv(x)
            // A nested scope that turns autocast off computes in the inputs' dtype, then autocast is back.
            let off = try Autocast.run(device: .cpu, dtype: .bfloat16, enabled: false) { try conv(x).dtype }
            XCTAssertTrue(Autocast.isEnabled(.cpu))
            return (y.dtype, off, try y.relu().dtype)
        }
        XCTAssertEqual(inside, .bfloat16)
        XCTAssertEqual(nested, .float32)
        XCTAssertEqual(relu, .bfloat16)
        XCTAssertFalse(Autocast.isEnabled(.cpu))
        XCTAssertEqual(try conv(x).dtype, .float32)
        // fp32 runs the body plainly.
        XCTAssertEqual(try Autocast.run(device: .cpu, precision: .fp32) { try conv(x).dtype }, .float32)
        XCTAssertThrowsError(try Autocast.run(device: .cpu, dtype: .float32) { () })
    }

    /// A small conv net trained 20 steps under bf16 autocast follows the same net in float32.
    func testBFloat16AutocastTrainingTracksFloat32() throws {
        try assertAutocastTrainingTracksFloat32(device: .cpu, dtype: .bfloat16)
    }

    /// The same on the GPU: bf16, and fp16 with loss scaling (torch.amp's CUDA recipe).
    func testCUDAAutocastTrainingTracksFloat32() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        try assertAutocastTrainingTracksFloat32(device: .cuda(0), dtype: .bfloat16)
        try assertAutocastTrainingTracksFloat32(device: .cuda(0), dtype: .float16)
    }

    private func assertAutocastTrainingTracksFloat32(device: Device, dtype: DType,
                                                     file: StaticString = #filePath, line: UInt = #line) throws {
        Torch.manualSeed(7)
        func net() throws -> Sequential {
            Sequential(try Conv2d(1, 8, kernelSize: 3, padding: 1), ReLU(), try Conv2d(8, 1, kernelSize: 3, padding: 1))
        }
        let full = try net(), mixed = try net()
        try withNoGrad {
            for (a, b) in zip(full.parameters(), mixed.parameters()) { try b.copy_(a) }
        }
        try full.to(device: device)
        try mixed.to(device: device)
        let x = try Tensor.randn([4, 1, 12, 12]).to(device: device)
        let target = try (x * 0.5).detach()
        let optFull = try SGD(full.parameters(), lr: 0.05)
        let optMixed = try SGD(mixed.parameters(), lr: 0.05)
        let scaler = try GradScaler(initScale: 1024, enabled: dtype == .float16)
        var lossesFull: [Double] = [], lossesMixed: [Double] = []
        for _ in 0..<20 {
            try optFull.zeroGrad()
            let l32 = try F.mseLoss(full(x), target: target)
            try l32.backward()
            try optFull.step()
            lossesFull.append(try l32.item())

            try optMixed.zeroGrad()
            let l16 = try Autocast.run(device: device, dtype: dtype) { () throws -> Tensor in
                let y = try mixed(x)
                XCTAssertEqual(y.dtype, dtype, "\(device) autocast", file: file, line: line)
                return try F.mseLoss(y.to(dtype: .float32), target: target)
            }
            try scaler.scale(l16).backward()
            XCTAssertEqual(mixed.parameters()[0].grad?.dtype, .float32, file: file, line: line)
            XCTAssertTrue(try scaler.step(optMixed), "no step may be skipped on this problem", file: file, line: line)
            try scaler.update()
            lossesMixed.append(try l16.item())
        }
        XCTAssertLessThan(lossesFull.last!, lossesFull.first! * 0.8, "the float32 net should learn: \(lossesFull)", file: file, line: line)
        for (a, b) in zip(lossesFull, lossesMixed) {
            XCTAssertEqual(b, a, accuracy: 0.03 * a + 1e-3, "\(device) fp32 \(lossesFull)\n\(dtype) \(lossesMixed)", file: file, line: line)
        }
        for p in mixed.parameters() {
            XCTAssertEqual(p.dtype, .float32, file: file, line: line)
            XCTAssertEqual(p.device, device, file: file, line: line)
        }
    }

    /// GradScaler with its parameters and gradients on the GPU: an inf gradient skips the step and
    /// backs off, the next clean step unscales to the true gradient.
    func testCUDAGradScalerSkipsInfAndUnscales() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        let p = try Tensor([Float(1), 2, 3]).to(device: .cuda(0))
        p.requiresGrad = true
        let optimizer = try SGD([p], lr: 0.1)
        let scaler = try GradScaler(initScale: 1024, growthInterval: 1)
        try scaler.scale((p * p).sum()).backward()
        p.grad = try Tensor([Float(1), .infinity, 3]).to(device: .cuda(0))
        XCTAssertFalse(try scaler.step(optimizer))
        try scaler.update()
        XCTAssertEqual(try p.to(device: .cpu).floats(), [1, 2, 3])
        XCTAssertEqual(scaler.currentScale, 512)
        try optimizer.zeroGrad()
        try scaler.scale((p * p).sum()).backward()
        XCTAssertFalse(try scaler.unscale(optimizer))
        XCTAssertEqual(try p.grad!.to(device: .cpu).floats(), [2, 4, 6])
        XCTAssertTrue(try scaler.step(optimizer))
        try scaler.update()
        XCTAssertEqual(scaler.currentScale, 1024)
        for (value, expected) in zip(try p.to(device: .cpu).floats(), [Float(0.8), 1.6, 2.4]) {
            XCTAssertEqual(value, expected, accuracy: 1e-6)
        }
    }

    func testGradScalerSkipsNonFiniteStepsBacksOffAndGrowsBack() throws {
        let p = try Tensor([Float(1), 2, 3])
        p.requiresGrad = true
        let optimizer = try SGD([p], lr: 0.1)
        let scaler = try GradScaler(initScale: 1024, growthInterval: 3)
        XCTAssertEqual(scaler.currentScale, 1024)

        func iteration(injectInf: Bool) throws -> Bool {
            try optimizer.zeroGrad()
            let loss = try (p * p).sum()
            let scaled = try scaler.scale(loss)
            XCTAssertEqual(try scaled.item(), try loss.item() * scaler.currentScale, accuracy: 1e-3)
            try scaled.backward()
            if injectInf { p.grad = try Tensor([Float(1), .infinity, 3]) }
            let found = try scaler.unscale(optimizer)
            XCTAssertEqual(found, injectInf)
            if !injectInf {
                // Unscaled: the true gradient 2p.
                XCTAssertEqual(try p.grad!.floats(), try (p * 2).floats())
            }
            let stepped = try scaler.step(optimizer)
            try scaler.update()
            return stepped
        }

        let before = try p.floats()
        XCTAssertFalse(try iteration(injectInf: true))
        XCTAssertEqual(try p.floats(), before, "a step with inf gradients must leave the parameters unchanged")
        XCTAssertEqual(scaler.currentScale, 512)
        XCTAssertEqual(scaler.growthTracker, 0)

        XCTAssertTrue(try iteration(injectInf: false))
        XCTAssertEqual(try p.floats(), before.map { $0 - 0.1 * 2 * $0 })
        XCTAssertEqual(scaler.currentScale, 512)
        XCTAssertEqual(scaler.growthTracker, 1)
        XCTAssertTrue(try iteration(injectInf: false))
        XCTAssertEqual(scaler.growthTracker, 2)
        XCTAssertTrue(try iteration(injectInf: false))
        XCTAssertEqual(scaler.currentScale, 1024, "three clean steps (the growth interval) double the scale")
        XCTAssertEqual(scaler.growthTracker, 0)

        // A NaN counts as inf; calls out of order are errors.
        try optimizer.zeroGrad()
        try scaler.scale((p * p).sum()).backward()
        p.grad = try Tensor([Float.nan, 0, 0])
        XCTAssertFalse(try scaler.step(optimizer))
        XCTAssertThrowsError(try scaler.unscale(optimizer))
        try scaler.update()
        XCTAssertEqual(scaler.currentScale, 512)
        XCTAssertThrowsError(try scaler.update())

        // Disabled: scale 1, every step taken.
        let off = try GradScaler(enabled: false)
        try optimizer.zeroGrad()
        try off.scale((p * p).sum()).backward()
        XCTAssertTrue(try off.step(optimizer))
        try off.update()
        XCTAssertEqual(off.currentScale, 1)
    }

    /// The scale sequence follows PyTorch's GradScaler (torch.amp.GradScaler("cpu") where the
    /// installed PyTorch has it; otherwise the rules of its _amp_update_scale_, written out here).
    func testGradScalerScaleSequenceMatchesPyTorch() throws {
        let pattern: [Bool] = [false, false, true, false, false, false, false, true, true, false, false, false, false, false, false, false]
        let scaler = try GradScaler(initScale: 65536, growthFactor: 2, backoffFactor: 0.5, growthInterval: 4)
        var ours: [Double] = []
        for inf in pattern {
            scaler.apply(foundInf: inf)
            ours.append(scaler.currentScale)
        }
        let script = """
        import sys, torch
        pattern = [c == "1" for c in sys.argv[1]]
        try:
            scaler = torch.amp.GradScaler("cpu", init_scale=65536.0, growth_factor=2.0, backoff_factor=0.5, growth_interval=4)
        except Exception:
            print("unsupported"); sys.exit(0)
        p = torch.nn.Parameter(torch.ones(2))
        opt = torch.optim.SGD([p], lr=0.0)
        out = []
        for inf in pattern:
            opt.zero_grad()
            scaler.scale(p.sum()).backward()
            if inf: p.grad[0] = float("inf")
            scaler.step(opt); scaler.update()
            out.append(repr(scaler.get_scale()))
        print(" ".join(out))
        """
        let text = try Python.run(script, [pattern.map { $0 ? "1" : "0" }.joined()], interpreter: "/usr/bin/python3")
            .trimmingCharacters(in: .whitespacesAndNewlines)
        var expected: [Double]
        if text == "unsupported" {
            // torch.cuda.amp.GradScaler's documented rules: inf -> scale * backoff, tracker 0; else
            // tracker + 1, and at growth_interval scale * growth, tracker 0.
            expected = []
            var scale = 65536.0, tracker = 0
            for inf in pattern {
                if inf { scale *= 0.5; tracker = 0 } else { tracker += 1; if tracker == 4 { scale *= 2; tracker = 0 } }
                expected.append(scale)
            }
        } else {
            expected = text.split(separator: " ").compactMap { Double($0) }
        }
        XCTAssertEqual(ours, expected)
        XCTAssertEqual(ours, [65536, 65536, 32768, 32768, 32768, 32768, 65536, 32768, 16384, 16384, 16384, 16384, 32768, 32768, 32768, 32768])
    }

    func testGradScalerStateRoundTripsBitExactly() throws {
        // Factors that are not powers of two give scales with full float32 mantissas.
        let scaler = try GradScaler(initScale: 12345.678, growthFactor: 1.7, backoffFactor: 0.3, growthInterval: 2)
        for inf in [true, false, false, true, false, false, false, true, false] { scaler.apply(foundInf: inf) }
        let data = try JSONEncoder().encode(scaler.state)
        let state = try JSONDecoder().decode(GradScaler.State.self, from: data)
        XCTAssertEqual(state, scaler.state)
        XCTAssertEqual(state.scale.bitPattern, scaler.currentScale.bitPattern)
        let resumed = try GradScaler(state: state)
        let other = try GradScaler()
        other.load(state)
        XCTAssertEqual(other.currentScale.bitPattern, scaler.currentScale.bitPattern)
        XCTAssertEqual(other.growthTracker, scaler.growthTracker)
        for inf in [false, true, false, false, false, true, false] {
            scaler.apply(foundInf: inf)
            resumed.apply(foundInf: inf)
            XCTAssertEqual(resumed.currentScale.bitPattern, scaler.currentScale.bitPattern)
            XCTAssertEqual(resumed.growthTracker, scaler.growthTracker)
        }
        XCTAssertEqual(resumed.state, scaler.state)
    }
}
