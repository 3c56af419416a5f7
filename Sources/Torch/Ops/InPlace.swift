import CTorch

/// In-place updates, used by optimizers and weight loading (run them under `withNoGrad` on
/// tensors that require gradients).
extension Tensor {
    public func copy_(_ source: Tensor) throws { try check(mt_copy_(handle, source.handle)) }
    public func zero_() throws { try check(mt_zero_(handle)) }
    public func fill_(_ value: Double) throws { try check(mt_fill_(handle, value)) }
    public func add_(_ other: Tensor, alpha: Double = 1) throws { try check(mt_add_(handle, other.handle, alpha)) }
    public func add_(_ value: Double) throws { try check(mt_add_scalar_(handle, value)) }
    public func mul_(_ other: Tensor) throws { try check(mt_mul_(handle, other.handle)) }
    public func mul_(_ value: Double) throws { try check(mt_mul_scalar_(handle, value)) }
    public func div_(_ other: Tensor) throws { try check(mt_div_(handle, other.handle)) }
    /// self += value * a * b
    public func addcmul_(_ a: Tensor, _ b: Tensor, value: Double = 1) throws { try check(mt_addcmul_(handle, a.handle, b.handle, value)) }
    /// self += value * a / b
    public func addcdiv_(_ a: Tensor, _ b: Tensor, value: Double = 1) throws { try check(mt_addcdiv_(handle, a.handle, b.handle, value)) }
    public func lerp_(_ end: Tensor, weight: Double) throws { try check(mt_lerp_(handle, end.handle, weight)) }
    public func clamp_(min: Double? = nil, max: Double? = nil) throws {
        try check(mt_clamp_(handle, min ?? 0, max ?? 0, min == nil ? 0 : 1, max == nil ? 0 : 1))
    }
    public func uniform_(_ low: Double, _ high: Double) throws { try check(mt_uniform_(handle, low, high)) }
    public func normal_(mean: Double = 0, std: Double = 1) throws { try check(mt_normal_(handle, mean, std)) }
    public func maximum_(_ other: Tensor) throws { try check(mt_maximum_(handle, other.handle)) }
    public func relu_() throws { try check(mt_relu_(handle)) }
}
