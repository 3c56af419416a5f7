import Foundation
import MedSegData
import MedSegModels
import Torch

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

    /// The network's own feature-map size (`featureMapSize(patch:)`) at a candidate topology.
    func estimate(patch: [Int], strides: [[Int]], features: [Int], classes: Int) -> Int64 {
        let n = features.count
        // The kernels do not change the count; the planned ones come after the patch is fixed.
        let kernels = Array(repeating: Array(repeating: 3, count: patch.count), count: n)
        switch preset.network {
        case .plainConvUNet:
            return PlainConvUNet.Config(dims: patch.count, inChannels: 1, classes: classes, featuresPerStage: features, kernelSizes: kernels,
                                        strides: strides, nConvPerStage: preset.blocksPerStageEncoder[0],
                                        nConvPerStageDecoder: preset.blocksPerStageDecoder[0]).featureMapSize(patch: patch)
        case .residualEncoderUNet:
            return ResidualEncoderUNet.Config(dims: patch.count, inChannels: 1, classes: classes, featuresPerStage: features, kernelSizes: kernels,
                                              strides: strides, blocksPerStage: Array(preset.blocksPerStageEncoder.prefix(n)),
                                              nConvPerStageDecoder: preset.blocksPerStageDecoder[0]).featureMapSize(patch: patch)
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
