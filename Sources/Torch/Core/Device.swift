import CTorch

/// Where a tensor lives.
public enum Device: Equatable, Hashable, Codable, Sendable, CustomStringConvertible {
    case cpu
    case cuda(Int)

    public var isCUDA: Bool { self != .cpu }

    var typeCode: Int32 {
        switch self {
        case .cpu: return 0
        case .cuda: return 1
        }
    }

    var indexCode: Int32 {
        switch self {
        case .cpu: return -1
        case .cuda(let i): return Int32(i)
        }
    }

    init(typeCode: Int32, index: Int32) {
        self = typeCode == 1 ? .cuda(Int(max(index, 0))) : .cpu
    }

    /// Parses "cpu", "cuda" and "cuda:N".
    public init(parsing text: String) throws {
        let lower = text.lowercased()
        if lower == "cpu" { self = .cpu; return }
        if lower == "cuda" { self = .cuda(0); return }
        if lower.hasPrefix("cuda:"), let i = Int(lower.dropFirst(5)), i >= 0 { self = .cuda(i); return }
        throw TorchError("unknown device '\(text)' (expected cpu, cuda or cuda:N)")
    }

    public var description: String {
        switch self {
        case .cpu: return "cpu"
        case .cuda(let i): return "cuda:\(i)"
        }
    }
}
