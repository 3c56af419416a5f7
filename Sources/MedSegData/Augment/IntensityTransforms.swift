import Foundation
import Torch

// Intensity augmentation of image batches [B, C, (D,) H, W], following batchgenerators (the
// library behind nnU-Net v2's default training transforms) draw for draw: each transform decides
// per sample with its probability, then per channel where batchgenerators does. Samples (and
// channels) that are not selected are returned bit-for-bit unchanged. Labels pass through.

/// The spatial dimensions of a [B, C, spatial...] tensor (as reduction dims).
private func spatialDims(_ x: Tensor) -> [Int] { Array(2..<x.rank) }

/// A [1, C, 1, ...] tensor of per-channel values, in x's dtype and device.
private func channelValues(_ values: [Double], like x: Tensor) throws -> Tensor {
    let shape = [1, values.count] + [Int](repeating: 1, count: x.rank - 2)
    return try Tensor(values.map(Float.init), shape: shape).movedIfNeeded(device: x.device, dtype: x.dtype)
}

/// Keeps `original` in the channels not flagged (a [1, C, 1, ...] mask), when some are not.
private func selectChannels(_ selected: [Bool], _ changed: Tensor, _ original: Tensor) throws -> Tensor {
    if selected.allSatisfy({ $0 }) { return changed }
    let shape = [1, selected.count] + [Int](repeating: 1, count: original.rank - 2)
    let mask = try Tensor(selected, shape: shape).movedIfNeeded(device: original.device, dtype: .bool)
    return try Tensor.where(mask, changed, original)
}

/// Gaussian noise (nnU-Net: p 0.1 per sample, "variance" drawn from 0-0.1 once per sample).
/// As batchgenerators' augment_gaussian_noise (np.random.normal(0, variance)), the drawn value is
/// used as the noise's standard deviation. Noise comes from the `RandomSource` (CPU) and is moved
/// to the image's device.
public struct GaussianNoiseTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public var probability: Double
    public var variance: ClosedRange<Double>
    /// Draw the variance per channel instead of once per sample.
    public var perChannel: Bool
    public var probabilityPerChannel: Double

    public init(probability: Double = 0.1, variance: ClosedRange<Double> = 0...0.1, perChannel: Bool = false,
                probabilityPerChannel: Double = 1) {
        self.probability = probability; self.variance = variance
        self.perChannel = perChannel; self.probabilityPerChannel = probabilityPerChannel
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let batch = image.size(0), channels = image.size(1)
        let voxels = image.shape.dropFirst(2).reduce(1, *)
        var noise: [Float]? = nil
        for b in 0..<batch where rng.chance(probability) {
            let shared = perChannel ? nil : rng.uniform(in: variance)
            for c in 0..<channels where rng.chance(probabilityPerChannel) {
                let std = shared ?? rng.uniform(in: variance)
                let values = rng.gaussians(count: voxels, std: std)
                if noise == nil { noise = [Float](repeating: 0, count: batch * channels * voxels) }
                let offset = (b * channels + c) * voxels
                noise!.withUnsafeMutableBufferPointer { dst in
                    values.withUnsafeBufferPointer { src in
                        dst.baseAddress!.advanced(by: offset).update(from: src.baseAddress!, count: voxels)
                    }
                }
            }
        }
        guard let noise else { return (image, label) }
        let tensor = try Tensor(noise, shape: image.shape).movedIfNeeded(device: image.device, dtype: image.dtype)
        return (try image + tensor, label)
    }
}

