import Foundation
import Torch

// Helpers shared by the augmentation and loading files.
/// Applies a per-sample operation to the samples of a batch that have one.
enum SampleWise {
    static func map(_ x: Tensor, _ ops: [((Tensor) throws -> Tensor)?]) throws -> Tensor {
        if ops.allSatisfy({ $0 == nil }) { return x }
        var parts: [Tensor] = []
        parts.reserveCapacity(ops.count)
        for (b, op) in ops.enumerated() {
            let sample = try x.narrow(dim: 0, start: b, length: 1)
            parts.append(try op.map { try $0(sample) } ?? sample)
        }
        return try Tensor.cat(parts).contiguous()
    }
}

/// Windows of tensors with zero padding where the window leaves the data.
enum TensorWindow {
    /// The window [start, start + size) of the spatial dims (starting at `firstSpatialDim`),
    /// zero (or `value`) where it lies outside the tensor.
    static func cut(_ t: Tensor, start: [Int], size: [Int], firstSpatialDim: Int, value: Double = 0) throws -> Tensor {
        var view = t
        var padding: [Int] = []
        var needsPad = false
        for (axis, (s, p)) in zip(start, size).enumerated() {
            let extent = t.size(axis + firstSpatialDim)
            let lo = min(max(0, s), extent), hi = max(min(extent, s + p), lo)
            view = try view.narrow(dim: axis + firstSpatialDim, start: lo, length: hi - lo)
            let before = min(p, max(0, -s)), after = p - before - (hi - lo)
            padding = [before, after] + padding
            needsPad = needsPad || before > 0 || after > 0
        }
        guard needsPad else { return try view.contiguous() }
        // Constant padding of an empty dimension is not allowed: build from zeros then.
        if view.count == 0 {
            var shape = t.shape
            for (axis, p) in size.enumerated() { shape[axis + firstSpatialDim] = p }
            return try Tensor.full(shape, value, dtype: t.dtype, device: t.device)
        }
        return try view.pad(padding, mode: .constant, value: value)
    }
}

/// Separable Gaussian smoothing of [N, C, spatial...] tensors, each (n, c) slice on its own,
/// with kernels truncated at 4 sigma (scipy.ndimage's default) and edge-replicating padding.
enum GaussianSmoothing {
    static func kernel(sigma: Double, truncate: Double = 4) -> [Float] {
        let radius = max(1, Int(truncate * sigma + 0.5))
        let weights = (-radius...radius).map { Foundation.exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = weights.reduce(0, +)
        return weights.map { Float($0 / total) }
    }

    /// Blurs along each spatial axis whose sigma (voxels) is above 0; outside the data counts
    /// as the nearest edge value (`zeroPadding` false) or as 0.
    static func blur(_ x: Tensor, sigmas: [Double], zeroPadding: Bool = false) throws -> Tensor {
        let n = x.rank - 2
        guard sigmas.count == n else { throw DataError("blur needs \(n) sigmas, got \(sigmas.count)") }
        let shape = x.shape
        var y = try x.reshape([shape[0] * shape[1], 1] + Array(shape.suffix(n)))
        for axis in 0..<n where sigmas[axis] > 0 {
            let k = kernel(sigma: sigmas[axis])
            let radius = (k.count - 1) / 2
            var weightShape = [Int](repeating: 1, count: n + 2)
            weightShape[axis + 2] = k.count
            let weight = try Tensor(k, shape: weightShape).movedIfNeeded(device: x.device, dtype: x.dtype)
            if zeroPadding {
                var padding = [Int](repeating: 0, count: n)
                padding[axis] = radius
                y = try F.conv(y, weight: weight, padding: padding)
            } else {
                var padding: [Int] = []
                for a in (0..<n).reversed() { padding += a == axis ? [radius, radius] : [0, 0] }
                y = try F.conv(y.pad(padding, mode: .replicate), weight: weight)
            }
        }
        return try y.reshape(shape)
    }
}
