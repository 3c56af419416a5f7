import Foundation
import MedSegData

/// Another data set's plans for this one, as nnU-Net's `nnUNetv2_move_plans_between_datasets`:
/// the same spacing, patches, network topology and normalization, and the source's foreground
/// intensities for CT normalization, so that a network trained on the source has the same shape
/// here and its weights fine-tune (`train --pretrained-weights`). The source is MedSeg's plans or
/// nnU-Net's own (`nnUNetPlans.json`, a trained model's `plans.json`).
public struct PlansTransfer {
    public let plans: ExperimentPlans
    /// The plans file read.
    public let source: URL
    /// What the user should know: configurations left out, channels or labels that differ.
    public let notes: [String]

    /// `source`: a plans file, or a folder holding plans.json (a data set, run or model folder).
    public init(from source: URL, to dataset: RawDataset, fingerprint: DatasetFingerprint) throws {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isFolder) else {
            throw ConfigError("\(source.path): no such plans file or folder")
        }
        var file = isFolder.boolValue ? source.appendingPathComponent(ExperimentPlans.fileName) : source
        if !FileManager.default.fileExists(atPath: file.path) {
            // nnU-Net's preprocessed folder names its plans after the planner (nnUNetPlans.json, nnUNetResEncUNetMPlans.json).
            let named = ((try? FileManager.default.contentsOfDirectory(atPath: source.path)) ?? []).filter { $0.hasSuffix("Plans.json") }.sorted()
            guard named.count == 1 else {
                throw ConfigError(named.isEmpty
                    ? "\(source.path): holds no \(ExperimentPlans.fileName); plan that data set first (`medseg plan`), or give the plans file itself (nnU-Net's nnUNetPlans.json)"
                    : "\(source.path): holds several plans (\(named.joined(separator: ", "))); give the one to take")
            }
            file = source.appendingPathComponent(named[0])
        }
        var plans = try ExperimentPlans.load(file)
        let beside = file.deletingLastPathComponent()
        let description = dataset.description
        let target = dataset.root.appendingPathComponent("dataset.json").path
        var notes: [String] = []

        // Each configuration needs this data set's channels and dimensions.
        let dims = fingerprint.medianSpacing.count
        for (name, c) in plans.configurations.sorted(by: { $0.key < $1.key }) {
            guard c.normalization_schemes.count == description.channelCount else {
                throw ConfigError("\(file.path): configuration '\(name)' takes \(c.normalization_schemes.count) input channel(s) (\(c.normalization_schemes.joined(separator: ", "))), but \(target) has \(description.channelCount)")
            }
            if c.spacing.count > dims {
                plans.configurations[name] = nil
                notes.append("\(name) left out: it plans \(c.spacing.count)D patches, and this data set's images are \(dims)D")
            }
        }
        guard !plans.configurations.isEmpty else {
            throw ConfigError("\(file.path): no configuration of these plans fits this data set's \(dims)D images")
        }
        // A cascade stage whose partner was left out cannot run.
        for (name, c) in plans.configurations {
            if let previous = c.previous_stage, plans.configurations[previous] == nil { plans.configurations[name] = nil }
            if let next = c.next_stage, plans.configurations[next] == nil { plans.configurations[name]?.next_stage = nil }
        }

        // CT normalization clips and scales with the source's intensities: from the plans, else
        // from the fingerprint beside them.
        if plans.foreground_intensity_properties_per_channel == nil {
            let fingerprintURL = beside.appendingPathComponent(DatasetFingerprint.fileName)
            if FileManager.default.fileExists(atPath: fingerprintURL.path) {
                plans.foreground_intensity_properties_per_channel = try DatasetFingerprint.load(fingerprintURL).foregroundIntensityPropertiesPerChannel
            }
        }
        let ctChannels = plans.configurations.values.flatMap { c in c.normalization_schemes.indices.filter { c.normalization_schemes[$0] == "CTNormalization" } }
        if let missing = Set(ctChannels).sorted().first(where: { plans.foreground_intensity_properties_per_channel?[String($0)] == nil }) {
            throw ConfigError("\(file.path): channel \(missing) is CT-normalized, but neither the plans (foreground_intensity_properties_per_channel) nor a \(DatasetFingerprint.fileName) beside them give the source's intensities")
        }

        // The source's dataset.json, where it lies beside the plans (a MedSeg data set or run, an
        // nnU-Net results or preprocessed folder), tells whether channels and labels agree.
        if let sourceDescription = try? DatasetDescription.load(beside.appendingPathComponent("dataset.json")) {
            let theirs = sourceDescription.orderedChannelNames, ours = description.orderedChannelNames
            if theirs.map({ $0.lowercased() }) != ours.map({ $0.lowercased() }) {
                notes.append("channels differ: the source's are \(theirs.joined(separator: ", ")), this data set's \(ours.joined(separator: ", ")); the plans' normalization (\(plans.configurations.values.first!.normalization_schemes.joined(separator: ", "))) is kept")
            }
            if sourceDescription.labelValues.count != description.labelValues.count {
                notes.append("the source has \(sourceDescription.labelValues.count) labels, this data set \(description.labelValues.count): fine-tuning loads every tensor but the segmentation head")
            }
        }
        plans.dataset_name = description.name ?? dataset.root.lastPathComponent
        self.plans = plans
        self.source = file
        self.notes = notes
    }
}
