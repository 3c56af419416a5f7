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
}

public struct ExperimentPlans: Codable, Equatable, Sendable {
    public var dataset_name: String
    public var configurations: [String: PlannedConfiguration]

    public static let fileName = "plans.json"

    public init(dataset_name: String, configurations: [String: PlannedConfiguration]) {
        self.dataset_name = dataset_name
        self.configurations = configurations
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(try encoder.encode(self), to: url)
    }

    public static func load(_ url: URL) throws -> ExperimentPlans {
        do { return try JSONDecoder().decode(ExperimentPlans.self, from: Data(contentsOf: url)) } catch {
            throw ConfigError("\(url.path): not a valid plans file (\(error))")
        }
    }
}

/// nnU-Net's experiment planning rules, from a data set fingerprint:
/// - target spacing: the median spacing; when one axis is more than 3x coarser than the others and
///   also has under a third of their voxels, that axis takes the 10th percentile of its spacings;
/// - patch: the median shape's aspect at about 256^3 (3D) / 2048^2 (2D) voxels, capped by the median
///   shape, then shrunk along the axis largest relative to the median shape until the estimated
///   activation memory of a batch of 2 fits `memoryGB`;
/// - topology from `PlainConvUNet.Config.fromPlan` (pooling per axis until ~4 voxels, kernel 1
///   along far coarser axes, features 32 * 2^i capped 320/512);
/// - batch: as many as fit the memory estimate, at least 2, at most 5% of the data set's voxels.
/// The memory estimate (activations of every stage, forward and backward, float32) is MedSeg's own
/// approximation, not nnU-Net's measured VRAM table.
public struct ExperimentPlanner {
    public var memoryGB: Double = 8

    public init(memoryGB: Double = 8) { self.memoryGB = memoryGB }

    public func targetSpacing(_ fp: DatasetFingerprint) -> [Double] {
        var target = fp.medianSpacing
        guard target.count == 3, let worst = target.indices.max(by: { target[$0] < target[$1] }) else { return target }
        let others = target.indices.filter { $0 != worst }
        let anisotropicSpacing = target[worst] > 3 * others.map { target[$0] }.max()!
        let anisotropicVoxels = fp.medianShape[worst] * 3 < others.map { fp.medianShape[$0] }.min()!
        if anisotropicSpacing && anisotropicVoxels {
            let values = fp.spacings.map { $0[worst] }.sorted()
            let position = 0.1 * Double(values.count - 1)
            let lo = Int(position), hi = min(lo + 1, values.count - 1)
            let p10 = values[lo] + (values[hi] - values[lo]) * (position - Double(lo))
            target[worst] = max(p10, others.map { target[$0] }.max()! + 1e-5)
        }
        return target
    }

    /// Bytes of activations for one training step (forward + backward) of `batch` patches.
    func memoryEstimate(_ c: PlainConvUNet.Config, patch: [Int], batch: Int) -> Double {
        var size = patch.map(Double.init)
        var total = 0.0
        for (stage, stride) in c.strides.enumerated() {
            size = zip(size, stride).map { $0 / Double($1) }
            let voxels = size.reduce(1, *)
            // Encoder and decoder convolutions, each keeping conv, norm and activation outputs.
            total += Double(c.featuresPerStage[stage]) * voxels * Double(c.nConvPerStage + c.nConvPerStageDecoder) * 3
        }
        return total * Double(batch) * 4 * 2
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
        guard fullres.spacing.count == 3, Double(fullres.patch_size.reduce(1, *)) / fullVoxels < threshold else { return nil }
        var spacing = fullres.spacing
        var plan = fullres
        var voxels = fullVoxels
        for _ in 0..<10_000 {
            let coarsest = spacing.max()!
            let fine = spacing.map { coarsest / $0 > 2 }
            spacing = spacing.indices.map { fine.contains(true) && !fine[$0] ? spacing[$0] : spacing[$0] * 1.03 }
            voxels = spacing.indices.map { fullres.spacing[$0] / spacing[$0] * median[$0] }.reduce(1, *)
            plan = try self.plan(fp, dims: 3, inChannels: inChannels, classes: classes, channelNames: channelNames, spacing: spacing)
            if Double(plan.patch_size.reduce(1, *)) / voxels >= threshold { break }
        }
        guard fullVoxels / voxels >= 2 else { return nil }
        plan.next_stage = "3d_cascade_fullres"
        return plan
    }

