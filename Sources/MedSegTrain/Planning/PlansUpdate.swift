import Foundation
import Torch
import MedSegData

/// Writing plans over an existing plans.json, which users edit (the README invites it). As
/// nnU-Net's planner does, configurations the new plans do not hold (a user's own, added by hand)
/// are kept. Unlike nnU-Net, a configuration the new plans would change is not replaced silently:
/// it may hold the user's edits, so that needs `overwrite`, and the refusal names what differs.
public struct PlansUpdate {
    public let plans: ExperimentPlans
    /// Configurations of the existing file kept because the new plans do not hold them.
    public let kept: [String]
    /// Configurations the new plans changed (only with `overwrite`).
    public let replaced: [String]

    public init(existing: ExperimentPlans, new: ExperimentPlans, overwrite: Bool, file: URL) throws {
        var merged = new
        var kept: [String] = [], replaced: [String] = [], refused: [String] = []
        for (name, old) in existing.configurations.sorted(by: { $0.key < $1.key }) {
            guard let planned = new.configurations[name] else {
                merged.configurations[name] = old
                kept.append(name)
                continue
            }
            let differences = Self.differences(old, planned)
            guard !differences.isEmpty else { continue }
            replaced.append(name)
            refused.append("\(name) (\(differences.joined(separator: "; ")))")
        }
        if existing.foreground_intensity_properties_per_channel != nil,
           existing.foreground_intensity_properties_per_channel != new.foreground_intensity_properties_per_channel {
            refused.append("the foreground intensities of CT normalization")
        }
        if !overwrite && !refused.isEmpty {
            throw ConfigError("\(file.path): planning now gives other values for \(refused.joined(separator: ", ")); the file may hold your edits: "
                              + "pass \(Setting.named("overwrite", value: "true")) to replace them (other configurations are kept), or plan a copy of the data set")
        }
        self.plans = merged
        self.kept = kept
        self.replaced = replaced
    }

    /// "key: old -> new" for each setting of a configuration that differs.
    static func differences(_ old: PlannedConfiguration, _ new: PlannedConfiguration) -> [String] {
        func text(_ value: Any) -> String {
            let mirror = Mirror(reflecting: value)
            guard mirror.displayStyle == .optional else { return "\(value)" }
            return mirror.children.first.map { "\($0.value)" } ?? "absent"
        }
        return zip(Mirror(reflecting: old).children, Mirror(reflecting: new).children).compactMap { a, b in
            let (x, y) = (text(a.value), text(b.value))
            return x == y ? nil : "\(a.label ?? "?"): \(x) -> \(y)"
        }
    }
}
