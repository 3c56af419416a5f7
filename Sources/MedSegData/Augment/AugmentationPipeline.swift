import Foundation
import Torch

/// One augmentation step over a batch: image [B, C, (D,) H, W], label [B, 1, (D,) H, W] (or
/// nil). Every random decision comes from `rng`, so the same generator state gives the same
/// output, on any device.
public protocol AugmentationTransform: Sendable {
    func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?)
}

/// The steps a pipeline can hold (an enum so that pipelines are Codable and comparable).
public enum AugmentationStep: Codable, Equatable, Sendable {
    case spatial(SpatialTransform)
    case mirror(MirrorTransform)
    case rot90(Rot90Transform)
    case noise(GaussianNoiseTransform)
    case blur(GaussianBlurTransform)
    case brightness(BrightnessTransform)
    case contrast(ContrastTransform)
    case lowResolution(SimulateLowResolutionTransform)
    case gamma(GammaTransform)

    public var transform: any AugmentationTransform {
        switch self {
        case .spatial(let t): return t
        case .mirror(let t): return t
        case .rot90(let t): return t
        case .noise(let t): return t
        case .blur(let t): return t
        case .brightness(let t): return t
        case .contrast(let t): return t
        case .lowResolution(let t): return t
        case .gamma(let t): return t
        }
    }
}

/// A sequence of augmentation steps applied in order to a batch.
///
/// Presets (selected by `PresetName`, e.g. from a YAML config):
/// - `nnunet`: nnU-Net v2's default training transforms in its order: spatial (rotation p 0.2,
///   2D +-180 / 3D +-30 degrees per axis; scaling p 0.2, 0.7-1.4), Gaussian noise p 0.1,
///   Gaussian blur p 0.2 (per channel p 0.5, sigma 0.5-1), brightness p 0.15 (x 0.75-1.25),
///   contrast p 0.15 (0.75-1.25, range kept), simulated low resolution p 0.25 (per channel
///   p 0.5, zoom 0.5-1), gamma on the inverted image p 0.1, gamma p 0.3 (0.7-1.5, stats kept),
///   mirroring of every axis with p 0.5.
/// - `flip_rotate` (UltraLight VM-UNet): flips of every axis p 0.5, quarter turns p 0.5, and a
///   rotation of 20-80 degrees either way p 0.5 (the published config, see MODELS.md).
/// - `flip_rotate_scale` (SETR): flips p 0.5 per axis, rotation p 0.5 (+-30 degrees), scaling
///   p 0.5 (0.75-1.25).
/// - `flip`: mirroring only (p 0.5 per axis). `none`: nothing.
public struct AugmentationPipeline: Codable, Equatable, Sendable {
    public enum PresetName: String, Codable, CaseIterable, Sendable {
        case nnUNet = "nnunet"
        case flipRotate = "flip_rotate"
        case flipRotateScale = "flip_rotate_scale"
        case flip
        case none

        /// Parses a preset name, listing the valid ones when it is unknown.
        public init(parsing text: String) throws {
            guard let name = PresetName(rawValue: text.lowercased()) else {
                throw DataError("unknown augmentation preset '\(text)'; available: \(PresetName.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            self = name
        }
    }

    public var steps: [AugmentationStep]
    /// The preset this pipeline was made from, if any.
    public var name: PresetName?

    public init(_ steps: [AugmentationStep], name: PresetName? = nil) {
        self.steps = steps
        self.name = name
    }

    /// The preset `name` for `dims` spatial dimensions (2 or 3). `outputSize` makes the
    /// spatial step return the centred window of that size (nnU-Net's larger sampled patch).
    public static func preset(_ name: PresetName, dims: Int, outputSize: [Int]? = nil) -> AugmentationPipeline {
        switch name {
        case .nnUNet: return nnUNet(dims: dims, outputSize: outputSize)
        case .flipRotate: return flipRotate
        case .flipRotateScale: return flipRotateScale
        case .flip: return flip
        case .none: return none
        }
    }

    /// nnU-Net v2's default training augmentation.
    public static func nnUNet(dims: Int, outputSize: [Int]? = nil, lowResolutionIgnoreAxes: [Int] = []) -> AugmentationPipeline {
        AugmentationPipeline([
            .spatial(.nnUNet(dims: dims, outputSize: outputSize)),
            .noise(GaussianNoiseTransform()),
            .blur(GaussianBlurTransform()),
            .brightness(BrightnessTransform()),
            .contrast(ContrastTransform()),
            .lowResolution(SimulateLowResolutionTransform(ignoreAxes: lowResolutionIgnoreAxes)),
            .gamma(GammaTransform(probability: 0.1, invert: true)),
            .gamma(GammaTransform(probability: 0.3, invert: false)),
            .mirror(MirrorTransform()),
        ], name: .nnUNet)
    }

    /// UltraLight VM-UNet's flips, quarter turns and rotation.
    public static var flipRotate: AugmentationPipeline {
        AugmentationPipeline([
            .mirror(MirrorTransform(probability: 0.5)),
            .rot90(Rot90Transform(probability: 0.5)),
            .spatial(SpatialTransform(rotationProbability: 0.5, rotationDegrees: 20...80, rotationRandomSign: true,
                                      scaleProbability: 0)),
        ], name: .flipRotate)
    }

    /// SETR's flips, rotation and scaling.
    public static var flipRotateScale: AugmentationPipeline {
        AugmentationPipeline([
            .mirror(MirrorTransform(probability: 0.5)),
            .spatial(SpatialTransform(rotationProbability: 0.5, rotationDegrees: -30...30,
                                      scaleProbability: 0.5, scaleRange: 0.75...1.25)),
        ], name: .flipRotateScale)
    }

    public static var flip: AugmentationPipeline {
        AugmentationPipeline([.mirror(MirrorTransform(probability: 0.5))], name: .flip)
    }

    public static var none: AugmentationPipeline { AugmentationPipeline([], name: PresetName.none) }

    /// Augments a batch: image [B, C, (D,) H, W], label [B, 1, (D,) H, W] or nil.
    public func apply(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        guard image.rank == 4 || image.rank == 5 else {
            throw DataError("augmentation needs a [B, C, H, W] or [B, C, D, H, W] batch, got shape \(image.shape)")
        }
        var current = (image: image, label: label)
        for step in steps {
            current = try step.transform.apply(image: current.image, label: current.label, rng: &rng)
        }
        return current
    }

    /// Augments one sample: image [C, (D,) H, W], label [1, (D,) H, W] or nil.
    public func applySample(image: Tensor, label: Tensor?, rng: inout RandomSource) throws -> (image: Tensor, label: Tensor?) {
        let out = try apply(image: image.unsqueeze(0), label: label?.unsqueeze(0), rng: &rng)
        return (try out.image.squeeze(dim: 0), try out.label?.squeeze(dim: 0))
    }
}
