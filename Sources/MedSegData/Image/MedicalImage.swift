import Foundation
import Torch

/// How voxel values were stored on disk; writers use it to store them back the same way.
public enum PixelType: String, Codable, Sendable, CaseIterable {
    case uint8, int8, uint16, int16, uint32, int32, float32, float64, rgb8, rgba8

    /// Integer types hold labels exactly; floating types are intensities.
    public var isInteger: Bool { self != .float32 && self != .float64 }
}

/// Physical placement of a voxel grid: spacing per axis, origin of the first voxel, and the
/// direction cosines, in the image's own axis order (x fastest). 2D images carry two axes.
public struct ImageGeometry: Codable, Equatable, Sendable {
    /// Millimetres between voxel centres along each axis (x, y[, z]).
    public var spacing: [Double]
    /// World position of voxel (0, 0[, 0]).
    public var origin: [Double]
    /// Row-major direction cosine matrix, `dims` x `dims`.
    public var direction: [Double]
    /// The 4x4 voxel-to-world matrix a NIfTI file held (RAS), kept to write predictions back
    /// unchanged; nil for images that did not come from NIfTI.
    public var niftiAffine: [Double]?
    /// The NIfTI sform_code and qform_code (1 scanner, 2 aligned, 3 Talairach, 4 MNI, 5 template)
    /// the file held, written back so that a converted or predicted file keeps its space; nil for
    /// images that did not come from NIfTI.
    public var niftiSformCode: Int?
    public var niftiQformCode: Int?

    public init(spacing: [Double], origin: [Double]? = nil, direction: [Double]? = nil, niftiAffine: [Double]? = nil,
                niftiSformCode: Int? = nil, niftiQformCode: Int? = nil) {
        let n = spacing.count
        self.spacing = spacing
        self.origin = origin ?? Array(repeating: 0, count: n)
        self.direction = direction ?? (0..<(n * n)).map { $0 % (n + 1) == 0 ? 1 : 0 }
        self.niftiAffine = niftiAffine
        self.niftiSformCode = niftiSformCode
        self.niftiQformCode = niftiQformCode
    }

    public var dims: Int { spacing.count }

    /// Unit spacing, zero origin and identity direction.
    public static func identity(dims: Int) -> ImageGeometry {
        ImageGeometry(spacing: Array(repeating: 1, count: dims))
    }

    /// The world position of a (continuous) voxel index: origin + direction * (spacing * index).
    public func world(_ index: [Double]) -> [Double] {
        let n = dims
        var out = origin
        for r in 0..<n {
            for c in 0..<n { out[r] += direction[r * n + c] * spacing[c] * index[c] }
        }
        return out
    }

    /// The (continuous) voxel index of a world position; the direction cosines are orthonormal, so
    /// their inverse is their transpose.
    public func index(_ world: [Double]) -> [Double] {
        let n = dims
        var out = [Double](repeating: 0, count: n)
        for c in 0..<n {
            for r in 0..<n { out[c] += direction[r * n + c] * (world[r] - origin[r]) }
            out[c] /= spacing[c]
        }
        return out
    }
}

/// An image or label volume held in memory as Float voxels, x fastest (NIfTI/ITK order), with
/// its geometry. Multi-channel images (RGB, MSD 4D) keep channels as the slowest axis.
public struct MedicalImage: Sendable {
    /// Spatial sizes, x fastest: [x, y] or [x, y, z].
    public var size: [Int]
    /// Channels (1 for grayscale and labels, 3 for RGB, N for multi-modal volumes).
    public var channels: Int
    /// Voxel values: channel-major, then z, y, x (x fastest). Count = channels x prod(size).
    public var voxels: [Float]
    public var pixelType: PixelType
    public var geometry: ImageGeometry

    public init(size: [Int], channels: Int = 1, voxels: [Float], pixelType: PixelType = .float32, geometry: ImageGeometry? = nil) {
        precondition(voxels.count == channels * size.reduce(1, *), "voxel count does not match size x channels")
        self.size = size
        self.channels = channels
        self.voxels = voxels
        self.pixelType = pixelType
        self.geometry = geometry ?? .identity(dims: size.count)
    }

    public var dims: Int { size.count }
    public var voxelCount: Int { size.reduce(1, *) }

    /// The image as a tensor shaped [C, (Z,) Y, X] (row-major, which is the same memory order).
    public func tensor() throws -> Tensor {
        try Tensor(voxels, shape: [channels] + size.reversed())
    }

    /// One channel as its own single-channel image.
    public func channel(_ c: Int) -> MedicalImage {
        let n = voxelCount
        return MedicalImage(size: size, channels: 1, voxels: Array(voxels[(c * n)..<((c + 1) * n)]),
                            pixelType: pixelType == .rgb8 || pixelType == .rgba8 ? .uint8 : pixelType, geometry: geometry)
    }
}
