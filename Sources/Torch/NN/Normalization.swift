/// Batch normalization over (N, C, ...) inputs, as torch.nn.BatchNorm1d/2d/3d (which differ only in
/// the input rank they accept).
public class BatchNorm: Module {
    public let numFeatures: Int
    public let eps: Double
    /// nil means a cumulative moving average (PyTorch's momentum=None).
    public let momentum: Double?
    public let weight: Tensor?
    public let bias: Tensor?
    public let runningMean: Tensor?
    public let runningVar: Tensor?
    public let numBatchesTracked: Tensor?
    /// In training, statistics over the whole batch of this group's ranks (SyncBatchNorm); nil: this
    /// process's batch only. Set by `SyncBatchNorm.convert(_:group:)`.
    public var syncGroup: ProcessGroup?
    let expectedRanks: [Int]

    init(_ numFeatures: Int, eps: Double, momentum: Double?, affine: Bool, trackRunningStats: Bool, expectedRanks: [Int]) throws {
        self.numFeatures = numFeatures
        self.eps = eps
        self.momentum = momentum
        self.expectedRanks = expectedRanks
        weight = affine ? try Tensor.ones([numFeatures]) : nil
        bias = affine ? try Tensor.zeros([numFeatures]) : nil
        runningMean = trackRunningStats ? try Tensor.zeros([numFeatures]) : nil
        runningVar = trackRunningStats ? try Tensor.ones([numFeatures]) : nil
        numBatchesTracked = trackRunningStats ? try Tensor.zeros([], dtype: .int64) : nil
        super.init()
        if let weight, let bias {
            registerParameter("weight", weight)
            registerParameter("bias", bias)
        }
        if let runningMean, let runningVar, let numBatchesTracked {
            registerBuffer("running_mean", runningMean)
            registerBuffer("running_var", runningVar)
            registerBuffer("num_batches_tracked", numBatchesTracked)
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard expectedRanks.contains(x.rank) else {
            throw TorchError("\(type(of: self)) expects a \(expectedRanks.map(String.init).joined(separator: " or "))-D input, got shape \(x.shape)")
        }
        var factor = momentum ?? 0
        if isTraining, let tracked = numBatchesTracked {
            try withNoGrad { try tracked.add_(1) }
            if momentum == nil { factor = 1 / (try tracked.item()) }
        }
        if isTraining, let group = syncGroup, group.worldSize > 1 {
            return try synchronizedForward(x, group: group, momentum: factor)
        }
        let useBatchStats = isTraining || runningMean == nil
        return try F.batchNorm(x, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias, training: useBatchStats, momentum: factor, eps: eps)
    }
}

public final class BatchNorm1d: BatchNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true, trackRunningStats: Bool = true) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats, expectedRanks: [2, 3])
    }
}

public final class BatchNorm2d: BatchNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true, trackRunningStats: Bool = true) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats, expectedRanks: [4])
    }
}

public final class BatchNorm3d: BatchNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double? = 0.1, affine: Bool = true, trackRunningStats: Bool = true) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats, expectedRanks: [5])
    }
}

/// Instance normalization, as torch.nn.InstanceNorm2d/3d (PyTorch's defaults: no affine, no running stats).
public class InstanceNorm: Module {
    public let numFeatures: Int
    public let eps: Double
    public let momentum: Double
    public let weight: Tensor?
    public let bias: Tensor?
    public let runningMean: Tensor?
    public let runningVar: Tensor?
    let expectedRank: Int

