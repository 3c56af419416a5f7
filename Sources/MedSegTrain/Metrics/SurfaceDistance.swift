import Foundation

/// Distances between the surfaces of two binary masks, in physical units: the 95th-percentile
/// Hausdorff distance and the normalized surface Dice. `size` is x-fastest ([x, y] or [x, y, z]);
/// `spacing` in the same order.
public enum SurfaceDistance {
    /// Each surface voxel's distance to the other mask's surface: prediction's to reference's and
    /// reference's to prediction's; nil when either surface is empty.
    public static func distances(prediction: [Bool], reference: [Bool], size: [Int], spacing: [Double])
        -> (predictionToReference: [Double], referenceToPrediction: [Double])? {
        let predSurface = surface(prediction, size: size)
        let refSurface = surface(reference, size: size)
        guard predSurface.contains(true), refSurface.contains(true) else { return nil }
        let toRef = distanceToNearest(refSurface, size: size, spacing: spacing)
        let toPred = distanceToNearest(predSurface, size: size, spacing: spacing)
        return (predSurface.indices.filter { predSurface[$0] }.map { toRef[$0] },
                refSurface.indices.filter { refSurface[$0] }.map { toPred[$0] })
    }

    /// The 95th-percentile Hausdorff distance (MedPy's hd95: the larger of the two directed 95th
    /// percentiles of surface-to-surface distances). NaN when either mask is empty.
    public static func hd95(prediction: [Bool], reference: [Bool], size: [Int], spacing: [Double]) -> Double {
        guard let d = distances(prediction: prediction, reference: reference, size: size, spacing: spacing) else { return .nan }
        return hd95(d)
    }

    static func hd95(_ d: (predictionToReference: [Double], referenceToPrediction: [Double])) -> Double {
        max(percentile(d.predictionToReference, 95), percentile(d.referenceToPrediction, 95))
    }

    /// Normalized surface Dice at `tolerance` (mm): the share of both surfaces' voxels within
    /// `tolerance` of the other surface (MONAI's compute_surface_dice on boundary voxels). NaN
    /// when both masks are empty, 0 when only one is.
    public static func surfaceDice(prediction: [Bool], reference: [Bool], size: [Int], spacing: [Double], tolerance: Double) -> Double {
        guard let d = distances(prediction: prediction, reference: reference, size: size, spacing: spacing) else {
            return prediction.contains(true) || reference.contains(true) ? 0 : .nan
        }
        return surfaceDice(d, tolerance: tolerance)
    }

    static func surfaceDice(_ d: (predictionToReference: [Double], referenceToPrediction: [Double]), tolerance: Double) -> Double {
        let within = d.predictionToReference.filter { $0 <= tolerance }.count + d.referenceToPrediction.filter { $0 <= tolerance }.count
        return Double(within) / Double(d.predictionToReference.count + d.referenceToPrediction.count)
    }

    /// Mask voxels with at least one face-neighbour outside the mask (or at the border).
    static func surface(_ mask: [Bool], size: [Int]) -> [Bool] {
        let strides = strides(size)
        var out = [Bool](repeating: false, count: mask.count)
        for i in mask.indices where mask[i] {
            var rest = i
            var coords = [Int](repeating: 0, count: size.count)
            for a in (0..<size.count).reversed() { coords[a] = rest / strides[a]; rest %= strides[a] }
            for a in 0..<size.count {
                let low = coords[a] == 0 || !mask[i - strides[a]]
                let high = coords[a] == size[a] - 1 || !mask[i + strides[a]]
                if low || high { out[i] = true; break }
            }
        }
        return out
    }

    static func strides(_ size: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: size.count)
        for a in 1..<max(1, size.count) { s[a] = s[a - 1] * size[a - 1] }
        return s
    }

    /// Exact Euclidean distance from every voxel to the nearest `true` voxel (separable squared
    /// distance transform, Felzenszwalb & Huttenlocher), with anisotropic spacing.
    static func distanceToNearest(_ seeds: [Bool], size: [Int], spacing: [Double]) -> [Double] {
        let infinity = 1e20
        var d = seeds.map { $0 ? 0.0 : infinity }
        let strides = strides(size)
        for axis in 0..<size.count {
            let n = size[axis], stride = strides[axis], w = spacing[axis] * spacing[axis]
            var line = [Double](repeating: 0, count: n), result = [Double](repeating: 0, count: n)
            // Every line along `axis` starts at an index whose coordinate on that axis is 0.
            for start in 0..<d.count where (start / stride) % n == 0 {
                for k in 0..<n { line[k] = d[start + k * stride] }
                transform1D(line, weight: w, into: &result)
                for k in 0..<n { d[start + k * stride] = result[k] }
            }
        }
        return d.map { $0.squareRoot() }
    }

    /// 1D squared distance transform: out[q] = min_p (w (q - p)^2 + f[p]).
    private static func transform1D(_ f: [Double], weight w: Double, into out: inout [Double]) {
        let n = f.count
        var v = [Int](repeating: 0, count: n), z = [Double](repeating: 0, count: n + 1)
        var k = 0
        z[0] = -.infinity; z[1] = .infinity
        for q in 1..<max(n, 1) {
            var s: Double
            repeat {
                let p = v[k]
                s = ((f[q] + w * Double(q * q)) - (f[p] + w * Double(p * p))) / (2 * w * Double(q - p))
                if s <= z[k] { k -= 1 } else { break }
            } while k >= 0
            k += 1
            v[k] = q; z[k] = s; z[k + 1] = .infinity
        }
        k = 0
        for q in 0..<n {
            while z[k + 1] < Double(q) { k += 1 }
            let p = v[k]
            out[q] = w * Double((q - p) * (q - p)) + f[p]
        }
    }

    /// Linear-interpolated percentile, as numpy.percentile's default.
    static func percentile(_ values: [Double], _ p: Double) -> Double {
        guard !values.isEmpty else { return .nan }
        let sorted = values.sorted()
        let position = p / 100 * Double(sorted.count - 1)
        let lower = Int(position.rounded(.down)), upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - Double(lower))
    }
}
