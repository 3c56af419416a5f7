/// Named tensors in a fixed order, as a PyTorch state_dict.
public struct StateDict: Sequence {
    public private(set) var pairs: [(name: String, tensor: Tensor)]
    private var index: [String: Int]

    public init(_ pairs: [(String, Tensor)] = []) {
        self.pairs = []
        index = [:]
        for (n, t) in pairs { set(n, t) }
    }

    public var keys: [String] { pairs.map(\.name) }
    public var count: Int { pairs.count }
    public var isEmpty: Bool { pairs.isEmpty }

    public subscript(_ name: String) -> Tensor? { index[name].map { pairs[$0].tensor } }

    /// Adds or replaces `name` (a replacement keeps its position).
    public mutating func set(_ name: String, _ tensor: Tensor) {
        if let i = index[name] { pairs[i] = (name, tensor) } else {
            index[name] = pairs.count
            pairs.append((name, tensor))
        }
    }

    /// Keys with `prefix` removed where they have it.
    public func strippingPrefix(_ prefix: String) -> StateDict {
        StateDict(pairs.map { ($0.name.hasPrefix(prefix) ? String($0.name.dropFirst(prefix.count)) : $0.name, $0.tensor) })
    }

    public func makeIterator() -> IndexingIterator<[(name: String, tensor: Tensor)]> { pairs.makeIterator() }
}
