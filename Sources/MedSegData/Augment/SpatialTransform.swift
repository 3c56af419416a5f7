import Foundation
import Torch

// Spatial augmentation of batches shaped [B, C, (D,) H, W] (image) and [B, 1, (D,) H, W] (label),
// as tensor operations on whatever device the tensors live on.
//
// Conventions used throughout this file:
// - Spatial axes are numbered in tensor order: 0 = the first spatial dimension (D in 3D, H in
//   2D), the last = W.
// - Rotation and scaling are expressed as a matrix M that maps a voxel offset of the OUTPUT
//   (relative to the output's centre) to the voxel offset of the INPUT it is read from. A
//   positive 2D angle turns the content counterclockwise as displayed with row 0 at the top:
//   +90 degrees gives exactly torch.rot90(x, 1, dims=[H, W]) (= transpose + flip) for a square.
// - Scaling multiplies the sampling coordinates, as batchgenerators does: a scale above 1 reads
//   a larger region, so the content appears smaller (zoomed out).

/// The spatial change of one sample; identity when every part is neutral.
public struct SpatialParameters: Equatable, Codable, Sendable {
    /// Rotation angles in radians: one for 2D; for 3D, about spatial axes 0, 1 and 2 (applied
    /// as R = R0 * R1 * R2). Missing entries count as 0.
    public var angles: [Double]
    /// Multipliers of the sampling coordinates per spatial axis (one value: every axis; empty: 1).
    public var scales: [Double]
    /// Optional elastic deformation (a smoothed random displacement field).
    public var elastic: ElasticField?

    public init(angles: [Double] = [], scales: [Double] = [], elastic: ElasticField? = nil) {
        self.angles = angles; self.scales = scales; self.elastic = elastic
    }

    public static let identity = SpatialParameters()

    public var isIdentity: Bool {
        angles.allSatisfy { $0 == 0 } && scales.allSatisfy { $0 == 1 } && elastic == nil
    }

    /// M for `dims` spatial axes (tensor axis order): input offset = M * output offset.
    public func matrix(dims: Int) -> [[Double]] {
        var m = Self.eye(dims)
        if dims == 2 {
            m = Self.planeRotation(dims: 2, 0, 1, angles.first ?? 0)
        } else {
            for axis in 0..<dims {
                let angle = axis < angles.count ? angles[axis] : 0
                guard angle != 0 else { continue }
                let plane = (0..<dims).filter { $0 != axis }
                m = Self.multiply(m, Self.planeRotation(dims: dims, plane[0], plane[1], angle))
            }
        }
        // S * R: scaling applied after the rotation, as batchgenerators (rotate, then scale coords).
        for a in 0..<dims {
            let s = scales.isEmpty ? 1 : (scales.count == 1 ? scales[0] : (a < scales.count ? scales[a] : 1))
            for b in 0..<dims { m[a][b] *= s }
        }
        return m
    }

    static func eye(_ n: Int) -> [[Double]] {
        (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
    }

    /// Rotation in the plane of axes (i, j): [[c, s], [-s, c]] on those axes.
    static func planeRotation(dims: Int, _ i: Int, _ j: Int, _ angle: Double) -> [[Double]] {
        var m = eye(dims)
        // Exact values at multiples of 90 degrees so that quarter turns land on voxel centres.
        let quarter = angle / (.pi / 2)
        var c = Foundation.cos(angle), s = Foundation.sin(angle)
        if abs(quarter - quarter.rounded()) < 1e-12 {
            switch ((Int(quarter.rounded()) % 4) + 4) % 4 {
            case 0: (c, s) = (1, 0)
            case 1: (c, s) = (0, 1)
            case 2: (c, s) = (-1, 0)
            default: (c, s) = (0, -1)
            }
        }
        m[i][i] = c; m[i][j] = s
        m[j][i] = -s; m[j][j] = c
        return m
    }

    static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        let n = a.count
        return (0..<n).map { i in (0..<n).map { j in (0..<n).reduce(0.0) { $0 + a[i][$1] * b[$1][j] } } }
    }
}

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

