import Foundation

/// An optimizer's state as PyTorch's `optimizer.state_dict()` lays it out: per-parameter state
/// keyed by parameter index, and the parameter groups' hyperparameters with the indices of their
/// parameters. For checkpoints it splits into `tensors` (named like PyTorch's keys flattened,
/// `state.0.exp_avg`, for safetensors) and `metadata` (JSON: `param_groups` and the step counts).
public struct OptimizerState {
    /// One entry of `param_groups`; encodes flat, as PyTorch's:
    /// `{"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08, ..., "params": [0, 1]}`.
    public struct Group: Codable, Equatable, Sendable {
        public var params: [Int]
        public var lr: Double
        public var initialLR: Double?
        public var options: [String: HyperParameter]

        public init(params: [Int], lr: Double, initialLR: Double? = nil, options: [String: HyperParameter] = [:]) {
            self.params = params
            self.lr = lr
            self.initialLR = initialLR
            self.options = options
        }

        private static let reserved: Set<String> = ["params", "lr", "initial_lr"]

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: NameKey.self)
            params = try c.decode([Int].self, forKey: NameKey("params"))
            lr = try c.decode(Double.self, forKey: NameKey("lr"))
            initialLR = try c.decodeIfPresent(Double.self, forKey: NameKey("initial_lr"))
            options = [:]
            for key in c.allKeys where !Self.reserved.contains(key.stringValue) {
                // PyTorch writes unset options as null (`"foreach": null`).
                if try c.decodeNil(forKey: key) { continue }
                options[key.stringValue] = try c.decode(HyperParameter.self, forKey: key)
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: NameKey.self)
            for (name, value) in options where !Self.reserved.contains(name) { try c.encode(value, forKey: NameKey(name)) }
            try c.encode(lr, forKey: NameKey("lr"))
            if let initialLR { try c.encode(initialLR, forKey: NameKey("initial_lr")) }
            try c.encode(params, forKey: NameKey("params"))
        }
    }

    /// Everything but the tensors: `{"param_groups": [...], "state": {"0": {"step": 5}, ...}}`.
    public struct Metadata: Codable, Equatable, Sendable {
        public var paramGroups: [Group]
        public var steps: [Int: Int]

        public init(paramGroups: [Group], steps: [Int: Int]) {
            self.paramGroups = paramGroups
            self.steps = steps
        }

        private enum Keys: String, CodingKey { case paramGroups = "param_groups", state }
        private struct Entry: Codable { var step: Double? }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: Keys.self)
            paramGroups = try c.decode([Group].self, forKey: .paramGroups)
            steps = [:]
            for (key, entry) in try c.decodeIfPresent([String: Entry].self, forKey: .state) ?? [:] {
                guard let i = Int(key) else {
                    throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "state key '\(key)' is not a parameter index")
                }
                if let step = entry.step {
                    guard let n = Int(exactly: step) else {
                        throw DecodingError.dataCorruptedError(forKey: .state, in: c, debugDescription: "step \(step) of parameter \(i) is not a whole number")
                    }
                    steps[i] = n
                }
            }
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            try c.encode(paramGroups, forKey: .paramGroups)
            try c.encode(Dictionary(uniqueKeysWithValues: steps.map { (String($0.key), Entry(step: Double($0.value))) }), forKey: .state)
        }
    }

    public var state: [Int: ParameterState]
    public var paramGroups: [Group]

    public init(state: [Int: ParameterState] = [:], paramGroups: [Group]) {
        self.state = state
        self.paramGroups = paramGroups
    }

    /// The state tensors named `state.<index>.<name>`, sorted by index, then name.
    public var tensors: [(name: String, tensor: Tensor)] {
        state.keys.sorted().flatMap { i in
            state[i]!.tensors.sorted { $0.key < $1.key }.map { (name: "state.\(i).\($0.key)", tensor: $0.value) }
        }
    }

    public var metadata: Metadata {
        Metadata(paramGroups: paramGroups, steps: state.compactMapValues(\.step))
    }

    /// `metadata` as JSON (sorted keys; non-finite numbers as "Infinity", "-Infinity", "NaN").
    public func metadataJSON() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        return String(decoding: try encoder.encode(metadata), as: UTF8.self)
    }

    /// Reassembles a state from `tensors` and `metadata`. A `state.<i>.step` tensor (PyTorch keeps
    /// Adam's step as a tensor) is read as the step count.
    public init(tensors: [(name: String, tensor: Tensor)], metadata: Metadata) throws {
        var state = try Self.parse(tensors: tensors)
        for (i, step) in metadata.steps { state[i, default: ParameterState()].step = step }
        self.init(state: state, paramGroups: metadata.paramGroups)
    }

    public init(tensors: [(name: String, tensor: Tensor)], metadataJSON: String) throws {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        try self.init(tensors: tensors, metadata: try decoder.decode(Metadata.self, from: Data(metadataJSON.utf8)))
    }

    static func parse(tensors: [(name: String, tensor: Tensor)]) throws -> [Int: ParameterState] {
        var state: [Int: ParameterState] = [:]
        for (name, tensor) in tensors {
            let parts = name.split(separator: ".", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, parts[0] == "state", let i = Int(parts[1]), i >= 0, !parts[2].isEmpty else {
                throw TorchError("unexpected optimizer state entry '\(name)' (expected state.<parameter index>.<name>)")
            }
            if parts[2] == "step" {
                let value = try tensor.item()
                guard let n = Int(exactly: value) else { throw TorchError("optimizer state '\(name)' is \(value), not a whole number of steps") }
                state[i, default: ParameterState()].step = n
            } else {
                state[i, default: ParameterState()].tensors[String(parts[2])] = tensor
            }
        }
        return state
    }
}

/// A coding key for arbitrary names (PyTorch's dictionaries).
struct NameKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ name: String) { stringValue = name }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { stringValue = String(intValue) }
}
