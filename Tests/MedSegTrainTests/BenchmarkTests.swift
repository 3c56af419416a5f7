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
}