/// Rotation, scaling and optional elastic deformation, combined into one sampling grid per
/// batch (affine part by `F.affineGrid`, plus the displacement field) and applied with one
/// `F.gridSample` call to the image (bilinear, zero padding) and one to the label (nearest, so
/// label values stay the original class indices; zero = background outside the image).
///
/// Defaults are nnU-Net v2's: rotation p 0.2 per sample (3D: each axis, range +-30 degrees;
/// 2D: +-180 degrees, see `nnUNet(dims:)`), scaling p 0.2 in 0.7-1.4 (same factor for every
/// axis, drawn "balanced": below or above 1 with equal chance), elastic deformation off.
///
/// With `outputSize` the output is the centred window of that size (nnU-Net samples a larger
/// patch so that rotated corners hold image data, then keeps the centre). Samples whose drawn
/// parameters are the identity are cut exactly (no resampling).
public struct SpatialTransform: AugmentationTransform, Codable, Equatable, Sendable {
    public var rotationProbability: Double
    /// Angle range in degrees for each rotated axis.
    public var rotationDegrees: ClosedRange<Double>
    /// Draw the angle's magnitude from `rotationDegrees` and its sign at random (e.g. 20-80
    /// degrees either way).
    public var rotationRandomSign: Bool
    /// 3D: once a sample is rotated, each axis gets an angle with this probability (nnU-Net: 1).
    public var rotationProbabilityPerAxis: Double
    public var scaleProbability: Double
    public var scaleRange: ClosedRange<Double>
    /// A separate scale per axis instead of one for all.
    public var independentScalePerAxis: Bool
    public var elasticProbability: Double
    /// Displacement magnitude in voxels (nnU-Net v1: 0-200 in 2D, 0-900 in 3D, sigma 9-13).
    public var elasticAlpha: ClosedRange<Double>
    public var elasticSigma: ClosedRange<Double>
    /// Spatial size of the output (tensor order); nil keeps the input's.
    public var outputSize: [Int]?

    public init(rotationProbability: Double = 0.2, rotationDegrees: ClosedRange<Double> = -30...30,
                rotationRandomSign: Bool = false, rotationProbabilityPerAxis: Double = 1,
                scaleProbability: Double = 0.2, scaleRange: ClosedRange<Double> = 0.7...1.4,
                independentScalePerAxis: Bool = false,
                elasticProbability: Double = 0, elasticAlpha: ClosedRange<Double> = 0...200,
                elasticSigma: ClosedRange<Double> = 9...13, outputSize: [Int]? = nil) {
        self.rotationProbability = rotationProbability
        self.rotationDegrees = rotationDegrees
        self.rotationRandomSign = rotationRandomSign
        self.rotationProbabilityPerAxis = rotationProbabilityPerAxis
        self.scaleProbability = scaleProbability
        self.scaleRange = scaleRange
        self.independentScalePerAxis = independentScalePerAxis
        self.elasticProbability = elasticProbability
        self.elasticAlpha = elasticAlpha
        self.elasticSigma = elasticSigma
        self.outputSize = outputSize
    }

    /// nnU-Net v2's spatial transform: 2D rotation +-180 degrees, 3D +-30 degrees per axis.
    /// Elastic deformation stays off (probability 0); its ranges are nnU-Net v1's for when it is
    /// switched on (alpha 0-200 in 2D, 0-900 in 3D, sigma 9-13; v1 used p 0.2).
    public static func nnUNet(dims: Int, outputSize: [Int]? = nil) -> SpatialTransform {
        SpatialTransform(rotationDegrees: dims == 2 ? -180...180 : -30...30,
                         elasticAlpha: dims == 2 ? 0...200 : 0...900, outputSize: outputSize)
    }

    /// The random parameters of one sample (elastic, then rotation, then scale, as batchgenerators).
    public func draw(dims: Int, rng: inout RandomSource) -> SpatialParameters {
        var p = SpatialParameters()
        if rng.chance(elasticProbability) {
            p.elastic = ElasticField(alpha: rng.uniform(in: elasticAlpha), sigma: rng.uniform(in: elasticSigma), seed: rng.next())
        }
        if rng.chance(rotationProbability) {
            let axes = dims == 2 ? 1 : dims
            p.angles = (0..<axes).map { _ in
                if axes > 1 && !rng.chance(rotationProbabilityPerAxis) { return 0 }
                var degrees = rng.uniform(in: rotationDegrees)
                if rotationRandomSign && rng.chance(0.5) { degrees = -degrees }
                return degrees * .pi / 180
            }
        }
        if rng.chance(scaleProbability) {
            p.scales = independentScalePerAxis ? (0..<dims).map { _ in rng.balanced(in: scaleRange) } : [rng.balanced(in: scaleRange)]
        }
        return p
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let dims = image.rank - 2
        let parameters = (0..<image.size(0)).map { _ in draw(dims: dims, rng: &rng) }
        return try transform(image: image, label: label, parameters: parameters)
    }

