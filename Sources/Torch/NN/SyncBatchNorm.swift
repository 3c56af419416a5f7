/// Batch normalization whose training statistics cover the batches of every rank of a process
/// group, as torch.nn.SyncBatchNorm: with data parallelism over N ranks of batch B it normalizes
/// as BatchNorm over one batch of N*B (outputs, running statistics and gradients). Evaluation, and
/// a group of one rank, use BatchNorm's own path. Accepts (N, C, ...) inputs of any rank >= 2.
public final class SyncBatchNorm: BatchNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true, trackRunningStats: Bool = true,
                group: ProcessGroup?) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats,
                       expectedRanks: [2, 3, 4, 5])
        syncGroup = group
    }

    /// Makes every BatchNorm in `module`'s tree synchronize over `group` (nil: stop synchronizing),
    /// in place: the layers keep their parameters, buffers and state_dict names, and the modules
    /// holding them keep their references. Call it before wrapping the model for data parallelism.
    /// Returns how many layers were converted.
    @discardableResult
    public static func convert(_ module: Module, group: ProcessGroup?) -> Int {
        var count = 0
        for (_, m) in module.namedModules() {
            guard let bn = m as? BatchNorm else { continue }
            bn.syncGroup = group
            count += 1
        }
        return count
    }
}

extension BatchNorm {
    /// Training forward with global statistics, built from differentiable ops around one
    /// differentiable all-reduce of (sum, sum of squares, count) per channel: autograd then gives
    /// SyncBatchNorm's exact gradients (its backward all-reduces the statistics' gradients).
    func synchronizedForward(_ x: Tensor, group: ProcessGroup, momentum factor: Double) throws -> Tensor {
        let c = numFeatures
        guard x.rank >= 2, x.size(1) == c else {
            throw TorchError("\(type(of: self)) expects (N, \(c), ...) inputs, got shape \(x.shape)")
        }
        // Statistics in float32 at least (under autocast the input may be bfloat16/float16).
        let input = x.dtype == .float64 ? x : try x.to(dtype: .float32)
        let dims = [0] + Array(2..<x.rank)
        let sum = try input.sum(dims: dims)
        let sumOfSquares = try (input * input).sum(dims: dims)
        let localCount = try Tensor.full([1], Double(x.count / c), dtype: input.dtype, device: input.device)
        let stats = try group.allReduceSumDifferentiable(Tensor.cat([sum, sumOfSquares, localCount]))
        let total = try stats.slice(dim: 0, start: 2 * c, end: 2 * c + 1).item()
        guard total > 1 else {
            throw TorchError("\(type(of: self)) expected more than 1 value per channel when training, got input shape \(x.shape) over \(group.worldSize) ranks")
        }
        let mean = try stats.slice(dim: 0, start: 0, end: c) / total
        let variance = try stats.slice(dim: 0, start: c, end: 2 * c) / total - mean * mean
        if let runningMean, let runningVar {
            try withNoGrad {
                let m = try mean.detach().to(dtype: runningMean.dtype)
                let unbiased = try (variance.detach() * (total / (total - 1))).to(dtype: runningVar.dtype)
                try runningMean.mul_(1 - factor)
                try runningMean.add_(m, alpha: factor)
                try runningVar.mul_(1 - factor)
                try runningVar.add_(unbiased, alpha: factor)
            }
        }
        let shape = [1, c] + Array(repeating: 1, count: x.rank - 2)
        var y = try (input - mean.view(shape)) * (variance + eps).rsqrt().view(shape)
        if let weight, let bias {
            y = try y * weight.view(shape) + bias.view(shape)
        }
        return y.dtype == x.dtype ? y : try y.to(dtype: x.dtype)
    }
}
