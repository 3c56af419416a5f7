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
