import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

/// `medseg plan DIR`: fingerprint the data set and write plans.json beside it.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Fingerprint a data set and plan spacing, patch, batch and network per configuration (plans.json).")

    @Argument(help: "Data set folder (dataset.json, imagesTr, labelsTr).") var folder: String
    @Option(help: "GPU memory target in GB (nnU-Net's gpu_memory_target_in_gb); default: the planner's own (8, ResEnc L 24, XL 40).") var gpuMemory: Double?
    @Option(name: .customLong("planner"), help: "nnU-Net planner: ExperimentPlanner (default, plans nnUNetPlans), nnUNetPlannerResEncM, nnUNetPlannerResEncL, nnUNetPlannerResEncXL.")
    var plannerName = "ExperimentPlanner"
    @Option(help: "Configurations to plan: 2d, 3d_fullres, 3d_lowres (with its cascade, only where the full-resolution patch covers under a quarter of the median image).") var configs = "2d,3d_fullres,3d_lowres"
    @Option(help: "Threads reading cases.") var workers = 2

    func run() throws {
        guard let preset = PlannerPreset.named(plannerName) else {
            throw ValidationError("unknown planner '\(plannerName)' (one of \(PlannerPreset.all.map(\.name).joined(separator: ", ")))")
        }
        let root = URL(fileURLWithPath: folder)
        let dataset = try RawDataset(root)
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: workers)
        try fingerprint.write(to: root)
        let d = dataset.description
        let dims = fingerprint.medianSpacing.count
        let planner = ExperimentPlanner(memoryGB: gpuMemory, preset: preset)
        var configurations: [String: PlannedConfiguration] = [:]
        func fullres() throws -> PlannedConfiguration {
            try planner.plan(fingerprint, dims: 3, inChannels: d.channelCount, classes: d.labelValues.count, channelNames: d.orderedChannelNames)
        }
        for name in configs.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
            switch name {
            case "2d": configurations[name] = try planner.plan(fingerprint, dims: 2, inChannels: d.channelCount, classes: d.labelValues.count,
                                                              channelNames: d.orderedChannelNames)
            case "3d_fullres":
                guard dims == 3 else { continue }
                configurations[name] = try fullres()
            case "3d_lowres":
                guard dims == 3 else { continue }
                let full = try fullres()
                guard let low = try planner.planLowResolution(fingerprint, fullres: full, inChannels: d.channelCount, classes: d.labelValues.count,
                                                              channelNames: d.orderedChannelNames) else {
                    print(String(format: "3d_lowres: not needed, the full-resolution patch covers %.0f%% of the median image",
                                 100 * Double(full.patch_size.reduce(1, *)) / full.median_image_size_in_voxels.reduce(1, *)))
                    continue
                }
                configurations[name] = low
                var cascade = full
                cascade.previous_stage = name
                configurations["3d_cascade_fullres"] = cascade
            default: throw ValidationError("unknown configuration '\(name)' (planned here: 2d, 3d_fullres, 3d_lowres)")
            }
        }
        let plans = ExperimentPlans(dataset_name: d.name ?? root.lastPathComponent, plans_name: preset.plansName,
                                    configurations: configurations)
        let url = root.appendingPathComponent(ExperimentPlans.fileName)
        try plans.write(to: url)
        for (name, c) in configurations.sorted(by: { $0.key < $1.key }) {
            print("\(name): spacing [\(c.spacing.map { String(format: "%.3g", $0) }.joined(separator: ", "))], patch \(c.patch_size), batch \(c.batch_size), "
                  + "\(c.features_per_stage.count) stages, strides \(c.strides)")
        }
        print("\(preset.name) (\(preset.plansName)), GPU memory target \(planner.memoryGB) GB")
        print("wrote \(url.path) and \(DatasetFingerprint.fileName)")
    }
}
