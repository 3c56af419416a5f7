import Foundation

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