/// Gaussian blur (nnU-Net: p 0.2 per sample, then each channel with p 0.5, sigma 0.5-1 voxels
/// drawn per channel, the same for every axis).
public struct GaussianBlurTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public var probability: Double
    public var sigma: ClosedRange<Double>
    public var probabilityPerChannel: Double
    public var differentSigmaPerChannel: Bool
    public var differentSigmaPerAxis: Bool

    public init(probability: Double = 0.2, sigma: ClosedRange<Double> = 0.5...1, probabilityPerChannel: Double = 0.5,
                differentSigmaPerChannel: Bool = true, differentSigmaPerAxis: Bool = false) {
        self.probability = probability; self.sigma = sigma; self.probabilityPerChannel = probabilityPerChannel
        self.differentSigmaPerChannel = differentSigmaPerChannel; self.differentSigmaPerAxis = differentSigmaPerAxis
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let batch = image.size(0), channels = image.size(1), dims = image.rank - 2
        var ops = [((Tensor) throws -> Tensor)?](repeating: nil, count: batch * channels)
        for b in 0..<batch where rng.chance(probability) {
            let shared = differentSigmaPerChannel ? nil : rng.uniform(in: sigma)
            for c in 0..<channels where rng.chance(probabilityPerChannel) {
                let sigmas: [Double]
                if differentSigmaPerAxis {
                    sigmas = (0..<dims).map { _ in rng.uniform(in: sigma) }
                } else {
                    sigmas = Array(repeating: shared ?? rng.uniform(in: sigma), count: dims)
                }
                ops[b * channels + c] = { try GaussianSmoothing.blur($0, sigmas: sigmas) }
            }
        }
        if ops.allSatisfy({ $0 == nil }) { return (image, label) }
        // Each (sample, channel) is one [1, 1, spatial...] slice of the flattened batch.
        let flat = try image.reshape([batch * channels, 1] + Array(image.shape.suffix(dims)))
        return (try SampleWise.map(flat, ops).reshape(image.shape), label)
    }
}

/// Multiplicative brightness (nnU-Net: p 0.15 per sample, factor 0.75-1.25 per channel).
public struct BrightnessTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public var probability: Double
    public var multiplier: ClosedRange<Double>
    public var perChannel: Bool

    public init(probability: Double = 0.15, multiplier: ClosedRange<Double> = 0.75...1.25, perChannel: Bool = true) {
        self.probability = probability; self.multiplier = multiplier; self.perChannel = perChannel
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let channels = image.size(1)
        let ops: [((Tensor) throws -> Tensor)?] = (0..<image.size(0)).map { _ in
            guard rng.chance(probability) else { return nil }
            let factors: [Double]
            if perChannel {
                factors = (0..<channels).map { _ in rng.uniform(in: multiplier) }
            } else {
                factors = Array(repeating: rng.uniform(in: multiplier), count: channels)
            }
            return { x in try x * channelValues(factors, like: x) }
        }
        return (try SampleWise.map(image, ops), label)
    }
}

/// Contrast (nnU-Net: p 0.15 per sample, factor 0.75-1.25 per channel drawn "balanced"):
/// (x - mean) * factor + mean, then clipped to the channel's original [min, max] when
/// `preserveRange` (the default).
public struct ContrastTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public var probability: Double
    public var factor: ClosedRange<Double>
    public var preserveRange: Bool
    public var perChannel: Bool
    public var probabilityPerChannel: Double

    public init(probability: Double = 0.15, factor: ClosedRange<Double> = 0.75...1.25, preserveRange: Bool = true,
                perChannel: Bool = true, probabilityPerChannel: Double = 1) {
        self.probability = probability; self.factor = factor; self.preserveRange = preserveRange
        self.perChannel = perChannel; self.probabilityPerChannel = probabilityPerChannel
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let channels = image.size(1)
        let ops: [((Tensor) throws -> Tensor)?] = (0..<image.size(0)).map { _ in
            guard rng.chance(probability) else { return nil }
            let shared = perChannel ? nil : rng.balanced(in: factor)
            var selected: [Bool] = [], factors: [Double] = []
            for _ in 0..<channels {
                let on = rng.chance(probabilityPerChannel)
                selected.append(on)
                factors.append(on ? (shared ?? rng.balanced(in: factor)) : 1)
            }
            guard selected.contains(true) else { return nil }
            let preserve = preserveRange
            return { x in
                let dims = spatialDims(x)
                let mean = try x.mean(dims: dims, keepDim: true)
                var y = try (x - mean) * channelValues(factors, like: x) + mean
                if preserve {
                    y = try y.maximum(x.min(dims: dims, keepDim: true)).minimum(x.max(dims: dims, keepDim: true))
                }
                return try selectChannels(selected, y, x)
            }
        }
        return (try SampleWise.map(image, ops), label)
    }
}

