/// Scales gradients so their global 2-norm (over all parameters) is at most `maxNorm`, as
/// torch.nn.utils.clip_grad_norm_; returns the norm before clipping.
@discardableResult
public func clipGradNorm(_ params: [Tensor], maxNorm: Double, normType: Double = 2, errorIfNonfinite: Bool = false) throws -> Double {
    let grads = params.compactMap(\.grad)
    guard !grads.isEmpty else { return 0 }
    return try withNoGrad {
        let norms = try grads.map { try $0.norm(p: normType) }
        let total: Double
        if normType.isInfinite {
            total = try Tensor.stack(norms).max().item()
        } else {
            total = try Tensor.stack(norms).norm(p: normType).item()
        }
        if errorIfNonfinite && !total.isFinite {
            throw TorchError("the total norm of the gradients is \(total); the loss or the weights are no longer finite")
        }
        let coefficient = Swift.min(maxNorm / (total + 1e-6), 1)
        for g in grads { try g.mul_(coefficient) }
        return total
    }
}
