import Foundation
import Torch

/// What the patch sampler needs of a training case: image [C, (D,) H, W], label [1, (D,) H, W]
/// and, per foreground class (index 0 = label 1), flat voxel indices (row-major over the
/// spatial shape, last axis fastest) where that class is, precomputed once per case.
public struct PatchCase {
    public let identifier: String
    public let image: Tensor
    public let label: Tensor?
    public let foreground: [[Int]]

    public init(identifier: String, image: Tensor, label: Tensor?, foreground: [[Int]]) {
        self.identifier = identifier; self.image = image; self.label = label; self.foreground = foreground
    }

    public init(_ loaded: LoadedCase) {
        self.init(identifier: loaded.identifier, image: loaded.image, label: loaded.label, foreground: loaded.foreground)
    }

    /// Spatial size in tensor order.
    public var shape: [Int] { Array(image.shape.dropFirst()) }
}

/// Where each foreground class is, subsampled, as nnU-Net's class_locations.
public enum ForegroundLocations {
    /// Flat voxel indices of labels 1...classes (the largest label present when `classes` is
    /// nil) of a label map (any shape; read row-major). Each class keeps at most
    /// max(maxPerClass, ceil(1% of its voxels)) positions, chosen at random without
    /// replacement (nnU-Net: 10,000 samples, 1% minimum coverage), in increasing order.
    public static func compute(label: Tensor, classes: Int? = nil, maxPerClass: Int = 10_000,
                               rng: inout RandomSource) throws -> [[Int]] {
        let values = try label.to(device: .cpu, dtype: .float32).contiguous().floats()
        var perClass: [[Int]] = []
        for (i, v) in values.enumerated() where v > 0 {
            let cls = Int(v.rounded())
            guard cls >= 1 else { continue }
            if let classes, cls > classes { continue }
            if cls > perClass.count { perClass += Array(repeating: [], count: cls - perClass.count) }
            perClass[cls - 1].append(i)
        }
        if let classes, perClass.count < classes { perClass += Array(repeating: [], count: classes - perClass.count) }
        return perClass.map { all in
            let keep = max(min(maxPerClass, all.count), Int((Double(all.count) * 0.01).rounded(.up)))
            guard keep < all.count else { return all }
            // Partial Fisher-Yates: the first `keep` of a random permutation.
            var pool = all
            for i in 0..<keep { pool.swapAt(i, i + rng.int(below: pool.count - i)) }
            return pool.prefix(keep).sorted()
        }
    }
}

/// Cuts training patches as nnU-Net's data loader does (nnUNetDataLoaderBase.get_bbox):
/// - the patch may extend beyond the image, which is padded with zeros (label 0);
/// - a random window otherwise: per axis, with need = max(margin, patch - shape), its first
///   voxel is uniform in [-need/2, shape + need - need/2 - patch] (nnU-Net's range; `margin` is
///   nnU-Net's need_to_pad, the sampled patch minus the final patch, 0 by default). Where the
///   image is smaller than the patch the range is widened to [shape - patch, 0], so the whole
///   image lands anywhere inside the patch (nnU-Net would always centre it);
/// - forced foreground: the window is centred on a random voxel of a random class present in
///   the case, moved back into the range above where needed (which keeps the voxel inside;
///   nnU-Net bounds it only below, letting windows run past the far border), falling back to
///   a random window for cases without foreground. In a batch, the samples with index
///   >= round(batch * (1 - oversampleForeground)) are forced (nnU-Net's "last 33 %":
///   batch 2 -> 1, batch 3 -> 1, batch 8 -> 3; batch 1 -> none, as nnU-Net).
public struct PatchSampler: Codable, Equatable, Sendable {
    public var patchSize: [Int]
    public var oversampleForeground: Double
    /// How far (in total per axis) a window may reach beyond the image (nnU-Net's need_to_pad);
    /// empty = 0 on every axis.
    public var margin: [Int]

    public init(patchSize: [Int], oversampleForeground: Double = 0.33, margin: [Int] = []) {
        self.patchSize = patchSize
        self.oversampleForeground = oversampleForeground
        self.margin = margin
    }

