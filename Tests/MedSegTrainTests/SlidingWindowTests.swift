import XCTest
import Torch
import MedSegModels
import TestSupport
@testable import MedSegTrain

final class SlidingWindowTests: XCTestCase {
    private let conv: Conv2d = {
        Torch.manualSeed(5)
        return try! Conv2d(2, 3, kernelSize: 3, padding: 1)
    }()

    private func network(_ x: Tensor) throws -> Tensor { try conv(x) }

    func testStepsFollowNnUNet() {
        XCTAssertEqual(SlidingWindow.steps(imageSize: 64, patchSize: 64, stepFraction: 0.5), [0])
        XCTAssertEqual(SlidingWindow.steps(imageSize: 100, patchSize: 64, stepFraction: 0.5), [0, 18, 36])
        XCTAssertEqual(SlidingWindow.steps(imageSize: 160, patchSize: 64, stepFraction: 0.5), [0, 32, 64, 96])
        XCTAssertEqual(SlidingWindow.steps(imageSize: 150, patchSize: 64, stepFraction: 0.5), [0, 29, 57, 86])
    }

    func testImportanceMapIsAGaussianWithMaximumOne() throws {
        let map = try SlidingWindow.importanceMap(patchSize: [16, 24])
        XCTAssertEqual(map.shape, [16, 24])
        XCTAssertEqual(try map.max().item(), 1, accuracy: 1e-6)
        XCTAssertEqual(try map[8][12].item(), 1, accuracy: 1e-6, "peak at patch // 2")
        // sigma = 2 along the first axis: value at distance 2 from the centre is exp(-1/2).
        XCTAssertEqual(try map[6][12].item(), Foundation.exp(-0.5), accuracy: 1e-5)
        XCTAssertGreaterThan(try map.min().item(), 0)
    }

    func testImageOfPatchSizeEqualsPlainForwardPass() throws {
        let image = try Tensor.randn([2, 32, 40])
        let sw = SlidingWindow(patchSize: [32, 40])
        let out = try sw(image, network: network)
        let plain = try withNoGrad { try conv(image.unsqueeze(0))[0] }
        try FixtureSupport.assertClose(out, plain, rtol: 1e-5, atol: 1e-5, "single window")
    }

    func testTiledInferenceWithMirroringEqualsAverageOfMirroredPasses() throws {
        // A network that is translation-equivariant away from borders: compare against the
        // average of the mirrored full-image passes, away from window borders' padding effects
        // by using a pointwise (1x1) network where tiling is exact.
        let pointwise = try Conv2d(2, 3, kernelSize: 1)
        let image = try Tensor.randn([2, 50, 70])
        let sw = SlidingWindow(patchSize: [32, 32], mirrorAxes: [0, 1], batchSize: 3)
        let out = try sw(image, network: { try pointwise($0) })
        let expected = try withNoGrad { () -> Tensor in
            let x = try image.unsqueeze(0)
            var sum = try pointwise(x)
            for dims in [[2], [3], [2, 3]] { sum = try sum + pointwise(x.flip(dims)).flip(dims) }
            return try (sum / 4)[0]
        }
        try FixtureSupport.assertClose(out, expected, rtol: 1e-5, atol: 1e-5, "tiled + mirrored")
    }

    func testMirroringAveragesFlippedPredictions() throws {
        let image = try Tensor.randn([2, 16, 16])
        let sw = SlidingWindow(patchSize: [16, 16], mirrorAxes: [1])
        let out = try sw(image, network: network)
        let x = try image.unsqueeze(0)
        let expected = try withNoGrad { try ((conv(x) + conv(x.flip([3])).flip([3])) / 2)[0] }
        try FixtureSupport.assertClose(out, expected, rtol: 1e-5, atol: 1e-5, "mirror TTA")
    }

    func testSmallerImageIsPaddedAndCroppedBack() throws {
        let image = try Tensor.randn([2, 10, 13])
        let out = try SlidingWindow(patchSize: [16, 16])(image, network: network)
        XCTAssertEqual(out.shape, [3, 10, 13])
        // Interior voxels (away from the zero padding's reach) equal a plain pass on the padded image.
        let padded = try image.pad([1, 2, 3, 3]).unsqueeze(0)
        let plain = try withNoGrad { try conv(padded)[0].narrow(dim: 1, start: 3, length: 10).narrow(dim: 2, start: 1, length: 13) }
        try FixtureSupport.assertClose(out, plain, rtol: 1e-5, atol: 1e-5, "padded window")
    }

