import Foundation

/// Resampling to a target spacing as nnU-Net does it (`resample_data_or_seg_to_shape`), on the
/// CPU in Double precision, one axis at a time (spline interpolation is a tensor product, so the
/// separable passes equal the full N-D interpolation).
///
/// - Images: cubic **B-spline** (scipy/skimage spline order 3, with the interpolating prefilter),
///   then clipped to the input's range (skimage `resize(..., clip=True)`).
/// - Labels: per label (one-hot, linear interpolation, argmax; nnU-Net's order 1 per label), or
///   nearest neighbour (order 0).
/// - Anisotropic 3D data (max spacing / min spacing > 3, judged on the current spacing and then
///   on the target spacing): the in-plane axes as above and the coarse axis with order 0
///   ("separate z"); images are then clipped per slice, as nnU-Net resizes each slice separately.
///
/// Grid mapping: output voxel `j` samples input coordinate `(j + 0.5) * old / new - 0.5`
/// (voxel centres, skimage's `resize` and `scipy.ndimage.zoom(..., grid_mode=True)`).
/// Boundary: `mode='nearest'` (skimage `mode='edge'`): the spline prefilter runs on the line
/// padded by 12 edge-replicated samples with mirror boundary conditions, exactly as
/// scipy's `zoom`/`map_coordinates` do for `'nearest'`, and sample indices are clamped.
/// New size per axis: `round(old size * old spacing / new spacing)`, halves to even as nnU-Net's `np.round`.
public enum Resampling {
    public enum Order: Int, Codable, Sendable {
        case nearest = 0, linear = 1, cubic = 3
    }

    /// The interpolation of each resampling that nnU-Net's plans configure (`resampling_fn_*_kwargs`:
    /// `order` in plane, `order_z` along a separately resampled anisotropic axis). The defaults are
    /// nnU-Net's: images cubic, labels per-label linear, logits linear (back to the raw grid), and
    /// nearest along the separate axis.
    public struct Orders: Codable, Equatable, Sendable {
        public var image: Order = .cubic
        public var imageZ: Order = .nearest
        public var label: Order = .linear
        public var labelZ: Order = .nearest
        public var logits: Order = .linear
        public var logitsZ: Order = .nearest

        public init() {}

        /// Whether preprocessing (images and labels) resamples the same way.
        public func preprocessesLike(_ other: Orders) -> Bool {
            image == other.image && imageZ == other.imageZ && label == other.label && labelZ == other.labelZ
        }
    }

    /// nnU-Net's anisotropy threshold for resampling the coarse axis separately.
    public static let anisotropyThreshold = 3.0

    /// The most voxels a resampled image may have (2^31: about 8 GiB of float32 per channel).
    public static let largestResampledVoxels = 1 << 31

    /// Refuses resampling that cannot work: a spacing (the image's or the target) that is not a
    /// positive number, or a target so fine that the image would exceed `largestResampledVoxels`.
    /// `file` is named in the error, `source` says where the target came from.
    public static func checkResampling(size: [Int], spacing: [Double], target: [Double], file: URL, source: String = "the plans") throws {
        if let bad = spacing.first(where: { !($0.isFinite && $0 > 0) }) {
            throw DataError(file: file, "its spacing \(spacing) holds \(bad): each must be a positive number (fix the image header)")
        }
        if let bad = target.first(where: { !($0.isFinite && $0 > 0) }) {
            throw DataError(file: file, "the target spacing \(target) from \(source) holds \(bad): each must be a positive number")
        }
        var voxels = 1.0
        for (n, (s, t)) in zip(size, zip(spacing, target)) { voxels *= max(1, (Double(n) * s / t).rounded()) }
        guard voxels <= Double(largestResampledVoxels) else {
            throw DataError(file: file, "resampling from spacing \(spacing) to \(target) (\(source)) would make \(Int64(min(voxels, 9e18))) voxels from \(size.reduce(1, *)); check the target spacing")
        }
    }

    /// Output size for `spacing` -> `target` (same axis order as `size`).
    public static func newSize(_ size: [Int], spacing: [Double], target: [Double]) -> [Int] {
        zip(size, zip(spacing, target)).map { max(1, Int((Double($0) * $1.0 / $1.1).rounded(.toNearestOrEven))) }
    }

