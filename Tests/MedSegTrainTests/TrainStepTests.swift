import XCTest
import Torch
import TestSupport
@testable import MedSegTrain

/// The one training step: loss scaling that leaves the update unchanged, overflow and
/// non-finite losses that leave the weights untouched.
final class TrainStepTests: XCTestCase {
    /// A loss of the logits' sum times a factor (infinity: a non-finite loss).
    private struct ScaledSum: SegmentationLoss {
        var factor: Double
        func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor { try logits.sum() * factor }
    }

    private func model(seed: UInt64) throws -> Module {
        Torch.manualSeed(seed)
        return Sequential(try Conv2d(1, 4, kernelSize: 3, padding: 1), ReLU(), try Conv2d(4, 1, kernelSize: 1))
    }

    private func batch() throws -> (Tensor, Tensor) {
        Torch.manualSeed(7)
        return (try Tensor.randn([2, 1, 8, 8]), try Tensor.rand([2, 1, 8, 8]).gt(0.5).float())
    }

    private func weights(_ m: Module) throws -> [[Float]] { try m.parameters().map { try $0.floats() } }

    func testLossScalingGivesThePlainUpdate() throws {
        let (x, y) = try batch()
        let plain = try model(seed: 1), scaled = try model(seed: 1)
        let a = try TrainStep(model: plain, optimizer: try SGD(plain.parameters(), lr: 0.1), loss: BCEWithLogitsLoss(), maxGradNorm: 1)
        let b = try TrainStep(model: scaled, optimizer: try SGD(scaled.parameters(), lr: 0.1), loss: BCEWithLogitsLoss(), maxGradNorm: 1,
                              scaler: GradScaler(initScale: 1024, growthInterval: 2))
        for _ in 0..<3 {
            XCTAssertTrue(try a(x, y).stepped)
            XCTAssertTrue(try b(x, y).stepped)
        }
        for (p, q) in zip(try weights(plain), try weights(scaled)) {
            for (u, v) in zip(p, q) { XCTAssertEqual(u, v, accuracy: 1e-6) }
        }
        XCTAssertEqual(b.scaler.currentScale, 2048, "one growth after 2 clean steps, the third counts towards the next")
    }

    /// Gradient accumulation: two micro-batches of 2 step as one batch of 4 does (a per-sample
    /// mean loss, no batch statistics), with clipping on the summed gradient.
    func testAccumulatedMicroBatchesStepAsTheirWholeBatch() throws {
        Torch.manualSeed(11)
        let x = try Tensor.randn([4, 1, 8, 8]), y = try Tensor.rand([4, 1, 8, 8]).gt(0.5).float()
        let whole = try model(seed: 3), accumulated = try model(seed: 3), single = try model(seed: 3)
        let a = try TrainStep(model: whole, optimizer: try SGD(whole.parameters(), lr: 0.5, momentum: 0.9), loss: BCEWithLogitsLoss(), maxGradNorm: 1)
        let b = try TrainStep(model: accumulated, optimizer: try SGD(accumulated.parameters(), lr: 0.5, momentum: 0.9), loss: BCEWithLogitsLoss(),
                              maxGradNorm: 1)
        let c = try TrainStep(model: single, optimizer: try SGD(single.parameters(), lr: 0.5, momentum: 0.9), loss: BCEWithLogitsLoss(),
                              maxGradNorm: 1)
        let (xs, ys) = (try x.chunk(2), try y.chunk(2))
        for _ in 0..<3 {
            let full = try a(x, y)
            let micro = try b(microBatches: [(xs[0], ys[0]), (xs[1], ys[1])])
            XCTAssertEqual(full.loss, micro.loss, accuracy: 1e-6, "the step reports the whole batch's loss")
            try c(xs[0], ys[0])
        }
        for (p, q) in zip(try weights(whole), try weights(accumulated)) {
            for (u, v) in zip(p, q) { XCTAssertEqual(u, v, accuracy: 1e-5) }
        }
        let differs = zip(try weights(whole), try weights(single)).contains { zip($0, $1).contains { abs($0 - $1) > 1e-4 } }
        XCTAssertTrue(differs, "half the batch alone steps elsewhere: the comparison can fail")
    }

    func testOverflowingScaledGradientsSkipTheStepAndBackOff() throws {
        let (x, y) = try batch()
        let m = try model(seed: 2)
        let before = try weights(m)
        // Finite loss, but loss x 65536 gradients overflow float32: fp16's expected overflow.
        let step = try TrainStep(model: m, optimizer: try SGD(m.parameters(), lr: 0.1), loss: ScaledSum(factor: 1e34),
                                 scaler: GradScaler(initScale: 65536))
        let outcome = try step(x, y)
        XCTAssertTrue(outcome.loss.isFinite)
        XCTAssertFalse(outcome.stepped)
        XCTAssertTrue(outcome.lossScaleOverflow)
        XCTAssertEqual(step.scaler.currentScale, 32768)
        XCTAssertEqual(try weights(m), before)
    }

