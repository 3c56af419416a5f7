import CTorch

/// Unary operation codes shared with the C shim.
enum UnaryOp: Int32 {
    case neg = 0, exp, log, sqrt, rsqrt, abs, sign, floor, ceil, round, erf, sin, cos, reciprocal, square
    case relu, sigmoid, tanh, silu, logicalNot, isnan, isfinite, log1p, expm1, trunc, log2, erfinv
}

extension Tensor {
    func unary(_ op: UnaryOp) throws -> Tensor { try wrap(mt_unary(op.rawValue, handle)) }

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
