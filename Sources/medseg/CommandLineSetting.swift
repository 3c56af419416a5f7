import Foundation

/// The flag that sets a library's setting, for its messages (`Setting.named`): `previous_stage`
/// is `--previous-stage EXP`, a boolean setting is its flag (`--overwrite`, or `--no-freeze-encoder`
/// for `freeze_encoder: false`).
enum CommandLineSetting {
    @Sendable static func flag(_ key: String, value: String?) -> String {
        let name = key.replacingOccurrences(of: "_", with: "-")
        switch value {
        case "true": return "--\(name)"
        case "false": return "--no-\(name)"
        case let value?: return "--\(name) \(value)"
        case nil: return "--\(name)"
        }
    }
}
