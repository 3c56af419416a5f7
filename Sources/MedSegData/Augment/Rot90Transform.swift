import Foundation
import Torch

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
