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

/// nnU-Net v2's planners (ExperimentPlanner and the residual encoder presets nnUNetPlannerResEncM/L/XL)
/// and their constants.
public struct PlannerPreset: Equatable, Sendable {
    public enum Network: String, Sendable { case plainConvUNet, residualEncoderUNet }
    /// nnU-Net's class name of the planner, as `--planner` takes it.
    public var name: String
    public var plansName: String
    public var network: Network
    /// Feature map sizes (`compute_conv_feature_map_size`) that fit `referenceGB` of GPU memory at the
    /// reference batch sizes (2 in 3D, 12 in 2D).
    public var referenceValue3D: Double
    public var referenceValue2D: Double
    public var referenceGB: Double
    public var defaultGPUMemoryGB: Double
    /// The largest part of the data set one batch may cover.
    public var maxDatasetCovered: Double
    public var blocksPerStageEncoder: [Int]
    public var blocksPerStageDecoder: [Int]

    public static let referenceBatch3D = 2
    public static let referenceBatch2D = 12
    public static let baseFeatures = 32
    public static let featureMapMinEdgeLength = 4
    public static let minBatchSize = 2
    public static let maxFeatures3D = 320
    public static let maxFeatures2D = 512

    public static let `default` = PlannerPreset(
        name: "ExperimentPlanner", plansName: "nnUNetPlans", network: .plainConvUNet, referenceValue3D: 560_000_000,
        referenceValue2D: 85_000_000, referenceGB: 8, defaultGPUMemoryGB: 8, maxDatasetCovered: 0.05,
        blocksPerStageEncoder: Array(repeating: 2, count: 14), blocksPerStageDecoder: Array(repeating: 2, count: 13))
    private static let resEncBlocks = [1, 3, 4] + Array(repeating: 6, count: 10)
    public static let resEncM = PlannerPreset(
        name: "nnUNetPlannerResEncM", plansName: "nnUNetResEncUNetMPlans", network: .residualEncoderUNet, referenceValue3D: 680_000_000,
        referenceValue2D: 135_000_000, referenceGB: 8, defaultGPUMemoryGB: 8, maxDatasetCovered: 1,
        blocksPerStageEncoder: resEncBlocks, blocksPerStageDecoder: Array(repeating: 1, count: 12))
    public static let resEncL = PlannerPreset(
        name: "nnUNetPlannerResEncL", plansName: "nnUNetResEncUNetLPlans", network: .residualEncoderUNet, referenceValue3D: 2_100_000_000,
        referenceValue2D: 380_000_000, referenceGB: 24, defaultGPUMemoryGB: 24, maxDatasetCovered: 1,
        blocksPerStageEncoder: resEncBlocks, blocksPerStageDecoder: Array(repeating: 1, count: 12))
    public static let resEncXL = PlannerPreset(
        name: "nnUNetPlannerResEncXL", plansName: "nnUNetResEncUNetXLPlans", network: .residualEncoderUNet, referenceValue3D: 3_600_000_000,
        referenceValue2D: 560_000_000, referenceGB: 40, defaultGPUMemoryGB: 40, maxDatasetCovered: 1,
        blocksPerStageEncoder: resEncBlocks, blocksPerStageDecoder: Array(repeating: 1, count: 12))
    public static let all = [PlannerPreset.default, resEncM, resEncL, resEncXL]

    public static func named(_ name: String) -> PlannerPreset? {
        all.first { $0.name == name || (name == "nnUNetPlanner" && $0 == .default) }
    }

    public var networkClassName: String {
        switch network {
        case .plainConvUNet: return "dynamic_network_architectures.architectures.unet.PlainConvUNet"
        case .residualEncoderUNet: return "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
        }
    }
}

/// nnU-Net's estimate of a network's training memory: the number of values all convolutions (and
/// transposed convolutions, and the final 1x1 of the decoder) output for one patch
/// (`compute_conv_feature_map_size` of dynamic_network_architectures, without deep supervision, as
/// the planner builds the network).
public enum FeatureMapSize {
    private static func product(_ s: [Int]) -> Int64 { s.reduce(Int64(1)) { $0 * Int64($1) } }

    /// Sizes of the encoder stages' outputs.
    private static func stageSizes(_ patch: [Int], strides: [[Int]]) -> [[Int]] {
        var size = patch
        return strides.map { stride in
            size = zip(size, stride).map { $0 / $1 }
            return size
        }
    }

