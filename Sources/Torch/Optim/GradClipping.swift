/// Scales the gradients of `params` in place so that their total `normType`-norm (the norm of the
/// per-parameter norms, as if all gradients were one vector) is at most `maxNorm`, as
/// torch.nn.utils.clip_grad_norm_: the factor is `maxNorm / (total + 1e-6)` clamped to 1,
/// computed in the gradients' dtype. Parameters without a gradient are skipped. Returns the
/// total norm before clipping (0 when no parameter has a gradient); `normType` may be
/// `.infinity` (largest absolute value). With `errorIfNonfinite` a NaN or infinite total throws
/// and leaves the gradients alone; otherwise they are scaled by the non-finite factor, as in PyTorch.
@discardableResult
public func clipGradNorm(_ params: [Tensor], maxNorm: Double, normType: Double = 2, errorIfNonfinite: Bool = false) throws -> Double {
    let grads = params.compactMap(\.grad)
    guard let first = grads.first else { return 0 }
    return try withNoGrad {
        let device = first.device
        let total: Tensor
        if normType == .infinity {
            let norms = try grads.map { try $0.abs().max().to(device: device) }
            total = norms.count == 1 ? norms[0] : try Tensor.stack(norms).max()
        } else {
            let norms = try grads.map { try $0.norm(p: normType, dims: Array(0..<$0.rank)).to(device: device) }
            total = try Tensor.stack(norms).norm(p: normType, dims: [0])
        }
        let totalNorm = try total.item()
        if errorIfNonfinite && !totalNorm.isFinite {
            throw TorchError("the total norm of order \(normType) of the gradients is \(totalNorm), so they cannot be clipped "
                             + "(the loss or the weights are no longer finite); clip without errorIfNonfinite to scale them anyway")
        }
        // In the norm's dtype, as PyTorch's Python floats; it computes `max_norm / t` as
        // `t.reciprocal() * max_norm`.
        let epsilon = try Tensor(scalar: 1e-6, dtype: total.dtype), limit = try Tensor(scalar: maxNorm, dtype: total.dtype)
        let coefficient = try ((total + epsilon).reciprocal() * limit).clamp(max: 1)
        // Multiplying by exactly 1 changes nothing, so skip it (PyTorch multiplies anyway).
        if try coefficient.item() != 1 {
            for g in grads { try g.mul_(g.device == device ? coefficient : coefficient.to(device: g.device)) }
        }
        return totalNorm
    }
}

/// Clamps every gradient of `params` to [-clipValue, clipValue] in place, as
/// torch.nn.utils.clip_grad_value_.
public func clipGradValue(_ params: [Tensor], clipValue: Double) throws {
    try withNoGrad {
        for g in params.compactMap(\.grad) { try g.clamp_(min: -clipValue, max: clipValue) }
    }
}
