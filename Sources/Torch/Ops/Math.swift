import CTorch

/// Unary operations: the C shim's own codes, by name.
typealias UnaryOp = mt_unary_op

extension UnaryOp {
    static let neg = MT_OP_NEG, exp = MT_OP_EXP, log = MT_OP_LOG, sqrt = MT_OP_SQRT, rsqrt = MT_OP_RSQRT
    static let abs = MT_OP_ABS, sign = MT_OP_SIGN, floor = MT_OP_FLOOR, ceil = MT_OP_CEIL, round = MT_OP_ROUND
    static let erf = MT_OP_ERF, sin = MT_OP_SIN, cos = MT_OP_COS, reciprocal = MT_OP_RECIPROCAL, square = MT_OP_SQUARE
    static let relu = MT_OP_RELU, sigmoid = MT_OP_SIGMOID, tanh = MT_OP_TANH, silu = MT_OP_SILU
    static let logicalNot = MT_OP_LOGICAL_NOT, isnan = MT_OP_ISNAN, isfinite = MT_OP_ISFINITE
    static let log1p = MT_OP_LOG1P, expm1 = MT_OP_EXPM1, trunc = MT_OP_TRUNC, log2 = MT_OP_LOG2, erfinv = MT_OP_ERFINV
}

extension Tensor {
    func unary(_ op: UnaryOp) throws -> Tensor { try wrap(mt_unary(op, handle)) }

    public func exp() throws -> Tensor { try unary(.exp) }
    public func log() throws -> Tensor { try unary(.log) }
    public func log2() throws -> Tensor { try unary(.log2) }
    public func log1p() throws -> Tensor { try unary(.log1p) }
    public func expm1() throws -> Tensor { try unary(.expm1) }
    public func sqrt() throws -> Tensor { try unary(.sqrt) }
    public func rsqrt() throws -> Tensor { try unary(.rsqrt) }
    public func abs() throws -> Tensor { try unary(.abs) }
    public func sign() throws -> Tensor { try unary(.sign) }
    public func floor() throws -> Tensor { try unary(.floor) }
    public func ceil() throws -> Tensor { try unary(.ceil) }
    public func round() throws -> Tensor { try unary(.round) }
    public func trunc() throws -> Tensor { try unary(.trunc) }
    public func erf() throws -> Tensor { try unary(.erf) }
    public func erfinv() throws -> Tensor { try unary(.erfinv) }
    public func sin() throws -> Tensor { try unary(.sin) }
    public func cos() throws -> Tensor { try unary(.cos) }
    public func reciprocal() throws -> Tensor { try unary(.reciprocal) }
    public func square() throws -> Tensor { try unary(.square) }
    public func logicalNot() throws -> Tensor { try unary(.logicalNot) }
    public func isnan() throws -> Tensor { try unary(.isnan) }
    public func isfinite() throws -> Tensor { try unary(.isfinite) }
}
