import Foundation
import MedSegData
import MedSegModels
import Torch

/// One planned configuration ("2d", "3d_fullres") of `plans.json`: what to resample to, the patch,
/// the batch and the network topology. Users may edit the file; training honours it.
public struct PlannedConfiguration: Codable, Equatable, Sendable {
    /// Target spacing, array order ((z,) y, x).
    public var spacing: [Double]
    public var patch_size: [Int]
    public var batch_size: Int
    public var median_image_size_in_voxels: [Double]
    public var features_per_stage: [Int]
    public var kernel_sizes: [[Int]]
    public var strides: [[Int]]
    public var normalization_schemes: [String]
    /// The cascade: 3d_lowres names the configuration trained on its predictions
    /// ("3d_cascade_fullres"), which names its previous stage ("3d_lowres").
    public var next_stage: String?
    public var previous_stage: String?
    /// nnU-Net's architecture class ("dynamic_network_architectures.architectures.unet.PlainConvUNet" or
    /// "...residual_unet.ResidualEncoderUNet"); absent in older plans: PlainConvUNet.
    public var network_class_name: String?
    /// Encoder blocks (residual) or convolutions (plain) per stage and convolutions per decoder stage;
    /// absent: nnU-Net's plain U-Net, 2 and 2.
    public var n_blocks_per_stage: [Int]?
    public var n_conv_per_stage_decoder: [Int]?
    /// Dice over the whole batch (nnU-Net: 2d; 3d_fullres where a 3d_lowres exists) or per
    /// sample; absent in older plans: true.
    public var batch_dice: Bool?
    /// Per channel, z-score statistics over the non-zero mask only; absent: the planner's rule
    /// on the fingerprint.
    public var use_mask_for_norm: [Bool]?
    /// Interpolation of images, labels and probabilities when resampling (nnU-Net's
    /// resample_data_or_seg_to_shape keyword arguments); absent: nnU-Net's defaults.
    public var resampling_fn_data_kwargs: ResamplingSettings?
    public var resampling_fn_seg_kwargs: ResamplingSettings?
    public var resampling_fn_probabilities_kwargs: ResamplingSettings?
}

/// One resampling's interpolation as nnU-Net's plans write it: spline `order` in plane, `order_z`
/// along a separately resampled (anisotropic) axis.
public struct ResamplingSettings: Codable, Equatable, Sendable {
    public var is_seg: Bool
    public var order: Int
    public var order_z: Int

    public init(is_seg: Bool, order: Int, order_z: Int = 0) {
        self.is_seg = is_seg; self.order = order; self.order_z = order_z
    }

    /// nnU-Net's defaults: images cubic, labels and probabilities linear, order 0 along z.
    public static let data = ResamplingSettings(is_seg: false, order: 3)
    public static let seg = ResamplingSettings(is_seg: true, order: 1)
    public static let probabilities = ResamplingSettings(is_seg: false, order: 1)
}

public struct ExperimentPlans: Codable, Equatable, Sendable {
    public var dataset_name: String
    /// nnU-Net's plans identifier ("nnUNetPlans", "nnUNetResEncUNetMPlans", ...); absent in older plans.
    public var plans_name: String?
    public var configurations: [String: PlannedConfiguration]
    /// Per channel ("0", ...), the foreground intensities CT normalization clips and scales with,
    /// as nnU-Net's plans carry them: plans moved to another data set keep the source's, so that
    /// a network trained there sees the intensities it learned. Absent in older plans: the
    /// fingerprint's.
    public var foreground_intensity_properties_per_channel: [String: DatasetFingerprint.IntensityProperties]?

    public static let fileName = "plans.json"

    public init(dataset_name: String, plans_name: String? = nil, configurations: [String: PlannedConfiguration],
                foreground_intensity_properties_per_channel: [String: DatasetFingerprint.IntensityProperties]? = nil) {
        self.dataset_name = dataset_name
        self.plans_name = plans_name
        self.configurations = configurations
        self.foreground_intensity_properties_per_channel = foreground_intensity_properties_per_channel
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    /// MedSeg's plans.json, or nnU-Net v2's own plans file (`nnUNetPlans.json`, a trained model's
    /// `plans.json`), converted (`NNUNetPlansFile`).
    public static func load(_ url: URL) throws -> ExperimentPlans {
        let plans: ExperimentPlans
        let data: Data
        do { data = try RegularFile.contents(url) } catch { throw ConfigError("\(url.path): cannot read the plans file (\(error))") }
        if let nnunet = try NNUNetPlansFile.plans(from: data, source: url.path) {
            plans = nnunet
        } else {
            do { plans = try JSONFile.decode(ExperimentPlans.self, from: data) } catch let error as DataError {
                throw ConfigError("\(url.path): not a valid plans file: \(error.problem)")
            }
        }
        for name in plans.configurations.keys.sorted() {
            try plans.configurations[name]!.validate(source: "\(url.path): configuration '\(name)'")
        }
        return plans
    }
}

extension PlannedConfiguration {
    /// nnU-Net's normalization class names and MedSeg's schemes.
    public static let normalizationNames: [String: IntensityNormalization] = [
        "ZScoreNormalization": .zscore, "CTNormalization": .ct, "NoNormalization": .none, "RGBTo01Normalization": .rgb,
    ]

