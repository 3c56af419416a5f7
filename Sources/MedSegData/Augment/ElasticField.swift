import Foundation
import Torch

/// A random displacement field: uniform noise in [-1, 1] per voxel and axis, smoothed by a
/// Gaussian of `sigma` voxels (zero beyond the patch) and multiplied by `alpha` voxels (batchgenerators' elastic
/// deformation), regenerated from `seed`.
///
/// For speed the noise is drawn on a grid coarser by f = max(1, floor(sigma / 3)), smoothed with
/// sigma / f, scaled by f^(-d/2) (so its amplitude matches the full-resolution field) and
/// upsampled linearly to the patch.
public struct ElasticField: Equatable, Codable, Sendable {
    public var alpha: Double
    public var sigma: Double
    public var seed: UInt64

    public init(alpha: Double, sigma: Double, seed: UInt64) {
        self.alpha = alpha; self.sigma = sigma; self.seed = seed
    }

    /// Displacement in voxels, [dims, spatial...] in tensor axis order, float32 on `device`.
    public func displacement(size: [Int], device: Device = .cpu) throws -> Tensor {
        let n = size.count
        let factor = max(1, Int(sigma / 3))
        let coarse = size.map { max(1, ($0 + factor - 1) / factor) }
        var rng = RandomSource(seed: seed)
        let noise = try rng.uniformTensor([n, 1] + coarse, -1, 1, device: device)
        // Zero outside the patch, as batchgenerators (gaussian_filter mode "constant").
        var field = try GaussianSmoothing.blur(noise, sigmas: Array(repeating: sigma / Double(factor), count: n), zeroPadding: true)
        if coarse != size {
            field = try F.interpolate(field, size: size, mode: n == 2 ? .bilinear : .trilinear, alignCorners: true)
        }
        let amplitude = alpha * Foundation.pow(Double(factor), -Double(n) / 2)
        return try (field * amplitude).reshape([n] + size)
    }
}