    /// The axis to resample with order 0, or nil: nnU-Net's `get_do_separate_z` /
    /// `get_lowres_axis` on the current spacing, then on the target spacing; only for 3D data
    /// with exactly one coarsest axis.
    public static func separateAxis(spacing: [Double], target: [Double]) -> Int? {
        guard spacing.count == 3 else { return nil }
        for s in [spacing, target] {
            guard let mx = s.max(), let mn = s.min(), mn > 0, mx / mn > anisotropyThreshold else { continue }
            let axes = s.indices.filter { s[$0] == mx }
            return axes.count == 1 ? axes[0] : nil
        }
        return nil
    }

    /// Resamples an image (every channel) to `target` spacing (x first, as the geometry's).
    /// `separateZ` nil decides by nnU-Net's anisotropy rule.
    public static func resampleImage(_ image: MedicalImage, to target: [Double], separateZ: Bool? = nil, order: Order = .cubic,
                                     orderZ: Order = .nearest) -> MedicalImage {
        let size = newSize(image.size, spacing: image.geometry.spacing, target: target)
        let axis = (separateZ ?? true) ? separateAxis(spacing: image.geometry.spacing, target: target) : nil
        let out = resampleImage(image.voxels, size: image.size, channels: image.channels, to: size, separateAxis: axis, order: order, orderZ: orderZ)
        var geometry = image.geometry
        geometry.spacing = zip(image.geometry.spacing, zip(image.size, size)).map { $0 * Double($1.0) / Double($1.1) }
        geometry.niftiAffine = nil
        return MedicalImage(size: size, channels: image.channels, voxels: out, pixelType: .float32, geometry: geometry)
    }

    /// Resamples a label map (values are class indices) to `target` spacing, per label linear
    /// (`.linear`) or nearest (`.nearest`).
    public static func resampleLabel(_ label: MedicalImage, to target: [Double], order: Order = .linear, separateZ: Bool? = nil,
                                     orderZ: Order = .nearest) -> MedicalImage {
        let size = newSize(label.size, spacing: label.geometry.spacing, target: target)
        let axis = (separateZ ?? true) ? separateAxis(spacing: label.geometry.spacing, target: target) : nil
        let out = resampleLabel(label.voxels, size: label.size, to: size, order: order, separateAxis: axis, orderZ: orderZ)
        var geometry = label.geometry
        geometry.spacing = zip(label.geometry.spacing, zip(label.size, size)).map { $0 * Double($1.0) / Double($1.1) }
        geometry.niftiAffine = nil
        return MedicalImage(size: size, channels: 1, voxels: out, pixelType: label.pixelType, geometry: geometry)
    }