    private static func decoder(_ sizes: [[Int]], features: [Int], convs: [Int], classes: Int) -> Int64 {
        let n = features.count
        var total: Int64 = 0
        for s in 0..<(n - 1) {
            let skip = sizes[n - 2 - s], f = Int64(features[n - 2 - s]), v = product(skip)
            total += Int64(convs[s]) * f * v   // the stage's convolutions
            total += f * v                     // the transposed convolution
            if s == n - 2 { total += Int64(classes) * v }  // segmentation output
        }
        return total
    }

    public static func plainConvUNet(patch: [Int], features: [Int], strides: [[Int]], convsEncoder: [Int], convsDecoder: [Int],
                                     classes: Int) -> Int64 {
        let sizes = stageSizes(patch, strides: strides)
        var total: Int64 = 0
        for s in features.indices { total += Int64(convsEncoder[s]) * Int64(features[s]) * product(sizes[s]) }
        return total + decoder(sizes, features: features, convs: convsDecoder, classes: classes)
    }

    /// The stem (one conv to features[0]), then BasicBlockD residual blocks (two convolutions, plus the
    /// skip's 1x1 convolution where the block changes size or channels).
    public static func residualEncoderUNet(patch: [Int], features: [Int], strides: [[Int]], blocksEncoder: [Int], convsDecoder: [Int],
                                           classes: Int) -> Int64 {
        let sizes = stageSizes(patch, strides: strides)
        var total = Int64(features[0]) * product(patch)
        var input = patch
        for s in features.indices {
            let f = Int64(features[s]), v = product(sizes[s])
            let inChannels = s == 0 ? features[0] : features[s - 1]
            total += 2 * f * v
            if inChannels != features[s] || input != sizes[s] { total += f * v }
            total += Int64(blocksEncoder[s] - 1) * 2 * f * v
            input = sizes[s]
        }
        return total + decoder(sizes, features: features, convs: convsDecoder, classes: classes)
    }
}

/// nnU-Net v2's experiment planning (`ExperimentPlanner.plan_experiment` and
/// `get_plans_for_configuration`), from a data set fingerprint:
/// - target spacing: the median spacing; when one axis is more than 3x coarser than the others and
///   also has under a third of their voxels, that axis takes the 10th percentile of its spacings;
/// - median shape: the median of the cases' shapes resampled to the target spacing (rounded per case);
/// - patch: the spacing's aspect at 256^3 (3D) / 2048^2 (2D) voxels, clipped to the median shape,
///   padded to the pooling's divisor (`get_pool_and_conv_props`: pooling per axis until 4 voxels,
///   kernel 1 along far coarser axes); while the network's feature map size (`FeatureMapSize`) at batch
///   2 exceeds the preset's reference scaled to `gpuMemoryGB`, the axis largest relative to the median
///   shape shrinks by one divisor step;
/// - batch: reference / estimate times the reference batch, at most the preset's share of the data
///   set (5%: median image voxels x cases), at least 2;
/// - features 32 * 2^i capped 320 (3D) / 512 (2D).
/// The axes are used in array order; nnU-Net first moves the coarsest axis to the front, which
/// MedSeg's volumes ((z,) y, x) already have in the usual case.
public struct ExperimentPlanner {
    /// nnU-Net's `gpu_memory_target_in_gb`.
    public var memoryGB: Double
    public var preset: PlannerPreset

    public init(memoryGB: Double? = nil, preset: PlannerPreset = .default) {
        self.preset = preset
        self.memoryGB = memoryGB ?? preset.defaultGPUMemoryGB
    }

    private static func median(_ values: [Double]) -> Double {
        let v = values.sorted()
        return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
    }

    /// numpy's default (linear) percentile.
    private static func percentile(_ values: [Double], _ q: Double) -> Double {
        let v = values.sorted()
        let position = q / 100 * Double(v.count - 1)
        let lo = Int(position), hi = min(lo + 1, v.count - 1)
        return v[lo] + (v[hi] - v[lo]) * (position - Double(lo))
    }

