import CTorch

/// Reductions: the C shim's own codes, by name.
typealias ReductionOp = mt_reduction_op

extension ReductionOp {
    static let sum = MT_RED_SUM, mean = MT_RED_MEAN, amax = MT_RED_AMAX, amin = MT_RED_AMIN, prod = MT_RED_PROD
    static let any = MT_RED_ANY, all = MT_RED_ALL, logsumexp = MT_RED_LOGSUMEXP
}

extension Tensor {
    func reduce(_ op: ReductionOp, _ dims: [Int], keepDim: Bool) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer {
            try wrap(mt_reduce(op, handle, $0.baseAddress, d.count, keepDim ? 1 : 0))
        }
    }

    /// Sum over `dims` (every element when empty).
    public func sum(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.sum, dims, keepDim: keepDim) }
    public func sum(dim: Int, keepDim: Bool = false) throws -> Tensor { try reduce(.sum, [dim], keepDim: keepDim) }
    public func mean(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.mean, dims, keepDim: keepDim) }
    public func mean(dim: Int, keepDim: Bool = false) throws -> Tensor { try reduce(.mean, [dim], keepDim: keepDim) }
    public func max(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.amax, dims, keepDim: keepDim) }
    public func min(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.amin, dims, keepDim: keepDim) }
    public func prod(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor { try reduce(.prod, dim.map { [$0] } ?? [], keepDim: keepDim) }
    public func any(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor { try reduce(.any, dim.map { [$0] } ?? [], keepDim: keepDim) }
    public func all(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor { try reduce(.all, dim.map { [$0] } ?? [], keepDim: keepDim) }
    public func logsumexp(dims: [Int] = [], keepDim: Bool = false) throws -> Tensor { try reduce(.logsumexp, dims, keepDim: keepDim) }

    /// Variance with Bessel's correction by default (`correction` 1), as torch.var.
    public func variance(dims: [Int] = [], correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer {
            try wrap(mt_var(handle, $0.baseAddress, d.count, Int64(correction), keepDim ? 1 : 0, 0))
        }
    }

    public func std(dims: [Int] = [], correction: Int = 1, keepDim: Bool = false) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer {
            try wrap(mt_var(handle, $0.baseAddress, d.count, Int64(correction), keepDim ? 1 : 0, 1))
        }
    }

    public func norm(p: Double = 2, dims: [Int] = [], keepDim: Bool = false) throws -> Tensor {
        let d = dims.map(Int64.init)
        return try d.withUnsafeBufferPointer { try wrap(mt_norm(handle, p, $0.baseAddress, d.count, keepDim ? 1 : 0)) }
    }

    public func argmax(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor {
        try wrap(mt_argmax(handle, Int64(dim ?? 0), dim == nil ? 0 : 1, keepDim ? 1 : 0))
    }

    public func argmin(dim: Int? = nil, keepDim: Bool = false) throws -> Tensor {
        try wrap(mt_argmin(handle, Int64(dim ?? 0), dim == nil ? 0 : 1, keepDim ? 1 : 0))
    }

    /// Maximum along `dim` with the indices where it occurs.
    public func max(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: Tensor) {
        var indices: mt_tensor_t? = nil
        let values = try wrap(mt_max_dim(handle, Int64(dim), keepDim ? 1 : 0, &indices))
        return (values, try wrap(indices))
    }

    public func cumsum(dim: Int) throws -> Tensor { try wrap(mt_cumsum(handle, Int64(dim))) }

    public func topk(_ k: Int, dim: Int = -1, largest: Bool = true, sorted: Bool = true) throws -> (values: Tensor, indices: Tensor) {
        let r = try unpack(mt_topk(handle, Int64(k), Int64(dim), largest ? 1 : 0, sorted ? 1 : 0))
        return (r[0], r[1])
    }

    public func sort(dim: Int = -1, descending: Bool = false) throws -> (values: Tensor, indices: Tensor) {
        let r = try unpack(mt_sort(handle, Int64(dim), descending ? 1 : 0))
        return (r[0], r[1])
    }

    /// The sorted distinct values.
    public func unique() throws -> Tensor { try wrap(mt_unique(handle)) }
    public func bincount(minLength: Int = 0) throws -> Tensor { try wrap(mt_bincount(handle, Int64(minLength))) }
    public func nonzero() throws -> Tensor { try wrap(mt_nonzero(handle)) }
}
