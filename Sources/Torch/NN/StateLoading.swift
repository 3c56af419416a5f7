/// What loading weights into a module matched and what it did not.
public struct LoadReport: CustomStringConvertible, Equatable {
    /// Keys the module has but the weights lack.
    public var missingKeys: [String] = []
    /// Keys in the weights the module does not have.
    public var unexpectedKeys: [String] = []
    /// Keys present on both sides with different shapes: (key, module shape, file shape).
    public var shapeMismatches: [ShapeMismatch] = []
    public var loadedCount = 0

    public struct ShapeMismatch: Equatable {
        public let key: String
        public let expected: [Int]
        public let found: [Int]
    }

    public var isExact: Bool { missingKeys.isEmpty && unexpectedKeys.isEmpty && shapeMismatches.isEmpty }

    public var description: String {
        var lines = ["loaded \(loadedCount) tensors"]
        if !missingKeys.isEmpty { lines.append("missing keys (\(missingKeys.count)): " + missingKeys.joined(separator: ", ")) }
        if !unexpectedKeys.isEmpty { lines.append("unexpected keys (\(unexpectedKeys.count)): " + unexpectedKeys.joined(separator: ", ")) }
        for m in shapeMismatches {
            lines.append("shape mismatch for \(m.key): model has \(m.expected), weights have \(m.found)")
        }
        return lines.joined(separator: "\n")
    }
}

extension Module {
    /// The parameters and persistent buffers, named as PyTorch's state_dict.
    public func stateDict() -> StateDict { StateDict(namedStateTensors().map { ($0.name, $0.tensor) }) }

    /// Loads a state dict (see `loadState(_:strict:)`).
    @discardableResult
    public func load(_ dict: StateDict, strict: Bool = true) throws -> LoadReport {
        try loadState(dict.pairs, strict: strict)
    }

    /// Copies weights into the module's parameters and buffers by state_dict name.
    ///
    /// With `strict`, any missing or unexpected key or shape mismatch throws (and nothing is
    /// changed); otherwise matching tensors are loaded and the report lists the rest. A
    /// `module.` prefix on every key (DistributedDataParallel checkpoints) is removed.
    @discardableResult
    public func loadState(_ weights: [(name: String, tensor: Tensor)], strict: Bool = true) throws -> LoadReport {
        var pairs = weights
        if !pairs.isEmpty && pairs.allSatisfy({ $0.name.hasPrefix("module.") }) {
            pairs = pairs.map { (String($0.name.dropFirst("module.".count)), $0.tensor) }
        }
        let source = Dictionary(pairs.map { ($0.name, $0.tensor) }, uniquingKeysWith: { _, last in last })
        let own = namedStateTensors()
        let ownNames = Set(own.map(\.name))
        var report = LoadReport()
        var plan: [(Tensor, Tensor)] = []
        for (name, target) in own {
            guard let value = source[name] else { report.missingKeys.append(name); continue }
            if value.shape != target.shape {
                report.shapeMismatches.append(.init(key: name, expected: target.shape, found: value.shape))
                continue
            }
            plan.append((target, value))
        }
        report.unexpectedKeys = pairs.map(\.name).filter { !ownNames.contains($0) }
        if strict && !report.isExact {
            throw TorchError("weights do not match the model:\n\(report)")
        }
        try withNoGrad {
            for (target, value) in plan {
                try target.copy_(value.to(device: target.device, dtype: target.dtype))
            }
        }
        report.loadedCount = plan.count
        return report
    }
}