    /// The range of a window's first voxel along each axis for an image of spatial `shape`.
    public func startRange(shape: [Int]) -> [ClosedRange<Int>] {
        var ranges: [ClosedRange<Int>] = []
        for axis in 0..<shape.count {
            let extra: Int = axis < margin.count ? margin[axis] : 0
            let need: Int = max(extra, patchSize[axis] - shape[axis])
            let half: Int = need / 2
            let low: Int = min(-half, shape[axis] - patchSize[axis])
            let high: Int = max(shape[axis] + (need - half) - patchSize[axis], 0)
            ranges.append(low...high)
        }
        return ranges
    }

    /// Whether sample `index` of a batch of `batchSize` is centred on foreground.
    public func forcesForeground(sample index: Int, batchSize: Int) -> Bool {
        // Python's round (half to even), as nnU-Net's _oversample_last_XX_percent.
        !(Double(index) < (Double(batchSize) * (1 - oversampleForeground)).rounded(.toNearestOrEven))
    }

    /// How many samples of a batch are forced to foreground.
    public func forcedCount(batchSize: Int) -> Int {
        (0..<batchSize).filter { forcesForeground(sample: $0, batchSize: batchSize) }.count
    }

    /// The first voxel (tensor order, may be negative) of a window in an image of spatial
    /// `shape`.
    public func window(shape: [Int], foreground: [[Int]], forceForeground: Bool, rng: inout RandomSource) throws -> [Int] {
        guard shape.count == patchSize.count else {
            throw DataError("patch size \(patchSize) does not fit an image of spatial shape \(shape)")
        }
        let ranges = startRange(shape: shape)
        let present = foreground.indices.filter { !foreground[$0].isEmpty }
        if forceForeground, !present.isEmpty {
            let cls = present[rng.int(below: present.count)]
            let voxels = foreground[cls]
            var flat = voxels[rng.int(below: voxels.count)]
            let total = shape.reduce(1, *)
            guard flat >= 0 && flat < total else {
                throw DataError("foreground position \(flat) of class \(cls + 1) is outside an image of \(total) voxels")
            }
            var coords = [Int](repeating: 0, count: shape.count)
            for axis in (0..<shape.count).reversed() {
                coords[axis] = flat % shape[axis]
                flat /= shape[axis]
            }
            var start: [Int] = []
            for axis in 0..<shape.count {
                let centred: Int = coords[axis] - patchSize[axis] / 2
                start.append(min(max(ranges[axis].lowerBound, centred), ranges[axis].upperBound))
            }
            return start
        }
        return ranges.map { rng.int(in: $0) }
    }

    /// The window at `start` of a [C, spatial...] tensor, zero where it leaves the data.
    public func cut(_ t: Tensor, start: [Int]) throws -> Tensor {
        try TensorWindow.cut(t, start: start, size: patchSize, firstSpatialDim: 1)
    }

    /// A patch of one case (image [C, spatial...], label [1, spatial...]) and where it starts.
    public func sample(_ c: PatchCase, forceForeground: Bool, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?, start: [Int]) {
        let shape = c.shape
        if let label = c.label, Array(label.shape.dropFirst()) != shape {
            throw DataError(file: c.identifier, "label shape \(label.shape) does not match image shape \(c.image.shape)")
        }
        let start = try window(shape: shape, foreground: c.foreground, forceForeground: forceForeground, rng: &rng)
        return (try cut(c.image, start: start), try c.label.map { try cut($0, start: start) }, start)
    }

    /// A batch with one patch per entry of `cases` (the caller picks the cases, with repeats
    /// allowed); the last samples are forced to foreground as `forcesForeground` says. Errors
    /// name the case they happened in.
    public func batch(_ cases: [PatchCase], rng: inout RandomSource) throws -> Batch {
        guard !cases.isEmpty else { throw DataError("a batch needs at least one case") }
        var images: [Tensor] = [], labels: [Tensor] = []
        for (i, c) in cases.enumerated() {
            let force = forcesForeground(sample: i, batchSize: cases.count)
            let patch = try CaseError.naming(c.identifier) { try sample(c, forceForeground: force, rng: &rng) }
            guard let label = patch.label else { throw CaseError(identifier: c.identifier, underlying: DataError("case has no label")) }
            images.append(patch.image)
            labels.append(label)
        }
        return Batch(image: try Tensor.stack(images), label: try Tensor.stack(labels), caseIdentifiers: cases.map(\.identifier))
    }
}
