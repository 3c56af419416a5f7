import Foundation
import MedSegData
import MedSegModels
import Torch

/// One training option, declared once where `TrainingConfig` stores it: the property's name is its
/// key (in config files and, as `--batch-size` for `batch_size`, on the command line), its type
/// and initial value are the option's, and the declaration adds its help and its check. The
/// command line, the help text, config files and validation all read these declarations.
@propertyWrapper
public struct TrainingOption<Value: OptionValue>: Codable, Equatable, Sendable {
    public var wrappedValue: Value
    public let help: String
    /// The problem with a value ("must be positive, got 0"), nil when it is allowed.
    let check: (@Sendable (Value) -> String?)?
    /// A path: the command line makes it absolute, so a run resumed elsewhere finds it.
    public let isPath: Bool
    /// False for keys that only config files and plans set (`dims` follows `patch_size`).
    public let onCommandLine: Bool
    /// Words that stand for a value on the command line (`fold all` is fold -1).
    let aliases: [String: Value]

    public init(wrappedValue: Value, _ help: String, path: Bool = false, commandLine: Bool = true, aliases: [String: Value] = [:],
                check: (@Sendable (Value) -> String?)? = nil) {
        self.wrappedValue = wrappedValue
        self.help = help
        self.check = check
        self.isPath = path
        self.onCommandLine = commandLine
        self.aliases = aliases
    }

    // Stored as the bare value: config.yaml and checkpoints keep their format.
    public init(from decoder: Decoder) throws {
        self.init(wrappedValue: try decoder.singleValueContainer().decode(Value.self), "")
    }

    public func encode(to encoder: Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(wrappedValue)
    }

    public static func == (a: Self, b: Self) -> Bool { a.wrappedValue == b.wrappedValue }
}

/// A type an option can have: read from one command-line word, listed with its choices.
public protocol OptionValue: Codable, Equatable, Sendable {
    init?(optionText: String)
    /// The allowed words, for help and errors; nil for open values.
    static var choices: [String]? { get }
    /// The placeholder in help, e.g. `N` or `X,Y[,Z]`.
    static var placeholder: String { get }
    /// How help shows a default value.
    var optionText: String { get }
}

extension OptionValue {
    public static var choices: [String]? { nil }
}

extension Int: OptionValue {
    public init?(optionText: String) { self.init(optionText) }
    public static var placeholder: String { "N" }
    public var optionText: String { "\(self)" }
}

extension Double: OptionValue {
    public init?(optionText: String) {
        guard let value = Double(optionText) else { return nil }
        self = value
    }
    public static var placeholder: String { "X" }
    public var optionText: String { "\(self)" }
}

extension Bool: OptionValue {
    public init?(optionText: String) { self.init(optionText.lowercased()) }
    public static var placeholder: String { "" }
    public var optionText: String { "\(self)" }
}

extension String: OptionValue {
    public init?(optionText: String) { self = optionText }
    public static var placeholder: String { "PATH" }
    public var optionText: String { self }
}

extension Array: OptionValue where Element == Int {
    /// `128,128`, `128x128` or `128 128`.
    public init?(optionText: String) {
        let parts = optionText.split(whereSeparator: { $0 == "," || $0 == "x" || $0 == " " }).map { Int($0) }
        guard !parts.isEmpty, !parts.contains(nil) else { return nil }
        self = parts.map { $0! }
    }
    public static var placeholder: String { "N,N[,N]" }
    public var optionText: String { map(String.init).joined(separator: ",") }
}

extension Optional: OptionValue where Wrapped: OptionValue {
    public init?(optionText: String) {
        guard let value = Wrapped(optionText: optionText) else { return nil }
        self = value
    }
    public static var choices: [String]? { Wrapped.choices }
    public static var placeholder: String { Wrapped.placeholder }
    public var optionText: String { map(\.optionText) ?? "the model's published one" }
}

/// A fixed set of words: the enum's raw values.
public protocol ChoiceOptionValue: OptionValue, RawRepresentable, CaseIterable where RawValue == String {}

extension ChoiceOptionValue {
    public init?(optionText: String) { self.init(rawValue: optionText) }
    public static var choices: [String]? { allCases.map(\.rawValue) }
    public static var placeholder: String { "NAME" }
    public var optionText: String { rawValue }
}

extension ModelName: ChoiceOptionValue {}
extension ModelSize: ChoiceOptionValue {}
extension SchedulerName: ChoiceOptionValue {}
extension LossName: ChoiceOptionValue {}
extension BestMetric: ChoiceOptionValue {}
extension Precision: ChoiceOptionValue {}
extension IntensityNormalization: ChoiceOptionValue {}
extension AugmentationPipeline.PresetName: ChoiceOptionValue {}
extension OptimizerName: ChoiceOptionValue {
    /// Also "sophia", as seed 000 names it.
    public init?(optionText: String) {
        self.init(rawValue: optionText.lowercased() == "sophia" ? "sophiag" : optionText.lowercased())
    }
}

/// A declared option seen without its type, as the command line and validation walk them.
public protocol AnyTrainingOption: Sendable {
    var help: String { get }
    var isPath: Bool { get }
    var onCommandLine: Bool { get }
    var isFlag: Bool { get }
    var choices: [String]? { get }
    var placeholder: String { get }
    var defaultText: String { get }
    /// The command-line words that stand for values, besides the values themselves.
    var aliasWords: [String] { get }
    /// The problem with the value `other` (the same key of another config) holds, if any.
    func problem(of other: Any) -> String?
    /// The word read as this option's value, as config files hold it (nil: not such a value).
    func configValue(_ text: String) -> Any?
}

extension TrainingOption: AnyTrainingOption {
    public var isFlag: Bool { Value.self == Bool.self }
    public var choices: [String]? { Value.choices }
    public var placeholder: String { Value.placeholder }
    public var defaultText: String { aliases.first { $0.value == wrappedValue }?.key ?? wrappedValue.optionText }
    public var aliasWords: [String] { aliases.keys.sorted() }

    public func problem(of other: Any) -> String? {
        guard let check, let other = other as? Self else { return nil }
        return check(other.wrappedValue)
    }

    public func configValue(_ text: String) -> Any? {
        guard let value = aliases[text] ?? Value(optionText: text) else { return nil }
        // Choices are words in config files.
        if let choice = value as? any ChoiceOptionValue { return choice.optionText }
        return value
    }
}

// An optional option that is nil is left out of config files, and a file without it reads as nil.
public protocol OptionalOptionValue { static var absent: Self { get }; var isAbsent: Bool { get } }

extension Optional: OptionalOptionValue {
    public static var absent: Self { nil }
    public var isAbsent: Bool { if case .none = self { return true } else { return false } }
}

extension KeyedDecodingContainer {
    public func decode<V>(_ type: TrainingOption<V>.Type, forKey key: Key) throws -> TrainingOption<V> where V: OptionalOptionValue {
        try decodeIfPresent(type, forKey: key) ?? TrainingOption(wrappedValue: V.absent, "")
    }
}

extension KeyedEncodingContainer {
    public mutating func encode<V>(_ value: TrainingOption<V>, forKey key: Key) throws where V: OptionalOptionValue {
        if !value.wrappedValue.isAbsent { try encodeIfPresent(value, forKey: key) }
    }
}
