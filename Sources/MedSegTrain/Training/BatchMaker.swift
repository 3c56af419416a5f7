import Foundation
import MedSegData
import Torch

/// Builds training batches from cases in memory: random cases, random patches, a fraction of
/// each batch centred on foreground (nnU-Net's oversampling), then augmentation.
struct BatchMaker {
    let cases: [LoadedCase]
    let patchSize: [Int]
    let batchSize: Int
    let oversampleForeground: Double
    let augment: (inout Tensor, inout Tensor, inout SplitMix64) throws -> Void

    /// Batch `index` of `epoch`: the same numbers for the same (seed, epoch, index) whoever makes it.
    func batch(seed: UInt64, epoch: Int, index: Int) throws -> (image: Tensor, label: Tensor) {
        var rng = SplitMix64(seed: seed &* 1_000_003 &+ UInt64(epoch) &* 10_007 &+ UInt64(index))
        let forced = Int((Double(batchSize) * oversampleForeground).rounded())
        var images: [Tensor] = [], labels: [Tensor] = []
        for sample in 0..<batchSize {
            let c = cases[rng.int(below: cases.count)]
            let wantForeground = sample >= batchSize - forced
            var (image, label) = try crop(c, foreground: wantForeground, rng: &rng)
            try augment(&image, &label, &rng)
            images.append(image)
            labels.append(label)
        }
        return (try Tensor.stack(images), try Tensor.stack(labels))
    }

    /// A patch (zero-padded where it leaves the image), centred on a random foreground voxel
    /// of a random present class when asked and possible.
    func crop(_ c: LoadedCase, foreground: Bool, rng: inout SplitMix64) throws -> (Tensor, Tensor) {
        let shape = c.shape
        var start: [Int] = []
        let present = c.foreground.indices.filter { !c.foreground[$0].isEmpty }
        if foreground, !present.isEmpty {
            let voxels = c.foreground[present[rng.int(below: present.count)]]
            var flat = voxels[rng.int(below: voxels.count)]
            // Flat index is x fastest; tensor order is (z,) y, x.
            var coords = [Int](repeating: 0, count: shape.count)
            for axis in (0..<shape.count).reversed() { coords[axis] = flat % shape[axis]; flat /= shape[axis] }
            start = zip(coords, patchSize).map { $0 - $1 / 2 }
        } else {
            // The patch may reach beyond the image by up to half a patch on each side, as nnU-Net.
            start = zip(shape, patchSize).map { s, p in
                let low = -p / 2, high = max(s - p + p / 2, low)
                return low + rng.int(below: high - low + 1)
            }
        }
        return (try cut(c.image, start: start), try cut(c.label!, start: start))
    }

    /// The window [start, start + patch) of a [C, spatial...] tensor, zero where outside.
    func cut(_ t: Tensor, start: [Int]) throws -> Tensor {
        var view = t
        var padding: [Int] = []
        for (axis, (s, p)) in zip(start, patchSize).enumerated() {
            let size = t.size(axis + 1)
            let lo = max(0, s), hi = min(size, s + p)
            view = try view.narrow(dim: axis + 1, start: lo, length: max(0, hi - lo))
            padding = [max(0, -s), max(0, s + p - size)] + padding
        }
        return padding.allSatisfy({ $0 == 0 }) ? try view.contiguous() : try view.pad(padding)
    }
}