    /// Image resampling on raw voxels (x first, channel-major): `order` (cubic B-spline by default)
    /// on every axis but `separateAxis` (`orderZ` there, nearest by default), clipped to each
    /// channel's range (each slice's range with a separate axis) before the separate axis.
    public static func resampleImage(_ voxels: [Float], size: [Int], channels: Int, to newSize: [Int], separateAxis: Int? = nil,
                                     order: Order = .cubic, orderZ: Order = .nearest) -> [Float] {
        if size == newSize { return voxels }
        var data = voxels.map(Double.init)
        var current = size
        let n = size.reduce(1, *)
        // Ranges to clip to: per channel, or per channel and slice along the separate axis.
        var ranges: [(Double, Double)] = []
        if let z = separateAxis {
            let count = size[z]
            for c in 0..<channels {
                for k in 0..<count {
                    var lo = Double.infinity, hi = -Double.infinity
                    forEachIndex(size: size, axis: z, at: k) { i in
                        let v = data[c * n + i]; lo = min(lo, v); hi = max(hi, v)
                    }
                    ranges.append((lo, hi))
                }
            }
        } else {
            for c in 0..<channels {
                let slice = data[(c * n)..<((c + 1) * n)]
                ranges.append((slice.min() ?? 0, slice.max() ?? 0))
            }
        }
        let passes = (0..<size.count).filter { $0 != separateAxis && newSize[$0] != size[$0] }
        // Without a separate axis the last pass is clipped and stored as Float as it is made: the
        // volume is never held a third time in Double.
        let streamed = separateAxis == nil ? passes.last : nil
        for a in passes where a != streamed {
            data = resampleAxis(data, size: current, channels: channels, axis: a, to: newSize[a], order: order)
            current[a] = newSize[a]
        }
        // Clip (skimage resize clip=True).
        if let a = streamed {
            let total = newSize.reduce(1, *)
            var out = [Float](repeating: 0, count: channels * total)
            out.withUnsafeMutableBufferPointer { o in
                resampleAxisStreamed(data, size: current, channels: channels, axis: a, to: newSize[a], order: order) { start, row in
                    let (lo, hi) = ranges[start / total]
                    for x in row.indices { o[start + x] = Float(min(max(row[x], lo), hi)) }
                }
            }
            return out
        }
        let m = current.reduce(1, *)
        if let z = separateAxis {
            for c in 0..<channels {
                for k in 0..<current[z] {
                    let (lo, hi) = ranges[c * current[z] + k]
                    forEachIndex(size: current, axis: z, at: k) { i in data[c * m + i] = min(max(data[c * m + i], lo), hi) }
                }
            }
            if newSize[z] != current[z] {
                // The separate axis last, stored as Float as it is made.
                var out = [Float](repeating: 0, count: channels * newSize.reduce(1, *))
                out.withUnsafeMutableBufferPointer { o in
                    resampleAxisStreamed(data, size: current, channels: channels, axis: z, to: newSize[z], order: orderZ) { start, row in
                        for x in row.indices { o[start + x] = Float(row[x]) }
                    }
                }
                return out
            }
        } else {
            for c in 0..<channels {
                let (lo, hi) = ranges[c]
                for i in (c * m)..<((c + 1) * m) { data[i] = min(max(data[i], lo), hi) }
            }
        }
        return data.map { Float($0) }
    }

