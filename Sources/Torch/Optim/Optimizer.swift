import Foundation

// MARK: hyperparameters

/// One hyperparameter of a parameter group as PyTorch's `param_groups` holds it: a number
/// (`momentum`, `eps`, `weight_decay`), a flag (`nesterov`, `amsgrad`) or a pair (`betas`).
/// Encodes as a JSON number, boolean or two-element array.
public enum HyperParameter: Equatable, Sendable, Codable, CustomStringConvertible,
                            ExpressibleByFloatLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    case number(Double)
    case flag(Bool)
    case pair(Double, Double)

    public init(floatLiteral value: Double) { self = .number(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(booleanLiteral value: Bool) { self = .flag(value) }

    public var number: Double? { if case .number(let v) = self { return v } else { return nil } }
    public var flag: Bool? { if case .flag(let v) = self { return v } else { return nil } }
    public var pair: (Double, Double)? { if case .pair(let a, let b) = self { return (a, b) } else { return nil } }

    public var description: String {
        switch self {
        case .number(let v): return "\(v)"
        case .flag(let v): return "\(v)"
        case .pair(let a, let b): return "(\(a), \(b))"
        }
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Bool.self) { self = .flag(v); return }
        if let v = try? c.decode(Double.self) { self = .number(v); return }
        if let v = try? c.decode([Double].self), v.count == 2 { self = .pair(v[0], v[1]); return }
        throw DecodingError.dataCorruptedError(in: c, debugDescription: "a hyperparameter must be a number, a boolean or a pair of numbers")
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .number(let v): try c.encode(v)
        case .flag(let v): try c.encode(v)
        case .pair(let a, let b): try c.encode([a, b])
        }
    }
}

// MARK: parameter groups

/// Parameters optimized with one set of hyperparameters (an entry of PyTorch's `param_groups`).
/// `options` holds the optimizer's hyperparameters under PyTorch's names (`weight_decay`,
/// `momentum`, `betas`, ...); the optimizer fills the ones a group leaves out with its defaults.
public struct ParamGroup {
    public var params: [Tensor]
    /// The current learning rate (schedulers change it).
    public var lr: Double
    /// PyTorch's `initial_lr`: the rate schedules scale, recorded by the first scheduler attached.
    public var initialLR: Double?
    public var options: [String: HyperParameter]

    /// `weightDecay` nil takes the optimizer's default (0, or 1e-2 for AdamW, as in PyTorch).
    public init(params: [Tensor], lr: Double, weightDecay: Double? = nil, options: [String: HyperParameter] = [:]) {
        self.params = params
        self.lr = lr
        self.options = options
        if let weightDecay { self.options["weight_decay"] = .number(weightDecay) }
    }

    public var weightDecay: Double {
        get { options["weight_decay"]?.number ?? 0 }
        set { options["weight_decay"] = .number(newValue) }
    }

    public subscript(option name: String) -> HyperParameter? {
        get { options[name] }
        set { options[name] = newValue }
    }

    func number(_ name: String) throws -> Double {
        guard let v = options[name]?.number else { throw TorchError("parameter group option '\(name)' must be a number, found \(options[name].map(\.description) ?? "nothing")") }
        return v
    }

    func flag(_ name: String) throws -> Bool {
        guard let v = options[name]?.flag else { throw TorchError("parameter group option '\(name)' must be true or false, found \(options[name].map(\.description) ?? "nothing")") }
        return v
    }

    func pair(_ name: String) throws -> (Double, Double) {
        guard let v = options[name]?.pair else { throw TorchError("parameter group option '\(name)' must be a pair of numbers, found \(options[name].map(\.description) ?? "nothing")") }
        return v
    }
}

/// One parameter's optimizer state: named tensors (`exp_avg`, `momentum_buffer`, ...) and, for
/// optimizers that count them, the steps taken (PyTorch's `step`).
public struct ParameterState {
    public var step: Int?
    public var tensors: [String: Tensor]

    public init(step: Int? = nil, tensors: [String: Tensor] = [:]) {
        self.step = step
        self.tensors = tensors
    }

    public subscript(name: String) -> Tensor? {
        get { tensors[name] }
        set { tensors[name] = newValue }
    }

    public var isEmpty: Bool { step == nil && tensors.isEmpty }

    /// The tensor called `name`, created as zeros shaped like `parameter` when missing.
    mutating func tensor(_ name: String, zerosLike parameter: Tensor) throws -> Tensor {
        if let t = tensors[name] { return t }
        let t = try Tensor.zeros(like: parameter)
        tensors[name] = t
        return t
    }
}

// MARK: optimizer

/// Base of the optimizers, like torch.optim.Optimizer: parameter groups, per-parameter state
/// numbered as PyTorch numbers it (parameters counted across groups in order), `step()`,
/// `zeroGrad()` and a state dict that round-trips through checkpoints. Subclasses validate their
/// hyperparameters and implement `update`.
open class Optimizer {
    public var paramGroups: [ParamGroup]
    /// Per-parameter state by parameter index; parameters that never had a gradient have none.
    public var state: [Int: ParameterState] = [:]
    /// Hyperparameters that groups leave out take these values (PyTorch's `defaults`, less `lr`).
    public let defaults: [String: HyperParameter]

    public init(groups: [ParamGroup], defaults: [String: HyperParameter]) {
        self.defaults = defaults
        paramGroups = groups.map { Self.fillingDefaults($0, defaults) }
    }

    private static func fillingDefaults(_ group: ParamGroup, _ defaults: [String: HyperParameter]) -> ParamGroup {
        var g = group
        for (name, value) in defaults where g.options[name] == nil { g.options[name] = value }
        return g
    }

