import CTorch

/// Binary operations: the C shim's own codes, by name.
typealias BinaryOp = mt_binary_op

extension BinaryOp {
    static let add = MT_OP_ADD, sub = MT_OP_SUB, mul = MT_OP_MUL, div = MT_OP_DIV, pow = MT_OP_POW
    static let maximum = MT_OP_MAXIMUM, minimum = MT_OP_MINIMUM
    static let eq = MT_OP_EQ, ne = MT_OP_NE, lt = MT_OP_LT, le = MT_OP_LE, gt = MT_OP_GT, ge = MT_OP_GE
    static let logicalAnd = MT_OP_LOGICAL_AND, logicalOr = MT_OP_LOGICAL_OR
    static let remainder = MT_OP_REMAINDER, atan2 = MT_OP_ATAN2, floorDivide = MT_OP_FLOOR_DIVIDE
}

extension Tensor {
    func binary(_ op: BinaryOp, _ other: Tensor) throws -> Tensor { try wrap(mt_binary(op, handle, other.handle)) }
    func binary(_ op: BinaryOp, _ other: Double) throws -> Tensor { try wrap(mt_binary_scalar(op, handle, other)) }
    static func binary(_ op: BinaryOp, _ lhs: Double, _ rhs: Tensor) throws -> Tensor {
        try wrap(mt_scalar_binary(op, lhs, rhs.handle))
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.add, b) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.sub, b) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.mul, b) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.binary(.div, b) }
    public static func + (a: Tensor, b: Double) throws -> Tensor { try a.binary(.add, b) }
    public static func - (a: Tensor, b: Double) throws -> Tensor { try a.binary(.sub, b) }
    public static func * (a: Tensor, b: Double) throws -> Tensor { try a.binary(.mul, b) }
    public static func / (a: Tensor, b: Double) throws -> Tensor { try a.binary(.div, b) }
    public static func + (a: Double, b: Tensor) throws -> Tensor { try binary(.add, a, b) }
    public static func - (a: Double, b: Tensor) throws -> Tensor { try binary(.sub, a, b) }
    public static func * (a: Double, b: Tensor) throws -> Tensor { try binary(.mul, a, b) }
    public static func / (a: Double, b: Tensor) throws -> Tensor { try binary(.div, a, b) }
    public static prefix func - (a: Tensor) throws -> Tensor { try a.unary(.neg) }

    public func pow(_ exponent: Double) throws -> Tensor { try binary(.pow, exponent) }
    public func pow(_ exponent: Tensor) throws -> Tensor { try binary(.pow, exponent) }
    public func maximum(_ other: Tensor) throws -> Tensor { try binary(.maximum, other) }
    public func minimum(_ other: Tensor) throws -> Tensor { try binary(.minimum, other) }
    public func remainder(_ other: Double) throws -> Tensor { try binary(.remainder, other) }
    public func floorDivide(_ other: Double) throws -> Tensor { try binary(.floorDivide, other) }
    public func atan2(_ other: Tensor) throws -> Tensor { try binary(.atan2, other) }

    // MARK: comparisons (results are bool tensors)

    public func eq(_ other: Tensor) throws -> Tensor { try binary(.eq, other) }
    public func ne(_ other: Tensor) throws -> Tensor { try binary(.ne, other) }
    public func lt(_ other: Tensor) throws -> Tensor { try binary(.lt, other) }
    public func le(_ other: Tensor) throws -> Tensor { try binary(.le, other) }
    public func gt(_ other: Tensor) throws -> Tensor { try binary(.gt, other) }
    public func ge(_ other: Tensor) throws -> Tensor { try binary(.ge, other) }
    public func eq(_ other: Double) throws -> Tensor { try binary(.eq, other) }
    public func ne(_ other: Double) throws -> Tensor { try binary(.ne, other) }
    public func lt(_ other: Double) throws -> Tensor { try binary(.lt, other) }
    public func le(_ other: Double) throws -> Tensor { try binary(.le, other) }
    public func gt(_ other: Double) throws -> Tensor { try binary(.gt, other) }
    public func ge(_ other: Double) throws -> Tensor { try binary(.ge, other) }
    public static func .== (a: Tensor, b: Tensor) throws -> Tensor { try a.eq(b) }
    public static func .!= (a: Tensor, b: Tensor) throws -> Tensor { try a.ne(b) }
    public static func .< (a: Tensor, b: Tensor) throws -> Tensor { try a.lt(b) }
    public static func .<= (a: Tensor, b: Tensor) throws -> Tensor { try a.le(b) }
    public static func .> (a: Tensor, b: Tensor) throws -> Tensor { try a.gt(b) }
    public static func .>= (a: Tensor, b: Tensor) throws -> Tensor { try a.ge(b) }
    public static func .== (a: Tensor, b: Double) throws -> Tensor { try a.eq(b) }
    public static func .< (a: Tensor, b: Double) throws -> Tensor { try a.lt(b) }
    public static func .> (a: Tensor, b: Double) throws -> Tensor { try a.gt(b) }
    public static func .<= (a: Tensor, b: Double) throws -> Tensor { try a.le(b) }
    public static func .>= (a: Tensor, b: Double) throws -> Tensor { try a.ge(b) }

    public func logicalAnd(_ other: Tensor) throws -> Tensor { try binary(.logicalAnd, other) }
    public func logicalOr(_ other: Tensor) throws -> Tensor { try binary(.logicalOr, other) }

    /// Elementwise choice: `condition ? a : b`.
    public static func `where`(_ condition: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
        try wrap(mt_where(condition.handle, a.handle, b.handle))
    }

    public func maskedFill(_ mask: Tensor, _ value: Double) throws -> Tensor {
        try wrap(mt_masked_fill(handle, mask.handle, value))
    }

    public func lerp(_ end: Tensor, weight: Double) throws -> Tensor { try wrap(mt_lerp(handle, end.handle, weight)) }

    public func clamp(min: Double? = nil, max: Double? = nil) throws -> Tensor {
        try wrap(mt_clamp(handle, min ?? 0, max ?? 0, min == nil ? 0 : 1, max == nil ? 0 : 1))
    }

    public func matmul(_ other: Tensor) throws -> Tensor {
        let y = try wrap(mt_matmul(handle, other.handle))
        FLOPCounter.product(output: y, inner: shape.last ?? 1)
        return y
    }
}

infix operator .== : ComparisonPrecedence
infix operator .!= : ComparisonPrecedence
infix operator .< : ComparisonPrecedence
infix operator .<= : ComparisonPrecedence
infix operator .> : ComparisonPrecedence
infix operator .>= : ComparisonPrecedence
