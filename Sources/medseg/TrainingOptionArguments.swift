import ArgumentParser
import Foundation
import MedSegTrain

/// The training options of a command line, read from the options `TrainingConfig` declares:
/// `batch_size` is `--batch-size N` (or `--batch-size=N`), a boolean is `--deep-supervision` or
/// `--no-deep-supervision`, a choice is checked against its words. Adding an option to the config
/// adds its flag, its help and its check here.
struct TrainingOptionArguments {
    /// The values given, by key, as config files hold them.
    private(set) var values: [String: Any] = [:]

    var keys: Set<String> { Set(values.keys) }

    init(parsing words: [String]) throws {
        var rest = words[...]
        while let word = rest.popFirst() {
            guard word.hasPrefix("--"), word.count > 2 else { throw ValidationError("unexpected argument '\(word)'") }
            let parts = word.dropFirst(2).split(separator: "=", maxSplits: 1).map(String.init)
            var key = parts[0].replacingOccurrences(of: "-", with: "_")
            var negated = false
            if Self.option(key) == nil, key.hasPrefix("no_"), Self.option(String(key.dropFirst(3)))?.isFlag == true {
                key = String(key.dropFirst(3))
                negated = true
            }
            guard let option = Self.option(key) else {
                let hint = TrainingConfig.closestKey(to: key).flatMap { Self.option($0) == nil ? nil : " (did you mean '\(Self.flag($0))'?)" } ?? ""
                throw ValidationError("unknown option '\(word.split(separator: "=").first!)'\(hint)")
            }
            let text: String
            if option.isFlag {
                guard parts.count == 1 || !negated else { throw ValidationError("\(Self.flag(key, negated: true)) takes no value") }
                text = parts.count == 2 ? parts[1] : negated ? "false" : "true"
            } else if parts.count == 2 {
                text = parts[1]
            } else {
                // Any next word is the value, "-1" too (so that the check can say what is wrong with it).
                guard let next = rest.popFirst() else { throw ValidationError("missing value for '\(Self.flag(key)) \(option.placeholder)'") }
                text = next
            }
            guard var value = option.configValue(text) else {
                let allowed = option.choices.map { "; choose one of \(($0 + option.aliasWords).joined(separator: ", "))" } ?? ""
                throw ValidationError("the value '\(text)' is invalid for '\(Self.flag(key)) \(option.placeholder)'\(allowed)")
            }
            if option.isPath, let path = value as? String, !path.isEmpty { value = URL(fileURLWithPath: path).standardizedFileURL.path }
            values[key] = value
        }
    }

    /// The option of `key` if the command line may set it.
    private static func option(_ key: String) -> (any AnyTrainingOption)? {
        TrainingConfig.option(key).flatMap { $0.onCommandLine ? $0 : nil }
    }

    static func flag(_ key: String, negated: Bool = false) -> String {
        (negated ? "--no-" : "--") + key.replacingOccurrences(of: "_", with: "-")
    }

    /// Sets a value the command derives (a shortcut flag, the environment) as if it had been given.
    mutating func set(_ key: String, _ value: Any) { values[key] = value }

    /// The options with their flags, keys, defaults and help, for `train --help` (wrapped here,
    /// so that each help stays indented under its flag).
    static var help: String {
        TrainingConfig.options.filter(\.option.onCommandLine).map { key, option in
            let flag = option.isFlag ? "\(Self.flag(key))/\(Self.flag(key, negated: true))" : "\(Self.flag(key)) \(option.placeholder)"
            // Choices the help names already (the models with their references) are not listed twice.
            let listed = option.choices.map { $0.allSatisfy { option.help.contains($0) } } ?? true
            let choices = listed ? "" : option.choices.map { " Choices: \(($0 + option.aliasWords).joined(separator: ", "))." } ?? ""
            let shown = option.defaultText.isEmpty ? "none" : option.defaultText
            return "  \(flag)\n" + wrap("\(option.help)\(choices) Key \(key), default \(shown).", width: 78, indent: "      ")
        }.joined(separator: "\n")
    }

    private static func wrap(_ text: String, width: Int, indent: String) -> String {
        var lines: [String] = [], line = indent
        for word in text.split(separator: " ") {
            if line.count > indent.count, line.count + 1 + word.count > width {
                lines.append(line)
                line = indent
            }
            line += (line.count > indent.count ? " " : "") + word
        }
        return (lines + [line]).joined(separator: "\n")
    }
}
