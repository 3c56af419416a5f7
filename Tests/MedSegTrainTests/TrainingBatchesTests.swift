import XCTest
import Torch
import MedSegData
@testable import MedSegTrain

/// Training batches are sampled on the CPU and augmented on the training device.
final class TrainingBatchesTests: XCTestCase {
    func cases() throws -> [PatchCase] {
        var rng = RandomSource(seed: 21)
        return try (0..<3).map { i in
            let image = try rng.uniformTensor([1, 24, 20])
            var label = [Float](repeating: 0, count: 24 * 20)
            for y in 4..<10 { for x in (2 + i)..<(9 + i) { label[y * 20 + x] = 1 } }
            let labelTensor = try Tensor(label, shape: [1, 24, 20])
            let foreground = try ForegroundLocations.compute(label: labelTensor, classes: 1, rng: &rng)
            return PatchCase(identifier: "case\(i)", image: image, label: labelTensor, foreground: foreground)
        }
    }

    let sampler = PatchSampler(patchSize: [16, 16])
    let pipeline = AugmentationPipeline.preset(.flip, dims: 2)

    func cpuBatch() throws -> Batch {
        let source = TrainingBatches(cases: try cases(), batchSize: 3, sampler: sampler, pipeline: pipeline, device: .cpu)
        var rng = RandomSource(seed: 9)
        return try source.makeBatch(index: 0, rng: &rng)
    }

    /// The batch the loader gets is the sampler's patches put through the pipeline, with the same
    /// random draws.
    func testBatchesAreThePipelineAppliedToSampledPatches() throws {
        let batch = try cpuBatch()
        XCTAssertEqual(batch.image.shape, [3, 1, 16, 16])
        XCTAssertEqual(batch.image.device, .cpu)

        var replay = RandomSource(seed: 9)
        let all = try cases()
        let chosen = (0..<3).map { _ in all[replay.int(below: all.count)] }
        let patches = try sampler.batch(chosen, rng: &replay)
        let expected = try pipeline.apply(image: patches.image, label: patches.label, rng: &replay)
        XCTAssertEqual(batch.caseIdentifiers, chosen.map(\.identifier))
        XCTAssertTrue(try batch.image.equal(expected.image))
        XCTAssertTrue(try batch.label.equal(try XCTUnwrap(expected.label)))
    }

    /// On a GPU the same draws give the same batch, augmented there.
    func testBatchesAreAugmentedOnTheGPU() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device for augmentation on the GPU") }
        let batch = try cpuBatch()
        let gpu = TrainingBatches(cases: try cases(), batchSize: 3, sampler: sampler, pipeline: pipeline, device: .cuda(0))
        var gpuRNG = RandomSource(seed: 9)
        let onGPU = try gpu.makeBatch(index: 0, rng: &gpuRNG)
        XCTAssertEqual(onGPU.image.device, .cuda(0))
        XCTAssertEqual(onGPU.label.device, .cuda(0))
        // Flips move values without arithmetic: the GPU batch equals the CPU one exactly.
        XCTAssertTrue(try onGPU.image.to(device: .cpu).equal(batch.image))
        XCTAssertTrue(try onGPU.label.to(device: .cpu).equal(batch.label))
    }
}
