import XCTest
import Torch
import MedSegModels
@testable import MedSegTrain

/// `medseg benchmark`'s runs, checked for what they report (not for speed).
final class BenchmarkTests: XCTestCase {
    /// Loader mode times batches made as training makes them, on the training device, and says
    /// which device that was.
    func testLoaderModeTimesAugmentedBatchesOnTheDevice() throws {
        let spec = ModelFactory.Spec(name: "plainunet", dims: 2, inChannels: 1, outChannels: 2, features: 2, depth: 2)
        var bench = Benchmark(spec: spec, batchSize: 2, size: [24, 24], mode: .loader, warmup: 1, steps: 2, device: .cpu)
        bench.workers = 1
        let result = try bench.run()
        XCTAssertEqual(result.model, "loader (1 workers, cpu)")
        XCTAssertEqual(result.batch_size, 2)
        XCTAssertEqual(result.params, 0)
        XCTAssertGreaterThan(result.img_per_s, 0)
        XCTAssertEqual(result.img_per_s * result.step_ms / 1000, 2, accuracy: 1e-6, "images per step over step time")
    }

    /// A training step counts its forward's convolution work three times (input and weight
    /// gradients); the rate is that work over the step time, and its fraction of the peak follows.
    func testStepsReportTheirWorkAgainstTheMeasuredPeak() throws {
        let peak = try HardwarePeak.measure(device: .cpu, runs: 1)
        XCTAssertGreaterThan(peak.gemm_tflops, 0)
        XCTAssertGreaterThan(peak.conv_tflops, 0)
        XCTAssertEqual(peak.measured_tflops, max(peak.gemm_tflops, peak.conv_tflops))
        XCTAssertNil(peak.nominal_fp32_tflops, "no published peak for a CPU")
        XCTAssertEqual(HardwarePeak.nominal("NVIDIA H100 80GB HBM3")?.fp32, 67)
        XCTAssertEqual(HardwarePeak.nominal("NVIDIA H100 PCIe")?.fp32, 51)

        // The step's work against one counted forward of the same network and batch.
        let spec = ModelFactory.Spec(name: "plainunet", dims: 2, inChannels: 1, outChannels: 2, features: 2, depth: 2)
        let model = try ModelFactory.make(spec)
        let forward = try FLOPCounter.count { _ = try withNoGrad { try model(Tensor.randn([2, 1, 16, 16])) } }
        for mode in [Benchmark.Mode.train, .infer] {
            var bench = Benchmark(spec: spec, batchSize: 2, size: [16, 16], mode: mode, warmup: 0, steps: 1, device: .cpu)
            bench.peak = peak
            let r = try bench.run()
            let expected = Double(forward * (mode == .train ? 3 : 1)) / 1e9
            XCTAssertEqual(try XCTUnwrap(r.gflop_per_step), expected, accuracy: expected * 1e-12, "\(mode)")
            XCTAssertEqual(try XCTUnwrap(r.tflops), expected / 1e3 / (r.step_ms / 1000), accuracy: expected * 1e-6)
            XCTAssertEqual(try XCTUnwrap(r.fraction_of_peak), r.tflops! / peak.measured_tflops, accuracy: 1e-12)
        }
    }
}
