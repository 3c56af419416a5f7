import MedSegData
import Torch

/// The training batches of one rank and epoch: cases drawn at random (with repeats) from the
/// rank's share, patches with foreground oversampling, then the augmentation pipeline on the
/// training device (patches are cut on the CPU and sent pinned and non-blocking, so the
/// spatial and intensity transforms run on the GPU when training does). Only reads shared
/// tensors, so the loader's workers can call it at once.
///
/// Volumes with a 2D patch train slice by slice, as nnU-Net's 2d configuration: each window is
/// one slice deep (so a forced-foreground sample lands on a slice that holds the class, the others
/// on a random slice), and the slice axis is dropped before the 2D augmentation.
struct TrainingBatches: BatchSource {
    let cases: [PatchCase]
    let batchSize: Int
    let sampler: PatchSampler
    let pipeline: AugmentationPipeline
    var device: Device = .cpu

    func makeBatch(index: Int, rng: inout RandomSource) throws -> Batch {
        let chosen = (0..<batchSize).map { _ in cases[rng.int(below: cases.count)] }
        var batch: Batch
        if chosen[0].shape.count == sampler.patchSize.count + 1 {
            var slices = sampler
            slices.patchSize = [1] + sampler.patchSize
            slices.margin = sampler.margin.isEmpty ? [] : [0] + sampler.margin
            batch = try slices.batch(chosen, rng: &rng)
            batch.image = try batch.image.squeeze(dim: 2)
            batch.label = try batch.label.squeeze(dim: 2)
        } else {
            batch = try sampler.batch(chosen, rng: &rng)
        }
        batch = try batch.moved(to: device)
        let (image, label) = try pipeline.apply(image: batch.image, label: batch.label, rng: &rng)
        return Batch(image: image, label: label ?? batch.label, caseIdentifiers: batch.caseIdentifiers)
    }
}