    /// A configuration of `dims` dimensions at the target spacing (or `spacing`, array order).
    public func plan(_ fp: DatasetFingerprint, dims: Int, inChannels: Int, classes: Int, channelNames: [String],
                     spacing override: [Double]? = nil) throws -> PlannedConfiguration {
        let fullSpacing = override ?? targetSpacing(fp)
        let spacing = dims == 3 ? fullSpacing : Array(fullSpacing.suffix(2))
        let medianAtTarget: [Double] = {
            let shapes = fp.shapesAfterCrop.enumerated().map { i, shape in
                zip(zip(shape, fp.spacings[i]), fullSpacing).map { Double($0.0) * $0.1 / $1 }
            }
            return (0..<fullSpacing.count).map { axis in
                let v = shapes.map { $0[axis] }.sorted()
                return v.count % 2 == 1 ? v[v.count / 2] : (v[v.count / 2 - 1] + v[v.count / 2]) / 2
            }
        }()
        let median = dims == 3 ? medianAtTarget : Array(medianAtTarget.suffix(2))
        // Start from the median shape's aspect ratio at a fixed voxel budget.
        let inverse = spacing.map { 1 / $0 }
        let budgetVoxels: Double = dims == 3 ? 256 * 256 * 256 : 2048 * 2048
        let product: Double = inverse.reduce(1, *)
        let scale: Double = Foundation.pow(budgetVoxels / product, 1 / Double(dims))
        var patch: [Int] = []
        for (inv, m) in zip(inverse, median) {
            // Python's round / np.round: halves to even.
            let wanted: Double = (inv * scale).rounded(.toNearestOrEven)
            patch.append(max(8, Int(min(wanted, m.rounded(.toNearestOrEven)))))
        }
        var config = try PlainConvUNet.Config.fromPlan(patchSize: patch, spacing: spacing, dims: dims, inChannels: inChannels, classes: classes)
        func align() {
            for axis in patch.indices {
                let d = config.divisor[axis]
                patch[axis] = max(d, (patch[axis] + d - 1) / d * d)
            }
        }
        align()
        config = try PlainConvUNet.Config.fromPlan(patchSize: patch, spacing: spacing, dims: dims, inChannels: inChannels, classes: classes)
        let budget = memoryGB * 1_073_741_824
        while memoryEstimate(config, patch: patch, batch: 2) > budget {
            let axis = patch.indices.max { Double(patch[$0]) / median[$0] < Double(patch[$1]) / median[$1] }!
            let step = config.divisor[axis]
            guard patch[axis] - step >= step else { break }
            patch[axis] -= step
            config = try PlainConvUNet.Config.fromPlan(patchSize: patch, spacing: spacing, dims: dims, inChannels: inChannels, classes: classes)
            align()
        }
        let fits = Int(budget / memoryEstimate(config, patch: patch, batch: 1))
        let datasetVoxels = fp.shapesAfterCrop.map { Double($0.reduce(1, *)) }.reduce(0, +)
        let capByData = Int(0.05 * datasetVoxels / Double(patch.reduce(1, *)))
        let batch = max(2, min(fits, capByData))
        let schemes = channelNames.map { $0.uppercased() == "CT" ? "CTNormalization" : "ZScoreNormalization" }
        return PlannedConfiguration(spacing: spacing, patch_size: patch, batch_size: batch, median_image_size_in_voxels: median,
                                    features_per_stage: config.featuresPerStage, kernel_sizes: config.kernelSizes,
                                    strides: config.strides, normalization_schemes: schemes)
    }
}
