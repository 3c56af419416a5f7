/// Named tensors in a fixed order, as a PyTorch state_dict: insertion order is kept, names are
/// unique (setting an existing name replaces its tensor in place).
public struct StateDict: Sequence {
    public private(set) var pairs: [(name: String, tensor: Tensor)]
    private var index: [String: Int]

    public init() {
        pairs = []
        index = [:]
    }

    /// The pairs in order; a repeated name keeps its first position and its last tensor.
    public init(_ pairs: [(String, Tensor)]) {
        self.init()
        for (n, t) in pairs { set(n, t) }
    }

    public var keys: [String] { pairs.map(\.name) }
    public var tensors: [Tensor] { pairs.map(\.tensor) }
    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The tensor named `name`; assigning nil removes it.
    public subscript(_ name: String) -> Tensor? {
        get { index[name].map { pairs[$0].tensor } }
        set {
            if let newValue { set(name, newValue) } else { remove(name) }
        }
    }

    /// Adds `name` at the end, or replaces its tensor where it already is.
    public mutating func set(_ name: String, _ tensor: Tensor) {
        if let i = index[name] {
            pairs[i] = (name, tensor)
        } else {
            index[name] = pairs.count
            pairs.append((name, tensor))
        }
    }

    /// Removes `name` and returns its tensor, nil when absent.
    @discardableResult
    public mutating func remove(_ name: String) -> Tensor? {
        guard let i = index.removeValue(forKey: name) else { return nil }
        let removed = pairs.remove(at: i).tensor
        for j in i..<pairs.count { index[pairs[j].name] = j }
        return removed
    }

    /// The same tensors with `prefix` removed from the names that start with it (DDP's `module.`).
    /// Should two names become equal, the later one's tensor wins at the earlier position.
    public func strippingPrefix(_ prefix: String) -> StateDict {
        StateDict(pairs.map { ($0.name.hasPrefix(prefix) ? String($0.name.dropFirst(prefix.count)) : $0.name, $0.tensor) })
    }

    /// The same tensors with `prefix` put before every name.
    public func addingPrefix(_ prefix: String) -> StateDict {
        StateDict(pairs.map { (prefix + $0.name, $0.tensor) })
    }

    public func makeIterator() -> IndexingIterator<[(name: String, tensor: Tensor)]> { pairs.makeIterator() }
}
