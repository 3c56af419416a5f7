import Foundation
import MedSegData

extension ExperimentPlanner {
    /// The configurations nnU-Net plans by name.
    public static let configurationNames = ["2d", "3d_fullres", "3d_lowres"]

    /// Plans the named configurations of a data set: 2d, 3d_fullres (3D data only) and 3d_lowres
    /// with its cascade 3d_cascade_fullres, where the full-resolution patch covers under a quarter
    /// of the median image. `say` hears why a configuration was left out.
    public func planExperiment(_ fingerprint: DatasetFingerprint, description d: DatasetDescription, datasetName: String,
                               configurations names: [String], say: (String) -> Void = { _ in }) throws -> ExperimentPlans {
        let dims = fingerprint.medianSpacing.count
        let classes = d.labelValues.count
        var configurations: [String: PlannedConfiguration] = [:]
        func plan(_ dims: Int) throws -> PlannedConfiguration {
            var p = try self.plan(fingerprint, dims: dims, inChannels: d.channelCount, classes: classes, channelNames: d.orderedChannelNames)
            let schemes = p.normalization_schemes.map { PlannedConfiguration.normalizationNames[$0] ?? .zscore }
            p.use_mask_for_norm = PreprocessingNormalization.useMaskForNorm(schemes, medianRelativeSizeAfterCropping: fingerprint.medianRelativeSizeAfterCropping)
            return p
        }
        // As nnU-Net: batch Dice for 2d, and for 3d_fullres only where a 3d_lowres stage exists.
        func lowResolution(_ full: PlannedConfiguration) throws -> PlannedConfiguration? {
            var low = try planLowResolution(fingerprint, fullres: full, inChannels: d.channelCount, classes: classes, channelNames: d.orderedChannelNames)
            low?.use_mask_for_norm = full.use_mask_for_norm
            low?.batch_dice = false
            return low
        }
        for name in names {
            switch name {
            case "2d": configurations[name] = try plan(2)
            case "3d_fullres":
                guard dims == 3 else { continue }
                var full = try plan(3)
                full.batch_dice = try lowResolution(full) != nil
                configurations[name] = full
            case "3d_lowres":
                guard dims == 3 else { continue }
                var full = try plan(3)
                guard let low = try lowResolution(full) else {
                    say(String(format: "3d_lowres: not needed, the full-resolution patch covers %.0f%% of the median image",
                               100 * Double(full.patch_size.reduce(1, *)) / full.median_image_size_in_voxels.reduce(1, *)))
                    continue
                }
                configurations[name] = low
                full.batch_dice = true
                var cascade = full
                cascade.previous_stage = name
                configurations["3d_cascade_fullres"] = cascade
            default:
                throw ConfigError("unknown configuration '\(name)' (planned here: \(Self.configurationNames.joined(separator: ", ")))")
            }
        }
        return ExperimentPlans(dataset_name: datasetName, plans_name: preset.plansName, configurations: configurations,
                               foreground_intensity_properties_per_channel: fingerprint.foregroundIntensityPropertiesPerChannel)
    }
}
