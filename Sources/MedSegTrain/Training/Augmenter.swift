import Foundation
import MedSegData
import Torch

/// Per-sample augmentation of training patches ([C, spatial...] image, [1, spatial...] label),
/// driven by a seeded generator so a batch is the same whoever makes it and whenever.
///
/// Presets: "nnunet" (mirroring on every axis; multiplicative brightness p 0.15 in 0.75-1.25;
/// contrast p 0.15 in 0.75-1.25; Gaussian noise p 0.1 with variance up to 0.1; gamma p 0.3 in
/// 0.7-1.5), "flip_rotate" (random flips and in-plane 90-degree rotations, p 0.5 each: the
/// UltraLight VM-UNet recipe), "flip" and "none".
struct Augmenter {
    let preset: String
    let dims: Int

    static let presets = ["nnunet", "flip_rotate", "flip", "none"]

    init(preset: String, dims: Int) throws {
        guard Self.presets.contains(preset) else {
            throw ConfigError("key 'augmentation': unknown preset '\(preset)'; available: \(Self.presets.joined(separator: ", "))")
        }
        self.preset = preset
        self.dims = dims
    }

    func apply(_ image: inout Tensor, _ label: inout Tensor, _ rng: inout SplitMix64) throws {
        guard preset != "none" else { return }
        // Mirroring per spatial axis.
        let axes = (0..<dims).filter { _ in rng.uniform() < 0.5 }.map { $0 + 1 }
        if !axes.isEmpty {
            image = try image.flip(axes)
            label = try label.flip(axes)
        }
        if preset == "flip_rotate", rng.uniform() < 0.5 {
            // A quarter turn in the last two axes (only square patches keep their shape).
            if image.size(-1) == image.size(-2) {
                image = try image.transpose(-1, -2).flip([image.rank - 1])
                label = try label.transpose(-1, -2).flip([label.rank - 1])
            }
        }
        guard preset == "nnunet" else { return }
        let channelVoxels = image.count / image.size(0)
        if rng.uniform() < 0.1 {
            let variance = rng.uniform(0, 0.1)
            var noise = [Float](repeating: 0, count: image.count)
            for i in noise.indices { noise[i] = Float(rng.gaussian() * variance.squareRoot()) }
            image = try image + Tensor(noise, shape: image.shape)
        }
        if rng.uniform() < 0.15 { image = try image * rng.uniform(0.75, 1.25) }
        if rng.uniform() < 0.15 {
            // Contrast around the mean, clipped to the original range.
            let factor = rng.uniform(0.75, 1.25)
            let mean = try image.mean(dims: Array(1..<image.rank), keepDim: true)
            let lo = try image.min().item(), hi = try image.max().item()
            image = try ((image - mean) * factor + mean).clamp(min: lo, max: hi)
        }
        if rng.uniform() < 0.3 && channelVoxels > 1 {
            // Gamma on the range-normalized image, keeping mean and standard deviation.
            let gamma = rng.uniform() < 0.5 ? rng.uniform(0.7, 1) : rng.uniform(1, 1.5)
            let mean = try image.mean(), std = try image.std()
            let lo = try image.min(), range = try image.max() - lo
            var t = try ((image - lo) / (range + 1e-7)).pow(gamma) * (range + 1e-7) + lo
            t = try (t - t.mean()) / (t.std() + 1e-7) * std + mean
            image = t
        }
    }
}