    /// Applies given parameters (one per sample) to a batch.
    public func transform(image: Tensor, label: Tensor?, parameters: [SpatialParameters]) throws -> (image: Tensor, label: Tensor?) {
        let dims = image.rank - 2
        guard dims == 2 || dims == 3 else {
            throw DataError("spatial augmentation needs a [B, C, H, W] or [B, C, D, H, W] batch, got shape \(image.shape)")
        }
        let batch = image.size(0)
        guard parameters.count == batch else {
            throw DataError("spatial augmentation got \(parameters.count) parameter sets for a batch of \(batch)")
        }
        let inputSize = Array(image.shape.suffix(dims))
        if let label {
            guard label.rank == image.rank, label.size(0) == batch, Array(label.shape.suffix(dims)) == inputSize else {
                throw DataError("label shape \(label.shape) does not match image shape \(image.shape)")
            }
        }
        let outSize = outputSize ?? inputSize
        guard outSize.count == dims, outSize.allSatisfy({ $0 > 0 }) else {
            throw DataError("output size \(outSize) does not fit \(dims) spatial dimensions")
        }
        let resampled = parameters.indices.filter { !parameters[$0].isIdentity }
        let start = Self.centredStart(input: inputSize, output: outSize)
        func cut(_ t: Tensor) throws -> Tensor {
            outSize == inputSize ? t : try TensorWindow.cut(t, start: start, size: outSize, firstSpatialDim: 2)
        }
        if resampled.isEmpty { return (try cut(image), try label.map(cut)) }

        let selected = resampled.map { parameters[$0] }
        let all = resampled.count == batch
        let index = all ? nil : try Tensor(resampled.map(Int64.init)).movedIfNeeded(device: image.device, dtype: .int64)
        let imageIn = try index.map { try image.indexSelect(dim: 0, index: $0) } ?? image
        let grid = try Self.samplingGrid(selected, inputSize: inputSize, outputSize: outSize,
                                         dtype: image.dtype.isFloatingPoint ? image.dtype : .float32, device: image.device)
        let imageOut = try F.gridSample(imageIn.dtype == grid.dtype ? imageIn : imageIn.to(dtype: grid.dtype),
                                        grid: grid, mode: .bilinear, paddingMode: .zeros, alignCorners: false)
        var labelOut: Tensor? = nil
        if let label {
            let labelIn = try index.map { try label.indexSelect(dim: 0, index: $0) } ?? label
            let warped = try F.gridSample(labelIn.to(dtype: grid.dtype), grid: grid, mode: .nearest,
                                          paddingMode: .zeros, alignCorners: false)
            labelOut = warped.dtype == label.dtype ? warped : try warped.to(dtype: label.dtype)
        }
        if all { return (imageOut, labelOut) }

        // Reassemble in batch order: resampled samples from the grid, the others cut exactly.
        var images: [Tensor] = [], labels: [Tensor] = []
        var j = 0
        for b in 0..<batch {
            if j < resampled.count && resampled[j] == b {
                images.append(try imageOut.narrow(dim: 0, start: j, length: 1))
                if let labelOut { labels.append(try labelOut.narrow(dim: 0, start: j, length: 1)) }
                j += 1
            } else {
                images.append(try cut(image.narrow(dim: 0, start: b, length: 1)))
                if let label { labels.append(try cut(label.narrow(dim: 0, start: b, length: 1))) }
            }
        }
        return (try Tensor.cat(images), label == nil ? nil : try Tensor.cat(labels))
    }

    /// First input voxel of the centred output window (may be negative when the output is larger).
    static func centredStart(input: [Int], output: [Int]) -> [Int] {
        zip(input, output).map { Int((Double($0 - $1) / 2).rounded(.down)) }
    }

    /// The sampling grid [S, out..., dims] (grid_sample's coordinate order, x = W first) for
    /// `parameters` of S samples, with align_corners false semantics: output voxel offsets o from
    /// the window centre read the input at centre + M (o + displacement(o)).
    public static func samplingGrid(_ parameters: [SpatialParameters], inputSize: [Int], outputSize: [Int],
                                    dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let n = inputSize.count
        let start = centredStart(input: inputSize, output: outputSize)
        var theta: [Float] = []
        theta.reserveCapacity(parameters.count * n * (n + 1))
        for p in parameters {
            let m = p.matrix(dims: n)
            // Tensor order: normalized input = diag(2/I) M diag(O/2) normalized output + t.
            var t = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
            for a in 0..<n {
                for b in 0..<n { t[a][b] = 2 / Double(inputSize[a]) * m[a][b] * Double(outputSize[b]) / 2 }
                let centre = Double(start[a]) + Double(outputSize[a] - 1) / 2
                t[a][n] = (2 * centre + 1) / Double(inputSize[a]) - 1
            }
            // Grid order reverses the axes (x = last tensor axis).
            for r in 0..<n {
                for c in 0..<n { theta.append(Float(t[n - 1 - r][n - 1 - c])) }
                theta.append(Float(t[n - 1 - r][n]))
            }
        }
        let s = parameters.count
        let thetaTensor = try Tensor(theta, shape: [s, n, n + 1]).movedIfNeeded(device: device, dtype: dtype)
        var grid = try F.affineGrid(thetaTensor, size: [s, 1] + outputSize, alignCorners: false)
        guard parameters.contains(where: { $0.elastic != nil }) else { return grid }

        // Displacements (voxels, tensor order) of every sample, zero where there is none.
        let zero = try Tensor.zeros([1, n] + outputSize, dtype: dtype, device: device)
        let fields = try parameters.map { p -> Tensor in
            guard let e = p.elastic else { return zero }
            return try e.displacement(size: outputSize, device: device).movedIfNeeded(device: device, dtype: dtype).unsqueeze(0)
        }
        // To normalized output units, grid order, [S, P, n], then through the linear part of theta.
        let perAxis = try Tensor(outputSize.map { Float(2 / Double($0)) }, shape: [1, n] + [Int](repeating: 1, count: n))
            .movedIfNeeded(device: device, dtype: dtype)
        var disp = try (Tensor.cat(fields) * perAxis).flip([1])
        disp = try disp.permute([0] + Array(2..<(n + 2)) + [1]).reshape([s, -1, n])
        let linear = try thetaTensor.narrow(dim: 2, start: 0, length: n).transpose(1, 2)
        grid = try grid + disp.matmul(linear).reshape([s] + outputSize + [n])
        return grid
    }
}

