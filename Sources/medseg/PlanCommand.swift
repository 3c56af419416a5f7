import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

/// `medseg plan DIR`: fingerprint the data set and write plans.json beside it, planned here or
/// taken from another data set (`--plans-from`).
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
    @Option(help: ArgumentHelp("Take another data set's plans instead of planning (nnU-Net's move_plans_between_datasets), to fine-tune a network trained there: a plans file, MedSeg's or nnU-Net's own (nnUNetPlans.json, a trained model's plans.json), or a folder holding plans.json.", valueName: "source"))
    var plansFrom: String?
    @Flag(help: "Replace configurations of an existing plans.json that planning now gives other values for (they may hold your edits).")
    var overwrite = false

    func run() throws {
        guard let preset = PlannerPreset.named(plannerName) else {
            throw ValidationError("unknown planner '\(plannerName)' (one of \(PlannerPreset.all.map(\.name).joined(separator: ", ")))")
        }
        if plansFrom != nil, plannerName != "ExperimentPlanner" || gpuMemory != nil {
            throw ValidationError("--plans-from takes the source's plans as they are; --planner and --gpu-memory go with planning")
        }
        let root = URL(fileURLWithPath: folder)
        let dataset = try RawDataset(root)
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: workers)
        let url = root.appendingPathComponent(ExperimentPlans.fileName)
        let planner = ExperimentPlanner(memoryGB: gpuMemory, preset: preset)
        var plans: ExperimentPlans
        if let plansFrom {
            // Checked against this data set before anything is written.
            let transfer = try PlansTransfer(from: URL(fileURLWithPath: plansFrom), to: dataset, fingerprint: fingerprint)
            plans = transfer.plans
            print("plans of \(transfer.source.path) for \(plans.dataset_name)")
            for note in transfer.notes { print("note: \(note)") }
        } else {
            let names = configs.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
            plans = try planner.planExperiment(fingerprint, description: dataset.description,
                                               datasetName: dataset.description.name ?? root.lastPathComponent, configurations: names) { print($0) }
        }
        if FileManager.default.fileExists(atPath: url.path) {
            let existing: ExperimentPlans
            do { existing = try ExperimentPlans.load(url) } catch where overwrite { existing = ExperimentPlans(dataset_name: plans.dataset_name, configurations: [:]) }
            let update = try PlansUpdate(existing: existing, new: plans, overwrite: overwrite, file: url)
            plans = update.plans
            for name in update.kept { print("kept \(name) of the existing plans.json (not planned by this run)") }
            for name in update.replaced { print("replaced \(name) of the existing plans.json (--overwrite)") }
        }
        try fingerprint.write(to: root)
        try plans.write(to: url)
        for (name, c) in plans.configurations.sorted(by: { $0.key < $1.key }) {
            print("\(name): spacing [\(c.spacing.map { String(format: "%.3g", $0) }.joined(separator: ", "))], patch \(c.patch_size), batch \(c.batch_size), "
                  + "\(c.features_per_stage.count) stages, strides \(c.strides)")
        }
        if plansFrom == nil {
            print("\(preset.name) (\(preset.plansName)), GPU memory target \(planner.memoryGB) GB")
        }
        print("wrote \(url.path) and \(DatasetFingerprint.fileName)")
    }
}