    init(_ numFeatures: Int, eps: Double, momentum: Double, affine: Bool, trackRunningStats: Bool, expectedRank: Int) throws {
        self.numFeatures = numFeatures
        self.eps = eps
        self.momentum = momentum
        self.expectedRank = expectedRank
        weight = affine ? try Tensor.ones([numFeatures]) : nil
        bias = affine ? try Tensor.zeros([numFeatures]) : nil
        runningMean = trackRunningStats ? try Tensor.zeros([numFeatures]) : nil
        runningVar = trackRunningStats ? try Tensor.ones([numFeatures]) : nil
        super.init()
        if let weight, let bias {
            registerParameter("weight", weight)
            registerParameter("bias", bias)
        }
        if let runningMean, let runningVar {
            registerBuffer("running_mean", runningMean)
            registerBuffer("running_var", runningVar)
            registerBuffer("num_batches_tracked", try Tensor.zeros([], dtype: .int64))
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        guard x.rank == expectedRank || x.rank == expectedRank - 1 else {
            throw TorchError("\(type(of: self)) expects a \(expectedRank)-D input, got shape \(x.shape)")
        }
        // An unbatched (C, ...) input is treated as a batch of one.
        let batched = x.rank == expectedRank ? x : try x.unsqueeze(0)
        let y = try F.instanceNorm(batched, runningMean: runningMean, runningVar: runningVar, weight: weight, bias: bias,
                                   useInputStats: isTraining || runningMean == nil, momentum: momentum, eps: eps)
        return x.rank == expectedRank ? y : try y.squeeze(dim: 0)
    }
}

public final class InstanceNorm1d: InstanceNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = false, trackRunningStats: Bool = false) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats, expectedRank: 3)
    }
}

public final class InstanceNorm2d: InstanceNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = false, trackRunningStats: Bool = false) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats, expectedRank: 4)
    }
}

public final class InstanceNorm3d: InstanceNorm {
    public init(_ numFeatures: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = false, trackRunningStats: Bool = false) throws {
        try super.init(numFeatures, eps: eps, momentum: momentum, affine: affine, trackRunningStats: trackRunningStats, expectedRank: 5)
    }
}

/// Group normalization, as torch.nn.GroupNorm.
public final class GroupNorm: Module {
    public let numGroups: Int
    public let numChannels: Int
    public let eps: Double
    public let weight: Tensor?
    public let bias: Tensor?

    public init(_ numGroups: Int, _ numChannels: Int, eps: Double = 1e-5, affine: Bool = true) throws {
        guard numGroups > 0, numChannels % numGroups == 0 else {
            throw TorchError("GroupNorm: \(numChannels) channels cannot be split into \(numGroups) groups")
        }
        self.numGroups = numGroups
        self.numChannels = numChannels
        self.eps = eps
        weight = affine ? try Tensor.ones([numChannels]) : nil
        bias = affine ? try Tensor.zeros([numChannels]) : nil
        super.init()
        if let weight, let bias {
            registerParameter("weight", weight)
            registerParameter("bias", bias)
        }
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try F.groupNorm(x, groups: numGroups, weight: weight, bias: bias, eps: eps)
    }
}

/// Layer normalization over the trailing `normalizedShape` dimensions, as torch.nn.LayerNorm.
public final class LayerNorm: Module {
    public let normalizedShape: [Int]
    public let eps: Double
    public let weight: Tensor?
    public let bias: Tensor?

    public init(_ normalizedShape: [Int], eps: Double = 1e-5, elementwiseAffine: Bool = true) throws {
        self.normalizedShape = normalizedShape
        self.eps = eps
        weight = elementwiseAffine ? try Tensor.ones(normalizedShape) : nil
        bias = elementwiseAffine ? try Tensor.zeros(normalizedShape) : nil
        super.init()
        if let weight, let bias {
            registerParameter("weight", weight)
            registerParameter("bias", bias)
        }
    }

    public convenience init(_ features: Int, eps: Double = 1e-5, elementwiseAffine: Bool = true) throws {
        try self.init([features], eps: eps, elementwiseAffine: elementwiseAffine)
    }

    public override func forward(_ x: Tensor) throws -> Tensor {
        try F.layerNorm(x, normalizedShape: normalizedShape, weight: weight, bias: bias, eps: eps)
    }
}
