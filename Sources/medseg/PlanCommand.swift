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
    @Option(help: "Memory budget for one training step, in GB.") var gpuMemory: Double = 8
    @Option(help: "Configurations to plan: 2d, 3d_fullres.") var configs = "2d,3d_fullres"
    @Option(help: "Threads reading cases.") var workers = 2

    func run() throws {
        let root = URL(fileURLWithPath: folder)
        let dataset = try RawDataset(root)
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: workers)
        try fingerprint.write(to: root)
        let d = dataset.description
        let dims = fingerprint.medianSpacing.count
        let planner = ExperimentPlanner(memoryGB: gpuMemory)
        var configurations: [String: PlannedConfiguration] = [:]
        for name in configs.split(separator: ",").map({ String($0).trimmingCharacters(in: .whitespaces) }) {
            switch name {
            case "2d": configurations[name] = try planner.plan(fingerprint, dims: 2, inChannels: d.channelCount, classes: d.labelValues.count,
                                                              channelNames: d.orderedChannelNames)
            case "3d_fullres":
                guard dims == 3 else { continue }
                configurations[name] = try planner.plan(fingerprint, dims: 3, inChannels: d.channelCount, classes: d.labelValues.count,
                                                        channelNames: d.orderedChannelNames)
            default: throw ValidationError("unknown configuration '\(name)' (planned here: 2d, 3d_fullres)")
            }
        }
        let plans = ExperimentPlans(dataset_name: d.name ?? root.lastPathComponent, configurations: configurations)
        let url = root.appendingPathComponent(ExperimentPlans.fileName)
        try plans.write(to: url)
        for (name, c) in configurations.sorted(by: { $0.key < $1.key }) {
            print("\(name): spacing [\(c.spacing.map { String(format: "%.3g", $0) }.joined(separator: ", "))], patch \(c.patch_size), batch \(c.batch_size), "
                  + "\(c.features_per_stage.count) stages, strides \(c.strides)")
        }
        print("wrote \(url.path) and \(DatasetFingerprint.fileName)")
    }
}
