import Foundation

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