    func testNonFiniteLossSkipsTheStepWithAndWithoutScaling() throws {
        let (x, y) = try batch()
        for scaler in [try GradScaler(enabled: false), try GradScaler(initScale: 1024)] {
            let m = try model(seed: 3)
            let before = try weights(m)
            let step = try TrainStep(model: m, optimizer: try SGD(m.parameters(), lr: 0.1), loss: ScaledSum(factor: .infinity),
                                     maxGradNorm: 12, scaler: scaler)
            let outcome = try step(x, y)
            XCTAssertFalse(outcome.loss.isFinite)
            XCTAssertFalse(outcome.stepped)
            XCTAssertFalse(outcome.lossScaleOverflow, "a bad loss is not an expected overflow")
            XCTAssertEqual(try weights(m), before)
            if scaler.enabled { XCTAssertEqual(scaler.currentScale, 512) }
        }
    }

    /// Sophia-G in training (seed 000): steps with its Hessian estimate refreshed every 2 steps by
    /// the Gauss-Newton-Bartlett estimator (labels drawn from the model's own sigmoid outputs, as
    /// the reference loop draws them from its softmax) match a PyTorch loop with the reference
    /// SophiaG: weights, moments and Hessian after 5 steps.
    func testSophiaGTrainingRefreshesItsHessianAsPyTorchDoes() throws {
        let (x, y) = try batch()
        let net = try model(seed: 1)
        let initial = try weights(net)
        let sophia = SophiaG(net.parameters(), lr: 0.05, betas: (0.965, 0.99), rho: 0.01, weightDecay: 0.1, hessianBatchSize: 100)
        let step = try TrainStep(model: net, optimizer: sophia, loss: BCEWithLogitsLoss(), skipNonFinite: false)
        step.hessianInterval = 2
        step.predictions = .sigmoid
        // The draws come from the default generator, seeded here and in the reference alike.
        Torch.manualSeed(11)
        for _ in 0..<5 { try step(x, y) }
        let script = """
        import json, os, sys, torch
        import torch.nn as nn, torch.nn.functional as F
        sys.path.insert(0, sys.argv[2])
        from make_ultralight_fixtures import SophiaG
        a = json.loads(sys.argv[1])
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 1, 1))
        with torch.no_grad():
            for p, w in zip(net.parameters(), a["init"]): p.copy_(torch.tensor(w, dtype=torch.float32).reshape(p.shape))
        x = torch.tensor(a["x"], dtype=torch.float32).reshape(2, 1, 8, 8); y = torch.tensor(a["y"], dtype=torch.float32).reshape(2, 1, 8, 8)
        opt = SophiaG(net.parameters(), lr=0.05, betas=(0.965, 0.99), rho=0.01, weight_decay=0.1)
        torch.manual_seed(11)
        for it in range(5):
            opt.zero_grad()
            F.binary_cross_entropy_with_logits(net(x), y).backward()
            opt.step(bs=100)
            if it % 2 == 1:  # the reference loop: after every hess_interval-th step
                opt.zero_grad()
                logits = net(x)
                sample = (torch.rand(logits.shape) < torch.sigmoid(logits)).float()
                F.binary_cross_entropy_with_logits(logits, sample).backward()
                opt.update_hessian()
                opt.zero_grad(set_to_none=True)
        print(json.dumps({"params": [p.detach().flatten().tolist() for p in net.parameters()],
                          "hessian": [opt.state[p]["hessian"].flatten().tolist() for p in net.parameters()]}))
        """
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let input = String(decoding: try JSONSerialization.data(withJSONObject: [
            "init": initial, "x": try x.floats(), "y": try y.floats()]), as: UTF8.self)
        let out = try Python.run(script, [input, root.appendingPathComponent("scripts/fixtures").path], interpreter: "/usr/bin/python3")
        let reference = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: [[Double]]]
        for (i, (ours, theirs)) in zip(try weights(net), reference["params"]!).enumerated() {
            for (a, b) in zip(ours, theirs) { XCTAssertEqual(Double(a), b, accuracy: 1e-6, "parameter \(i)") }
        }
        for (i, theirs) in reference["hessian"]!.enumerated() {
            let ours = try XCTUnwrap(sophia.state[i]?.tensors["hessian"], "hessian \(i)").floats()
            XCTAssertGreaterThan(theirs.map(abs).max() ?? 0, 0, "the reference refreshed its Hessian")
            for (a, b) in zip(ours, theirs) { XCTAssertEqual(Double(a), b, accuracy: 1e-6 + 1e-4 * abs(b), "hessian \(i)") }
        }
    }
}