    /// The benchmark reports the work it timed: positions (3 per axis for 16 / 8 at step 0.5),
    /// windows (x 8 mirror combinations in 3D) and network calls (batches of windows).
    func testSlidingWindowBenchmarkCountsTheWork() throws {
        let spec = ModelFactory.Spec(name: "plainunet", dims: 3, inChannels: 1, outChannels: 2, features: 2, depth: 2)
        let mirrored = try SlidingWindowBenchmark(spec: spec, size: [16, 16, 16], patch: [8, 8, 8], mirror: true, windowBatch: 4,
                                                  warmup: 0, runs: 1).run()
        XCTAssertEqual(mirrored.positions, 27)
        XCTAssertEqual(mirrored.windows, 27 * 8)
        XCTAssertEqual(mirrored.network_calls, 7 * 8, "27 windows in batches of 4: 7 calls per mirror combination")
        XCTAssertGreaterThan(mirrored.seconds_per_volume, 0)
        let plain = try SlidingWindowBenchmark(spec: spec, size: [16, 16, 16], patch: [8, 8, 8], mirror: false, windowBatch: 1,
                                               warmup: 0, runs: 1).run()
        XCTAssertEqual(plain.windows, 27)
        XCTAssertEqual(plain.network_calls, 27)
        XCTAssertEqual(plain.params, mirrored.params)
    }

    /// A GPU whose budget a volume's float32 logits exceed adds them up on the CPU: the policy,
    /// and the same logits (so the same argmax) wherever they add up.
    /// A predictor's windows are those its settings give, nnU-Net's half-patch step by default.
    func testWindowSettingsMakeThePredictorsWindows() throws {
        let spec = ModelSpecRecord(network: .init(name: "unet", dims: 2, inChannels: 2, outChannels: 3, features: 4, depth: 2), patchSize: [32, 32],
                                   normalization: "zscore", intensityStatistics: nil, labels: [0, 1, 2], binary: false, configuration: nil, labelTargets: nil)
        XCTAssertEqual(Predictor(model: conv, spec: spec).window(for: [64, 64]).stepFraction, SlidingWindow(patchSize: [32, 32]).stepFraction)
        XCTAssertEqual(WindowSettings().stepSize, 0.5)
        XCTAssertEqual(WindowSettings(windowBatch: 0).windowBatch, 1, "at least one window per call")
        let window = Predictor(model: conv, spec: spec, mirror: false, window: WindowSettings(stepSize: 0.25, windowBatch: 3)).window(for: [64, 64])
        XCTAssertEqual(window.stepFraction, 0.25)
        XCTAssertEqual(window.batchSize, 3)
        XCTAssertEqual(window.mirrorAxes, [])
        XCTAssertEqual(Predictor(model: conv, spec: spec).window(for: [20, 64]).patchSize, [20, 32], "a small image, a small window")
        // A network made for one input size (Primus) gets it whatever the image: smaller ones are padded.
        var fixed = ModelSpecRecord(network: .init(name: "primus", dims: 3, inChannels: 1, outChannels: 2, features: 8, depth: 4), patchSize: [16, 32, 32],
                                    normalization: "zscore", intensityStatistics: nil, labels: [0, 1], binary: false, configuration: nil, labelTargets: nil)
        fixed.network.inputShape = [16, 32, 32]
        XCTAssertEqual(Predictor(model: conv, spec: fixed).window(for: [8, 16, 40]).patchSize, [16, 32, 32])
    }

    func testLogitsOverTheGPUBudgetAddUpOnTheCPU() throws {
        let spec = ModelSpecRecord(network: .init(name: "unet", dims: 2, inChannels: 2, outChannels: 3, features: 4, depth: 2), patchSize: [32, 32],
                                   normalization: "zscore", intensityStatistics: nil, labels: [0, 1, 2], binary: false, configuration: nil, labelTargets: nil)
        var gpu = Predictor(model: conv, spec: spec, device: .cuda(0))
        XCTAssertEqual(gpu.accumulationDevice(voxels: 1 << 20), .cuda(0), "no budget, no limit")
        gpu.windowSettings.logitsBudget = 4 * 4 * 1_000_000
        XCTAssertEqual(gpu.accumulationDevice(voxels: 999_999), .cuda(0))
        XCTAssertEqual(gpu.accumulationDevice(voxels: 1_000_001), .cpu, "(3 classes + counts) x 4 bytes x voxels over the budget")
        var cpu = Predictor(model: conv, spec: spec, device: .cpu)
        cpu.windowSettings.logitsBudget = 1
        XCTAssertEqual(cpu.accumulationDevice(voxels: 1 << 20), .cpu)

        let device: Device = Torch.cudaAvailable ? .cuda(0) : .cpu
        let image = try Tensor.randn([2, 50, 70], device: device)
        let onDevice = SlidingWindow(patchSize: [32, 32], mirrorAxes: [1], batchSize: 2)
        var onCPU = onDevice
        onCPU.accumulationDevice = .cpu
        try conv.to(device: device)
        defer { try? conv.to(device: .cpu) }
        let a = try onDevice(image, network: network), b = try onCPU(image, network: network)
        XCTAssertEqual(b.device, .cpu)
        try FixtureSupport.assertClose(b, a.to(device: .cpu), rtol: 1e-5, atol: 1e-5, "accumulated on the CPU")
        XCTAssertEqual(try b.argmax(dim: 0).toArray(Int64.self), try a.argmax(dim: 0).to(device: .cpu).toArray(Int64.self))
    }
}