    /// Label resampling on raw voxels (x first, one channel of class indices).
    public static func resampleLabel(_ voxels: [Float], size: [Int], to newSize: [Int], order: Order = .linear, separateAxis: Int? = nil,
                                     orderZ: Order = .nearest) -> [Float] {
        if size == newSize { return voxels }
        if order == .nearest {
            var data = voxels.map(Double.init), current = size
            for a in 0..<size.count where newSize[a] != current[a] {
                data = resampleAxis(data, size: current, channels: 1, axis: a, to: newSize[a], order: .nearest)
                current[a] = newSize[a]
            }
            return data.map { Float($0) }
        }
        let values = Array(Set(voxels.lazy.map { Int($0.rounded()) })).sorted()
        let m = newSize.reduce(1, *)
        var best = [Double](repeating: -.infinity, count: m)
        var out = [Float](repeating: Float(values.first ?? 0), count: m)
        let passes = (0..<size.count).filter { newSize[$0] != size[$0] }
        for value in values {
            var data = voxels.map { Int($0.rounded()) == value ? 1.0 : 0.0 }
            var current = size
            for a in passes.dropLast() {
                data = resampleAxis(data, size: current, channels: 1, axis: a, to: newSize[a], order: a == separateAxis ? orderZ : order)
                current[a] = newSize[a]
            }
            // The last pass goes straight into the argmax; ties go to the smaller label (the first one seen).
            let a = passes[passes.count - 1]
            best.withUnsafeMutableBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in
                    resampleAxisStreamed(data, size: current, channels: 1, axis: a, to: newSize[a], order: a == separateAxis ? orderZ : order) { start, row in
                        for x in row.indices where row[x] > b[start + x] {
                            b[start + x] = row[x]
                            o[start + x] = Float(value)
                        }
                    }
                }
            }
        }
        return out
    }

    /// `resampleAxis` handed out a block at a time instead of returned whole: `body(start, row)`
    /// gets output values `start ..< start + row.count` of the array `resampleAxis` would return
    /// (within one outer index: one channel),
    /// each the same sum in the same order (a block is resampled by `resampleAxis` itself, on a
    /// gathered part of the lines). Memory: the block, not another volume in Double.
    static func resampleAxisStreamed(_ data: [Double], size: [Int], channels: Int, axis: Int, to m: Int, order: Order,
                                     block: Int = 1 << 18, _ body: (_ start: Int, _ row: UnsafeBufferPointer<Double>) -> Void) {
        let n = size[axis]
        let inner = size[0..<axis].reduce(1, *)
        let outer = channels * size[(axis + 1)...].reduce(1, *)
        let lines = n * inner   // the input of one outer index: contiguous
        if lines <= 64 * block {
            // Whole outer indices (for an in-plane axis: slices), as many as make about a block.
            let count = max(1, block / max(lines, 1))
            for o0 in stride(from: 0, to: outer, by: count) {
                let c = min(count, outer - o0)
                let part = Array(data[(o0 * lines)..<((o0 + c) * lines)])
                let resampled = resampleAxis(part, size: [inner, n], channels: c, axis: 1, to: m, order: order)
                let each = m * inner   // one outer index per call: a row never spans two channels
                resampled.withUnsafeBufferPointer { r in
                    for k in 0..<c { body((o0 + k) * each, UnsafeBufferPointer(rebasing: r[(k * each)..<((k + 1) * each)])) }
                }
            }
            return
        }
        // The slowest axis of a large volume: a band of positions along the faster axes, each of
        // its lines whole, gathered into a small array.
        let width = max(1, min(inner, block / max(n * outer, 1)))
        for i0 in stride(from: 0, to: inner, by: width) {
            let w = min(width, inner - i0)
            var part = [Double](repeating: 0, count: outer * n * w)
            data.withUnsafeBufferPointer { src in
                part.withUnsafeMutableBufferPointer { dst in
                    for line in 0..<(outer * n) {
                        for x in 0..<w { dst[line * w + x] = src[line * inner + i0 + x] }
                    }
                }
            }
            let resampled = resampleAxis(part, size: [w, n], channels: outer, axis: 1, to: m, order: order)
            resampled.withUnsafeBufferPointer { r in
                for line in 0..<(outer * m) {
                    body(line * inner + i0, UnsafeBufferPointer(rebasing: r[(line * w)..<((line + 1) * w)]))
                }
            }
        }
    }

    /// Calls `body` with the flat index of every voxel whose coordinate along `axis` is `k`.
    static func forEachIndex(size: [Int], axis: Int, at k: Int, _ body: (Int) -> Void) {
        let inner = size[0..<axis].reduce(1, *), n = size[axis]
        let outer = size[(axis + 1)...].reduce(1, *)
        for o in 0..<outer {
            let base = (o * n + k) * inner
            for i in 0..<inner { body(base + i) }
        }
    }

    /// 1D resampling of every line along `axis` of an x-first, channel-major array.
    public static func resampleAxis(_ data: [Double], size: [Int], channels: Int, axis: Int, to m: Int, order: Order) -> [Double] {
        let n = size[axis]
        let inner = size[0..<axis].reduce(1, *)
        let outer = channels * size[(axis + 1)...].reduce(1, *)
        let taps = Taps(n: n, m: m, order: order)
        var out = [Double](repeating: 0, count: outer * m * inner)
        var line = [Double](repeating: 0, count: n)
        var coefficients = [Double](repeating: 0, count: n + 2 * Taps.pad)
        let width = taps.width
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                taps.indices.withUnsafeBufferPointer { indices in
                    taps.weights.withUnsafeBufferPointer { weights in
                        // Each output adds its taps from 0 in order (the same sums whatever the layout).
                        func apply(_ c: UnsafeBufferPointer<Double>, _ dBase: Int) {
                            for j in 0..<m {
                                var v = 0.0
                                let start = j * width
                                for t in 0..<width { v += weights[start + t] * c[indices[start + t]] }
                                dst[dBase + j * inner] = v
                            }
                        }
                        if order != .cubic && inner > 1 {
                            // Whole rows at once (contiguous, vectorizable): row j of the output is the
                            // weighted sum of its taps' rows, each element added up in the same order.
                            for o in 0..<outer {
                                for j in 0..<m {
                                    let row = dst.baseAddress! + o * m * inner + j * inner
                                    for t in 0..<width {
                                        let w = weights[j * width + t], from = src.baseAddress! + o * n * inner + indices[j * width + t] * inner
                                        for i in 0..<inner { row[i] += w * from[i] }
                                    }
                                }
                            }
                            return
                        }
                        for o in 0..<outer {
                            for i in 0..<inner {
                                let sBase = o * n * inner + i, dBase = o * m * inner + i
                                if order == .cubic {
                                    for k in 0..<n { line[k] = src[sBase + k * inner] }
                                    Taps.prefilter(line, into: &coefficients)
                                    coefficients.withUnsafeBufferPointer { apply($0, dBase) }
                                } else if inner == 1 {
                                    // Lines along the fastest axis are contiguous: read them in place.
                                    apply(UnsafeBufferPointer(rebasing: src[sBase..<(sBase + n)]), dBase)
                                } else {
                                    for k in 0..<n { line[k] = src[sBase + k * inner] }
                                    line.withUnsafeBufferPointer { apply($0, dBase) }
                                }
                            }
                        }
                    }
                }
            }
        }
        return out
    }

    /// The input samples (indices into the line of `n`) and weights of each of the `m` outputs of
    /// a nearest or linear resampling: output `j` is `sum over t < width of weights[j * width + t] * line[indices[j * width + t]]`,
    /// added up in that order from 0, as `resampleAxis` does (cubic needs the whole line's prefilter).
    public static func lineTaps(from n: Int, to m: Int, order: Order) -> (width: Int, indices: [Int], weights: [Double]) {
        precondition(order != .cubic, "cubic resampling filters the whole line")
        let taps = Taps(n: n, m: m, order: order)
        return (taps.width, taps.indices, taps.weights)
    }

    /// Precomputed sample indices and weights for resampling a line of `n` samples to `m`.
    struct Taps {
        /// Edge-replicated samples added on each side before the cubic prefilter (scipy's npad).
        static let pad = 12
        let width: Int
        var indices: [Int]
        var weights: [Double]

        init(n: Int, m: Int, order: Order) {
            let scale = Double(n) / Double(m)
            switch order {
            case .nearest: width = 1
            case .linear: width = 2
            case .cubic: width = 4
            }
            indices = []
            weights = []
            indices.reserveCapacity(m * width)
            weights.reserveCapacity(m * width)
            for j in 0..<m {
                let x = (Double(j) + 0.5) * scale - 0.5
                switch order {
                case .nearest:
                    indices.append(min(max(Int((x + 0.5).rounded(.down)), 0), n - 1))
                    weights.append(1)
                case .linear:
                    let f = x.rounded(.down), t = x - f, i0 = Int(f)
                    indices += [min(max(i0, 0), n - 1), min(max(i0 + 1, 0), n - 1)]
                    weights += [1 - t, t]
                case .cubic:
                    let f = x.rounded(.down), t = x - f, i0 = Int(f) - 1 + Self.pad
                    let last = n + 2 * Self.pad - 1
                    for k in 0..<4 { indices.append(min(max(i0 + k, 0), last)) }
                    let u = 1 - t
                    weights += [u * u * u / 6, (4 - 6 * t * t + 3 * t * t * t) / 6,
                                (1 + 3 * t + 3 * t * t - 3 * t * t * t) / 6, t * t * t / 6]
                }
            }
        }

        /// Cubic B-spline coefficients of `line` padded by `pad` edge samples per side, with
        /// mirror boundary conditions (scipy's `spline_filter1d`).
        static func prefilter(_ line: [Double], into c: inout [Double]) {
            let n = line.count, total = n + 2 * pad
            for k in 0..<total { c[k] = line[min(max(k - pad, 0), n - 1)] }
            if total == 1 { return }
            let z = 3.0.squareRoot() - 2
            let gain = (1 - z) * (1 - 1 / z)
            for k in 0..<total { c[k] *= gain }
            // Causal initialization for a mirror-symmetric extension.
            var zi = z
            let zn1 = pow(z, Double(total - 1))
            var c0 = c[0] + zn1 * c[total - 1]
            for i in 1..<(total - 1) {
                c0 += zi * (c[i] + zn1 * c[total - 1 - i])
                zi *= z
            }
            c[0] = c0 / (1 - zn1 * zn1)
            for i in 1..<total { c[i] += z * c[i - 1] }
            c[total - 1] = (z * c[total - 2] + c[total - 1]) * z / (z * z - 1)
            for i in stride(from: total - 2, through: 0, by: -1) { c[i] = z * (c[i + 1] - c[i]) }
        }
    }
}
