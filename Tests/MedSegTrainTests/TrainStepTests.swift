import XCTest
import Torch
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
}