    /// The coarsest voxel spacing a plan may give (mm): beyond it no image has a voxel.
    public static let largestSpacing = 10_000.0

    /// Checks what a hand-edited plans file could get wrong; the message names the key.
    public func validate(source: String) throws {
        func fail(_ key: String, _ why: String) throws -> Never { throw ConfigError("\(source): \(key) \(why)") }
        if ![2, 3].contains(spacing.count) { try fail("spacing", "needs 2 or 3 values, got \(spacing)") }
        if let bad = spacing.first(where: { !($0.isFinite && $0 > 0 && $0 <= Self.largestSpacing) }) {
            try fail("spacing", "must be positive numbers of millimetres up to \(Int(Self.largestSpacing)), got \(bad) in \(spacing)")
        }
        if patch_size.count != spacing.count { try fail("patch_size", "needs \(spacing.count) values like spacing, got \(patch_size)") }
        if patch_size.contains(where: { $0 < 1 }) { try fail("patch_size", "must be positive, got \(patch_size)") }
        if batch_size < 1 { try fail("batch_size", "must be positive, got \(batch_size)") }
        // The network's topology: one entry per stage everywhere, each with one value per axis.
        let stages = features_per_stage.count
        if stages < 1 || stages > 12 { try fail("features_per_stage", "needs 1 to 12 stages, got \(stages)") }
        if let bad = features_per_stage.first(where: { !(1...4096).contains($0) }) { try fail("features_per_stage", "must be 1 to 4096, got \(bad)") }
        for (key, list) in [("kernel_sizes", kernel_sizes), ("strides", strides)] {
            if list.count != stages { try fail(key, "needs one entry per stage (\(stages), as features_per_stage), got \(list.count)") }
            if let bad = list.first(where: { $0.count != spacing.count }) { try fail(key, "needs \(spacing.count) values per stage, got \(bad)") }
            if let bad = list.first(where: { $0.contains { !(1...64).contains($0) } }) { try fail(key, "must be 1 to 64, got \(bad)") }
        }
        for (key, list) in [("n_blocks_per_stage", n_blocks_per_stage), ("n_conv_per_stage_decoder", n_conv_per_stage_decoder)] {
            guard let list else { continue }
            let expected = key == "n_blocks_per_stage" ? stages : stages - 1
            if list.count != expected { try fail(key, "needs \(expected) values for \(stages) stages, got \(list.count)") }
            if let bad = list.first(where: { !(1...64).contains($0) }) { try fail(key, "must be 1 to 64, got \(bad)") }
        }
        if let bad = normalization_schemes.first(where: { Self.normalizationNames[$0] == nil }) {
            try fail("normalization_schemes", "has '\(bad)'; known: \(Self.normalizationNames.keys.sorted().joined(separator: ", "))")
        }
        if let mask = use_mask_for_norm, mask.count != normalization_schemes.count {
            try fail("use_mask_for_norm", "needs one value per channel like normalization_schemes (\(normalization_schemes.count)), got \(mask)")
        }
        for (key, settings) in [("resampling_fn_data_kwargs", resampling_fn_data_kwargs), ("resampling_fn_probabilities_kwargs", resampling_fn_probabilities_kwargs)] {
            guard let settings else { continue }
            for (name, value) in [("order", settings.order), ("order_z", settings.order_z)] where ![0, 1, 3].contains(value) {
                try fail(key, "\(name) must be 0, 1 or 3, got \(value)")
            }
        }
        if let seg = resampling_fn_seg_kwargs {
            for (name, value) in [("order", seg.order), ("order_z", seg.order_z)] where ![0, 1].contains(value) {
                try fail("resampling_fn_seg_kwargs", "\(name) must be 0 (nearest) or 1 (per-label linear), got \(value)")
            }
        }
    }
}