    /// Adds a group whose parameters are numbered after the existing ones (PyTorch's add_param_group).
    public func addParamGroup(_ group: ParamGroup) throws {
        let g = Self.fillingDefaults(group, defaults)
        try validate(g)
        paramGroups.append(g)
    }

    /// Every parameter, in PyTorch's numbering.
    public var parameters: [Tensor] { paramGroups.flatMap(\.params) }

    /// Checks a group's hyperparameters (PyTorch's constructor checks); subclasses add theirs.
    open func validate(_ group: ParamGroup) throws {
        if group.lr < 0 { throw TorchError("invalid learning rate: \(group.lr)") }
        if group.weightDecay < 0 { throw TorchError("invalid weight_decay value: \(group.weightDecay)") }
    }

    func validateGroups() throws {
        guard paramGroups.contains(where: { !$0.params.isEmpty }) else { throw TorchError("the optimizer got an empty parameter list") }
        for (i, g) in paramGroups.enumerated() {
            do { try validate(g) } catch let e as TorchError { throw TorchError("parameter group \(i): \(e.message)") }
        }
    }

    /// Updates one parameter in place (called without gradient recording). `state` is this
    /// parameter's state, empty on its first update.
    open func update(parameter: Tensor, gradient: Tensor, group: ParamGroup, state: inout ParameterState) throws {
        throw TorchError("\(type(of: self)) does not implement update(parameter:gradient:group:state:)")
    }

    /// One update of every parameter that has a gradient; parameters without one are skipped.
    public func step() throws {
        try validateGroups()
        try withNoGrad {
            var index = 0
            for group in paramGroups {
                for p in group.params {
                    defer { index += 1 }
                    guard let grad = p.grad else { continue }
                    var s = state[index] ?? ParameterState()
                    try update(parameter: p, gradient: grad, group: group, state: &s)
                    state[index] = s.isEmpty ? nil : s
                }
            }
        }
    }

    /// Re-evaluates the loss with gradients recorded, then steps; returns the loss (PyTorch's
    /// `step(closure)`). The closure computes the loss and calls `backward()`.
    @discardableResult
    public func step(_ closure: () throws -> Tensor) throws -> Tensor {
        let loss = try withGradMode(true, closure)
        try step()
        return loss
    }

    /// Clears gradients: to nil by default (PyTorch's set_to_none), else fills them with zeros.
    public func zeroGrad(setToNone: Bool = true) throws {
        for group in paramGroups {
            for p in group.params {
                if setToNone {
                    p.grad = nil
                } else if let g = p.grad {
                    try withNoGrad { try g.zero_() }
                }
            }
        }
    }

    // MARK: state dict

    /// The optimizer's state in PyTorch's state_dict layout. The tensors are the optimizer's own
    /// (not copies): write them out before the next `step()` or clone them.
    public func stateDict() -> OptimizerState {
        var groups: [OptimizerState.Group] = []
        var start = 0
        for g in paramGroups {
            groups.append(OptimizerState.Group(params: Array(start..<(start + g.params.count)), lr: g.lr, initialLR: g.initialLR, options: g.options))
            start += g.params.count
        }
        return OptimizerState(state: state, paramGroups: groups)
    }

    /// Restores a state from `stateDict()` (or PyTorch's, converted): the groups' hyperparameters
    /// and every parameter's state, copied to the parameter's device and, for floating-point
    /// parameters, dtype. Saved parameter indices map onto this optimizer's parameters group by
    /// group in order, as PyTorch maps them. Nothing changes when the state does not fit.
    public func loadStateDict(_ saved: OptimizerState) throws {
        guard saved.paramGroups.count == paramGroups.count else {
            throw TorchError("the saved optimizer state has \(saved.paramGroups.count) parameter group(s), this optimizer has \(paramGroups.count)")
        }
        var indexOf: [Int: Int] = [:]
        var flat = 0
        for (i, (mine, theirs)) in zip(paramGroups, saved.paramGroups).enumerated() {
            guard mine.params.count == theirs.params.count else {
                throw TorchError("parameter group \(i) of the saved optimizer state has \(theirs.params.count) parameter(s), this optimizer's has \(mine.params.count)")
            }
            for id in theirs.params {
                guard indexOf[id] == nil else { throw TorchError("the saved optimizer state lists parameter \(id) twice") }
                indexOf[id] = flat
                flat += 1
            }
        }
        let params = parameters
        var restored: [Int: ParameterState] = [:]
        for (id, entry) in saved.state {
            guard let i = indexOf[id] else {
                throw TorchError("the saved optimizer state has state for parameter \(id), which none of its parameter groups lists")
            }
            let p = params[i]
            var s = ParameterState(step: entry.step)
            for (name, t) in entry.tensors {
                guard t.shape == p.shape else {
                    throw TorchError("optimizer state 'state.\(id).\(name)' has shape \(t.shape), parameter \(i) has shape \(p.shape)")
                }
                s.tensors[name] = try t.to(device: p.device, dtype: p.dtype.isFloatingPoint ? p.dtype : t.dtype, copy: true)
            }
            restored[i] = s
        }
        var groups = paramGroups
        for (i, theirs) in saved.paramGroups.enumerated() {
            groups[i].lr = theirs.lr
            groups[i].initialLR = theirs.initialLR
            groups[i].options.merge(theirs.options) { _, saved in saved }
        }
        paramGroups = groups
        state = restored
    }
}

// MARK: state dict

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
