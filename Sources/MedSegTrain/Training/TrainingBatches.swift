import MedSegData
import Torch

/// The training batches of one rank and epoch: cases drawn at random (with repeats) from the
/// rank's share, patches with foreground oversampling, then the augmentation pipeline on the
/// training device (patches are cut on the CPU and sent pinned and non-blocking, so the
/// spatial and intensity transforms run on the GPU when training does). Only reads shared
/// tensors, so the loader's workers can call it at once.
struct TrainingBatches: BatchSource {
    let cases: [PatchCase]
    let batchSize: Int
    let sampler: PatchSampler
    let pipeline: AugmentationPipeline
    var device: Device = .cpu

    func makeBatch(index: Int, rng: inout RandomSource) throws -> Batch {
        let chosen = (0..<batchSize).map { _ in cases[rng.int(below: cases.count)] }
        let batch = try sampler.batch(chosen, rng: &rng).moved(to: device)
        let (image, label) = try pipeline.apply(image: batch.image, label: batch.label, rng: &rng)
        return Batch(image: image, label: label ?? batch.label, caseIdentifiers: batch.caseIdentifiers)
    }
}
