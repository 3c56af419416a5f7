import Foundation

/// The box a case was cropped to, in the image's own axis order (x first, as `MedicalImage.size`):
/// voxels `lower[a] ..< upper[a]` along axis `a` of an image of size `originalSize`.
public struct CropBox: Codable, Equatable, Sendable {
    public var lower: [Int]
    public var upper: [Int]
    public var originalSize: [Int]

    public init(lower: [Int], upper: [Int], originalSize: [Int]) {
        self.lower = lower
        self.upper = upper
        self.originalSize = originalSize
    }

    /// The whole image (nothing cropped).
    public static func whole(_ size: [Int]) -> CropBox {
        CropBox(lower: size.map { _ in 0 }, upper: size, originalSize: size)
    }

    /// Size of the cropped region, x first.
    public var size: [Int] { zip(upper, lower).map { $0 - $1 } }

    /// nnU-Net's `bbox_used_for_cropping`: `[[start, end], ...]` in array order ((z,) y, x).
    public var nnunetBoundingBox: [[Int]] { zip(lower, upper).map { [$0, $1] }.reversed() }

    public init(nnunetBoundingBox box: [[Int]], originalShape: [Int]) {
        self.init(lower: box.reversed().map { $0[0] }, upper: box.reversed().map { $0[1] }, originalSize: originalShape.reversed())
    }
}

/// Cropping to the non-zero region (nnU-Net's `crop_to_nonzero`): the bounding box of the
/// voxels where any channel is non-zero. nnU-Net fills holes in that mask first, which does not
/// change its bounding box; the preprocessor marks background outside the filled mask -1.
public enum Cropping {
    /// Bounding box of the voxels where any channel != 0; the whole image when every voxel is 0.
    public static func nonZeroBox(_ image: MedicalImage) -> CropBox {
        let size = image.size, dims = size.count, n = image.voxelCount
        var lower = size, upper = size.map { _ in 0 }
        var any = false
        for c in 0..<image.channels {
            image.voxels.withUnsafeBufferPointer { v in
                let base = c * n
                var coords = [Int](repeating: 0, count: dims)
                for i in 0..<n {
                    if v[base + i] != 0 {
                        any = true
                        for a in 0..<dims {
                            if coords[a] < lower[a] { lower[a] = coords[a] }
                            if coords[a] + 1 > upper[a] { upper[a] = coords[a] + 1 }
                        }
                    }
                    var a = 0
                    while a < dims {
                        coords[a] += 1
                        if coords[a] < size[a] { break }
                        coords[a] = 0
                        a += 1
                    }
                }
            }
        }
        return any ? CropBox(lower: lower, upper: upper, originalSize: size) : .whole(size)
    }

    /// Per voxel of `image`, whether any channel is non-zero, with the holes filled: nnU-Net's
    /// non-zero mask (`create_nonzero_mask`).
    public static func nonZeroMask(_ image: MedicalImage) -> [Bool] {
        let n = image.voxelCount
        var mask = [Bool](repeating: false, count: n)
        for c in 0..<image.channels {
            for i in 0..<n where image.voxels[c * n + i] != 0 { mask[i] = true }
        }
        return ConnectedComponents.fillingHoles(mask, size: image.size)
    }

    /// Crops `image` (every channel) to `box`; the origin moves to the box's first voxel.
    public static func crop(_ image: MedicalImage, to box: CropBox) -> MedicalImage {
        precondition(box.originalSize == image.size, "crop box was made for size \(box.originalSize), image is \(image.size)")
        let out = box.size
        var voxels: [Float]
        if out == image.size {
            // Nothing to cut (a CT's air is non-zero): share the voxels instead of a second copy.
            voxels = image.voxels
        } else {
            voxels = [Float](repeating: 0, count: image.channels * out.reduce(1, *))
            copyBlock(from: image.voxels, size: image.size, offset: box.lower, to: &voxels, size: out, offset: out.map { _ in 0 },
                      block: out, channels: image.channels)
        }
        return MedicalImage(size: out, channels: image.channels, voxels: voxels, pixelType: image.pixelType,
                            geometry: shifted(image.geometry, by: box.lower.map(Double.init)))
    }

