import Foundation
import Torch

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