/// Mirroring: each listed spatial axis flipped with `probability` per sample (nnU-Net: every
/// axis, 0.5). Exact (no resampling); the label is flipped with the image.
public struct MirrorTransform: AugmentationTransform, Codable, Equatable, Sendable {
    /// Spatial axes (tensor order, 0 = first spatial); nil = all.
    public var axes: [Int]?
    public var probability: Double

    public init(axes: [Int]? = nil, probability: Double = 0.5) {
        self.axes = axes; self.probability = probability
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let dims = image.rank - 2
        let candidates = axes ?? Array(0..<dims)
        guard candidates.allSatisfy({ (0..<dims).contains($0) }) else {
            throw DataError("mirror axes \(candidates) out of range for \(dims) spatial dimensions")
        }
        let flips: [[Int]] = (0..<image.size(0)).map { _ in candidates.filter { _ in rng.chance(probability) } }
        let ops: [((Tensor) throws -> Tensor)?] = flips.map { axes in
            axes.isEmpty ? nil : { try $0.flip(axes.map { $0 + 2 }) }
        }
        return (try SampleWise.map(image, ops), try label.map { try SampleWise.map($0, ops) })
    }

    /// Flips spatial `axes` of every sample of a [B, C, spatial...] tensor.
    public static func mirror(_ x: Tensor, axes: [Int]) throws -> Tensor {
        axes.isEmpty ? x : try x.flip(axes.map { $0 + 2 })
    }
}

/// Quarter turns in a plane (UltraLight VM-UNet's random rot90): with `probability` per sample,
/// k in {1, 2, 3} quarter turns as torch.rot90. When the plane is not square only half turns
/// are used, so the batch keeps its shape.
public struct Rot90Transform: AugmentationTransform, Codable, Equatable, Sendable {
    public var probability: Double
    /// The two spatial axes of the plane (tensor order); nil = the last two.
    public var plane: [Int]?

    public init(probability: Double = 0.5, plane: [Int]? = nil) {
        self.probability = probability; self.plane = plane
    }

    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let dims = image.rank - 2
        let axes = plane ?? [dims - 2, dims - 1]
        guard axes.count == 2, axes[0] != axes[1], axes.allSatisfy({ (0..<dims).contains($0) }) else {
            throw DataError("rot90 plane \(axes) is not two distinct spatial axes of \(dims)")
        }
        let square = image.size(axes[0] + 2) == image.size(axes[1] + 2)
        let ops: [((Tensor) throws -> Tensor)?] = (0..<image.size(0)).map { _ in
            guard rng.chance(probability) else { return nil }
            let drawn = rng.int(in: 1...3)
            let k = square ? drawn : 2
            return { try Self.rot90($0, k: k, dims: (axes[0] + 2, axes[1] + 2)) }
        }
        return (try SampleWise.map(image, ops), try label.map { try SampleWise.map($0, ops) })
    }

    /// torch.rot90(x, k, dims): k quarter turns from `dims.0` towards `dims.1` (tensor dims).
    public static func rot90(_ x: Tensor, k: Int, dims: (Int, Int)) throws -> Tensor {
        switch ((k % 4) + 4) % 4 {
        case 1: return try x.flip([dims.1]).transpose(dims.0, dims.1)
        case 2: return try x.flip([dims.0, dims.1])
        case 3: return try x.flip([dims.0]).transpose(dims.0, dims.1)
        default: return x
        }
    }
}

// MARK: helpers shared by the augmentation and loading files

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