    public func targetSpacing(_ fp: DatasetFingerprint) -> [Double] {
        let axes = fp.spacings.first?.indices ?? fp.medianSpacing.indices
        guard !fp.spacings.isEmpty else { return fp.medianSpacing }
        var target = axes.map { a in Self.median(fp.spacings.map { $0[a] }) }
        let size = axes.map { a in Self.median(fp.shapesAfterCrop.map { Double($0[a]) }) }
        guard target.count == 3 else { return target }
        var worst = 0
        for a in target.indices where target[a] > target[worst] { worst = a }
        let others = target.indices.filter { $0 != worst }
        let maxOther = others.map { target[$0] }.max()!
        let anisotropicSpacing = target[worst] > 3 * maxOther
        let anisotropicVoxels = size[worst] * 3 < others.map { size[$0] }.min()!
        if anisotropicSpacing && anisotropicVoxels {
            var p10 = Self.percentile(fp.spacings.map { $0[worst] }, 10)
            if p10 < maxOther { p10 = max(maxOther, p10) + 1e-5 }
            target[worst] = p10
        }
        return target
    }

    /// The median of the cases' shapes resampled to `spacing` (nnU-Net's `compute_new_shape`, rounded per case).
    public func medianShape(_ fp: DatasetFingerprint, at spacing: [Double]) -> [Double] {
        let shapes = zip(fp.shapesAfterCrop, fp.spacings).map { shape, old in
            spacing.indices.map { a in (old[a] / spacing[a] * Double(shape[a])).rounded(.toNearestOrEven) }
        }
        return spacing.indices.map { a in Self.median(shapes.map { $0[a] }) }
    }

    /// nnU-Net's `get_pool_and_conv_props` at the preset's smallest feature map edge.
    public static func poolAndConvProps(spacing: [Double], patch: [Double], minEdge: Int = PlannerPreset.featureMapMinEdgeLength)
        -> (strides: [[Int]], kernels: [[Int]], patch: [Double], divisor: [Int]) {
        PlainConvUNet.poolAndConvProps(spacing: spacing, patch: patch, minEdge: minEdge)
    }

    func estimate(patch: [Int], strides: [[Int]], features: [Int], classes: Int) -> Int64 {
        let n = features.count
        switch preset.network {
        case .plainConvUNet:
            return FeatureMapSize.plainConvUNet(patch: patch, features: features, strides: strides,
                                                convsEncoder: Array(preset.blocksPerStageEncoder.prefix(n)),
                                                convsDecoder: Array(preset.blocksPerStageDecoder.prefix(n - 1)), classes: classes)
        case .residualEncoderUNet:
            return FeatureMapSize.residualEncoderUNet(patch: patch, features: features, strides: strides,
                                                      blocksEncoder: Array(preset.blocksPerStageEncoder.prefix(n)),
                                                      convsDecoder: Array(preset.blocksPerStageDecoder.prefix(n - 1)), classes: classes)
        }
    }

    /// nnU-Net's `get_plans_for_configuration` at `spacing` for a median shape `median` (both of the
    /// configuration's dimensions) and `datasetVoxels` (median image voxels x cases).
    public func configuration(spacing: [Double], median: [Double], datasetVoxels: Double, classes: Int,
                              channelNames: [String]) -> PlannedConfiguration {
        let dims = spacing.count
        let maxFeatures = dims == 2 ? PlannerPreset.maxFeatures2D : PlannerPreset.maxFeatures3D
        func features(_ n: Int) -> [Int] { (0..<n).map { min(maxFeatures, PlannerPreset.baseFeatures << min($0, 20)) } }
        let inverse = spacing.map { 1 / $0 }
        let budget: Double = dims == 3 ? 256 * 256 * 256 : 2048 * 2048
        let scale = Foundation.pow(budget / inverse.reduce(1, *), 1 / Double(dims))
        let initial = zip(inverse, median).map { inv, m in min((inv * scale).rounded(.toNearestOrEven), m) }
        var props = Self.poolAndConvProps(spacing: spacing, patch: initial)
        var patch = props.patch
        func intPatch() -> [Int] { patch.map { Int($0) } }
        var estimate = self.estimate(patch: intPatch(), strides: props.strides, features: features(props.strides.count), classes: classes)
        let reference = (dims == 2 ? preset.referenceValue2D : preset.referenceValue3D) * (memoryGB / preset.referenceGB)
        let referenceBatch = Double(dims == 2 ? PlannerPreset.referenceBatch2D : PlannerPreset.referenceBatch3D)
        func tooLarge(_ e: Int64) -> Bool {
            // The plain planner asks for a batch of 2 at the reference; the residual ones compare directly.
            preset.network == .plainConvUNet ? Double(e) / referenceBatch * 2 > reference : Double(e) > reference
        }
        while tooLarge(estimate) {
            var axis = 0
            for a in patch.indices where patch[a] / median[a] >= patch[axis] / median[axis] { axis = a }
            var trial = patch
            trial[axis] -= Double(props.divisor[axis])
            let divisor = Self.poolAndConvProps(spacing: spacing, patch: trial).divisor
            patch[axis] -= Double(divisor[axis])
            props = Self.poolAndConvProps(spacing: spacing, patch: patch)
            patch = props.patch
            estimate = self.estimate(patch: intPatch(), strides: props.strides, features: features(props.strides.count), classes: classes)
        }
        var batch = Int((reference / Double(estimate) * referenceBatch).rounded(.toNearestOrEven))
        let cap = Int((datasetVoxels * preset.maxDatasetCovered / patch.reduce(1, *)).rounded(.toNearestOrEven))
        batch = max(min(batch, cap), PlannerPreset.minBatchSize)
        let n = props.strides.count
        let schemes = channelNames.map { $0.uppercased() == "CT" ? "CTNormalization" : "ZScoreNormalization" }
        return PlannedConfiguration(spacing: spacing, patch_size: intPatch(), batch_size: batch, median_image_size_in_voxels: median,
                                    features_per_stage: features(n), kernel_sizes: props.kernels, strides: props.strides,
                                    normalization_schemes: schemes, next_stage: nil, previous_stage: nil,
                                    network_class_name: preset.networkClassName,
                                    n_blocks_per_stage: Array(preset.blocksPerStageEncoder.prefix(n)),
                                    n_conv_per_stage_decoder: Array(preset.blocksPerStageDecoder.prefix(n - 1)),
                                    batch_dice: dims == 2, use_mask_for_norm: nil,
                                    resampling_fn_data_kwargs: .data, resampling_fn_seg_kwargs: .seg, resampling_fn_probabilities_kwargs: .probabilities)
    }

