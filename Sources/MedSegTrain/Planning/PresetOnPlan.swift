import Foundation
import MedSegModels

/// A named preset trained on a planned configuration (`--preset liver-unetpp-3d --config
/// 3d_fullres`): the plan decides what depends on the data set (dimensions, patch, batch, batch
/// Dice, the preprocessed cases' normalization and, for networks built on the plan's stages, the
/// widths and depth); the preset decides the rest it sets (its model, optimizer, schedule, loss,
/// precision, ...) over nnU-Net's recipe. Every value on which the two disagree is reported with
/// where it came from, so nothing is overridden silently.
public struct PresetOnPlan {
    public let config: TrainingConfig
    /// One line per disagreeing key: the value kept, and the other side's.
    public let report: [String]

    /// Keys the plan always decides.
    static let planKeys: Set<String> = ["dims", "patch_size", "batch_size", "batch_dice", "normalization", "configuration", "plans"]
    /// Networks built on a plan's stages, kernel sizes and strides.
    public static let plannedNetworks: Set<ModelName> = [.plainunet, .resencunet, .unetpp]

    public init(preset name: String, setup: PlannedSetup, plansFile: URL) throws {
        let preset = try TrainingPresets.config(name)
        let presetKeys = try TrainingPresets.keys(name)
        let planned = TrainingConfig().applying(setup, plansFile: plansFile)
        var owned = Self.planKeys
        if Self.plannedNetworks.contains(preset.model) { owned.formUnion(["features", "depth"]) }
        var values = try planned.mapping(), presetValues = try preset.mapping()
        var report: [String] = []
        func text(_ v: AnyCodable?) -> String { v.map { "\($0.value)" } ?? "none" }
        for key in presetKeys.sorted() {
            let ours = values[key], theirs = presetValues[key]
            guard text(ours) != text(theirs) else { continue }
            if owned.contains(key) {
                report.append("\(key): \(text(ours)) from plan \(setup.name) (preset \(name) says \(text(theirs)))")
            } else {
                values[key] = theirs
                let why = key == "model" ? "the plan's network"
                    : TrainingConfig.nnUNetTrainingKeys.contains(key) ? "nnU-Net's recipe" : "the default"
                report.append("\(key): \(text(theirs)) from preset \(name) (\(why): \(text(ours)))")
            }
        }
        var config = try TrainingConfig.decoding(values)
        if config.model != planned.model && Self.plannedNetworks.contains(config.model) {
            report.append("\(config.model.rawValue) is built on plan \(setup.name)'s \(setup.plan.strides.count) stages, kernel sizes and strides")
        }
        config.deep_supervision = preset.deep_supervision || planned.deep_supervision
        // A network of its own (MedNeXt, Primus, ...) keeps its width and takes the plan's patch rounded
        // up to what it divides, as `--config NAME --model X` gives it.
        if !Self.plannedNetworks.contains(config.model) {
            let own = config.ownNetworkOnPlan(keeping: presetKeys.subtracting(Self.planKeys))
            if own.patch_size != config.patch_size {
                report.append("patch_size: \(own.patch_size), plan \(setup.name)'s \(config.patch_size) rounded up to what \(config.model.rawValue) divides")
            }
            config = own
        }
        self.config = config
        self.report = report
    }
}