/// Simulated low resolution (nnU-Net: p 0.25 per sample, each channel with p 0.5, zoom 0.5-1
/// per channel): downsample to round(shape * zoom) with nearest neighbour, then back up with
/// cubic (2D) or linear (3D: libtorch has no tricubic) interpolation. `ignoreAxes` (spatial,
/// tensor order) keep their size, as nnU-Net does for the low-resolution axis of anisotropic data.
public struct SimulateLowResolutionTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public enum Upsampling: String, Codable, Sendable { case cubic, linear }

    public var probability: Double
    public var zoom: ClosedRange<Double>
    public var perChannel: Bool
    public var probabilityPerChannel: Double
    public var ignoreAxes: [Int]
    public var upsampling: Upsampling

    public init(probability: Double = 0.25, zoom: ClosedRange<Double> = 0.5...1, perChannel: Bool = true,
                probabilityPerChannel: Double = 0.5, ignoreAxes: [Int] = [], upsampling: Upsampling = .cubic) {
        self.probability = probability; self.zoom = zoom; self.perChannel = perChannel
        self.probabilityPerChannel = probabilityPerChannel; self.ignoreAxes = ignoreAxes; self.upsampling = upsampling
    }

    /// round(shape * zoom) (half to even, as numpy), at least 1, ignored axes kept.
    func target(_ shape: [Int], zoom: Double) -> [Int] {
        shape.enumerated().map { axis, s in
            ignoreAxes.contains(axis) ? s : max(1, Int((Double(s) * zoom).rounded(.toNearestOrEven)))
        }
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let batch = image.size(0), channels = image.size(1), dims = image.rank - 2
        let shape = Array(image.shape.suffix(dims))
        let mode: InterpolationMode = upsampling == .cubic && dims == 2 ? .bicubic : (dims == 2 ? .bilinear : .trilinear)
        var ops = [((Tensor) throws -> Tensor)?](repeating: nil, count: batch * channels)
        for b in 0..<batch where rng.chance(probability) {
            let shared = perChannel ? nil : rng.uniform(in: zoom)
            for c in 0..<channels where rng.chance(probabilityPerChannel) {
                let small = target(shape, zoom: shared ?? rng.uniform(in: zoom))
                guard small != shape else { continue }
                ops[b * channels + c] = { x in
                    let down = try F.interpolate(x, size: small, mode: .nearest)
                    return try F.interpolate(down, size: shape, mode: mode, alignCorners: false)
                }
            }
        }
        if ops.allSatisfy({ $0 == nil }) { return (image, label) }
        let flat = try image.reshape([batch * channels, 1] + shape)
        return (try SampleWise.map(flat, ops).reshape(image.shape), label)
    }
}

/// Gamma (nnU-Net: p 0.3, and a second instance on the inverted image with p 0.1; gamma
/// 0.7-1.5 drawn "balanced" per channel): x -> ((x - min) / range)^gamma * range + min, with the
/// channel's mean and standard deviation restored afterwards when `retainStats`.
public struct GammaTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public var probability: Double
    public var gamma: ClosedRange<Double>
    /// Apply to -x (and negate back), which brightens where plain gamma darkens.
    public var invert: Bool
    public var retainStats: Bool
    public var perChannel: Bool

    public init(probability: Double = 0.3, gamma: ClosedRange<Double> = 0.7...1.5, invert: Bool = false,
                retainStats: Bool = true, perChannel: Bool = true) {
        self.probability = probability; self.gamma = gamma; self.invert = invert
        self.retainStats = retainStats; self.perChannel = perChannel
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let channels = image.size(1)
        let ops: [((Tensor) throws -> Tensor)?] = (0..<image.size(0)).map { _ in
            guard rng.chance(probability) else { return nil }
            let shared = perChannel ? nil : rng.balanced(in: gamma)
            let gammas = (0..<channels).map { _ in shared ?? rng.balanced(in: gamma) }
            return { x in try self.transform(x, gammas: gammas) }
        }
        return (try SampleWise.map(image, ops), label)
    }

    /// The gamma change of one sample [1, C, spatial...] with a gamma per channel.
    public func transform(_ x: Tensor, gammas: [Double]) throws -> Tensor {
        let dims = spatialDims(x)
        let epsilon = 1e-7
        let input = invert ? try -x : x
        let low = try input.min(dims: dims, keepDim: true)
        let range = try input.max(dims: dims, keepDim: true) - low + epsilon
        var y = try ((input - low) / range).pow(channelValues(gammas, like: x)) * range + low
        if retainStats {
            let mean = try input.mean(dims: dims, keepDim: true)
            let std = try input.std(dims: dims, correction: 0, keepDim: true)
            y = try y - y.mean(dims: dims, keepDim: true)
            y = try y / (y.std(dims: dims, correction: 0, keepDim: true) + 1e-8) * std + mean
        }
        return invert ? try -y : y
    }
}
