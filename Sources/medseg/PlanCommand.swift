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
        let planner = ExperimentPlanner(memoryGB: gpuMemory, preset: preset)
        let names = configs.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        let plans = try planner.planExperiment(fingerprint, description: dataset.description,
                                               datasetName: dataset.description.name ?? root.lastPathComponent, configurations: names) { print($0) }
        let configurations = plans.configurations
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