    /// nnU-Net's 3d_lowres, for data whose median image the full-resolution patch covers less
    /// than a quarter of: the spacing grows by 3% a step (only the finer axes while one axis is
    /// more than twice as coarse) until the patch covers a quarter of the median image there; not
    /// planned when that would not at least halve the median image's voxels.
    public func planLowResolution(_ fp: DatasetFingerprint, fullres: PlannedConfiguration, inChannels: Int, classes: Int,
                                  channelNames: [String]) throws -> PlannedConfiguration? {
        let threshold = 0.25
        let median = fullres.median_image_size_in_voxels
        let fullVoxels = median.reduce(1, *)
        guard fullres.spacing.count == 3 else { return nil }
        var spacing = fullres.spacing
        var plan: PlannedConfiguration?
        var voxels = fullVoxels
        var patchVoxels = Double(fullres.patch_size.reduce(1, *))
        var steps = 0
        while patchVoxels / voxels < threshold, steps < 10_000 {
            steps += 1
            let coarsest = spacing.max()!
            let fine = spacing.map { coarsest / $0 > 2 }
            spacing = spacing.indices.map { fine.contains(true) && !fine[$0] ? spacing[$0] : spacing[$0] * 1.03 }
            let shape = spacing.indices.map { fullres.spacing[$0] / spacing[$0] * median[$0] }
            voxels = shape.reduce(1, *)
            let p = configuration(spacing: spacing, median: shape.map { $0.rounded(.toNearestOrEven) },
                                  datasetVoxels: voxels * Double(fp.spacings.count), classes: classes, channelNames: channelNames)
            patchVoxels = Double(p.patch_size.reduce(1, *))
            plan = p
        }
        guard var low = plan, fullVoxels / voxels >= 2 else { return nil }
        low.next_stage = "3d_cascade_fullres"
        return low
    }

    /// A configuration of `dims` dimensions at the target spacing (or `spacing`, array order).
    public func plan(_ fp: DatasetFingerprint, dims: Int, inChannels: Int, classes: Int, channelNames: [String],
                     spacing override: [Double]? = nil) throws -> PlannedConfiguration {
        let fullSpacing = override ?? targetSpacing(fp)
        let median = medianShape(fp, at: fullSpacing)
        let datasetVoxels = median.reduce(1, *) * Double(fp.spacings.count)
        let k = fullSpacing.count - dims
        guard k >= 0 else { throw ConfigError("cannot plan \(dims)D patches for \(fullSpacing.count)D images") }
        return configuration(spacing: Array(fullSpacing.suffix(dims)), median: Array(median.suffix(dims)),
                             datasetVoxels: datasetVoxels, classes: classes, channelNames: channelNames)
    }
}