    /// Undoes `crop`: places `image` at the box inside an image of the original size filled
    /// with `fill` (0, i.e. background for labels), and restores the original origin.
    public static func uncrop(_ image: MedicalImage, from box: CropBox, fill: Float = 0) -> MedicalImage {
        precondition(box.size == image.size, "crop box has size \(box.size), image is \(image.size)")
        let full = box.originalSize
        var voxels = [Float](repeating: fill, count: image.channels * full.reduce(1, *))
        copyBlock(from: image.voxels, size: image.size, offset: image.size.map { _ in 0 }, to: &voxels, size: full, offset: box.lower,
                  block: image.size, channels: image.channels)
        return MedicalImage(size: full, channels: image.channels, voxels: voxels, pixelType: image.pixelType,
                            geometry: shifted(image.geometry, by: box.lower.map { -Double($0) }))
    }

    /// Crops image and label to the image's non-zero region.
    public static func cropToNonZero(image: MedicalImage, label: MedicalImage?) -> (image: MedicalImage, label: MedicalImage?, box: CropBox) {
        let box = nonZeroBox(image)
        return (crop(image, to: box), label.map { crop($0, to: box) }, box)
    }

    /// Calls `body(start, length)` for each x-row of `box` in an image of `box.originalSize`:
    /// `start` is the flat index (one channel) of the row's first voxel, rows in the order of the
    /// cropped image's flat indices, so that reading rows in turn reads the crop without making it.
    public static func forEachRow(in box: CropBox, _ body: (_ start: Int, _ length: Int) -> Void) {
        let size = pad3(box.originalSize), lower = pad3Offset(box.lower), upper = pad3(box.upper)
        let length = upper[0] - lower[0]
        guard length > 0 else { return }
        for z in lower[2]..<upper[2] {
            for y in lower[1]..<upper[1] { body((z * size[1] + y) * size[0] + lower[0], length) }
        }
    }

    /// Geometry of the grid whose voxel 0 is voxel `offset` (x first) of `geometry`'s grid.
    static func shifted(_ geometry: ImageGeometry, by offset: [Double]) -> ImageGeometry {
        var g = geometry
        let d = g.dims
        guard offset.count == d, g.direction.count == d * d, g.origin.count == d else { return g }
        for i in 0..<d {
            var delta = 0.0
            for j in 0..<d { delta += g.direction[i * d + j] * offset[j] * g.spacing[j] }
            g.origin[i] += delta
        }
        if var affine = g.niftiAffine, affine.count == 16 {
            for i in 0..<3 {
                for j in 0..<min(d, 3) { affine[i * 4 + 3] += affine[i * 4 + j] * offset[j] }
            }
            g.niftiAffine = affine
        }
        return g
    }

    /// Copies an x-first block of `block` voxels per channel between two grids.
    static func copyBlock(from src: [Float], size srcSize: [Int], offset srcOffset: [Int],
                          to dst: inout [Float], size dstSize: [Int], offset dstOffset: [Int], block: [Int], channels: Int) {
        let s3 = pad3(srcSize), d3 = pad3(dstSize), b3 = pad3(block)
        let so = srcOffset + Array(repeating: 0, count: 3 - srcOffset.count)
        let dO = dstOffset + Array(repeating: 0, count: 3 - dstOffset.count)
        let sN = s3.reduce(1, *), dN = d3.reduce(1, *)
        guard b3.allSatisfy({ $0 > 0 }) else { return }
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                for c in 0..<channels {
                    for z in 0..<b3[2] {
                        for y in 0..<b3[1] {
                            let si = c * sN + ((z + so[2]) * s3[1] + (y + so[1])) * s3[0] + so[0]
                            let di = c * dN + ((z + dO[2]) * d3[1] + (y + dO[1])) * d3[0] + dO[0]
                            for x in 0..<b3[0] { d[di + x] = s[si + x] }
                        }
                    }
                }
            }
        }
    }

    static func pad3(_ size: [Int]) -> [Int] { size + Array(repeating: 1, count: max(0, 3 - size.count)) }
    static func pad3Offset(_ offset: [Int]) -> [Int] { offset + Array(repeating: 0, count: max(0, 3 - offset.count)) }
}
