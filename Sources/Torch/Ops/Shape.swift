import CTorch

/// Padding modes of `pad`, as torch.nn.functional.pad.
public enum PadMode: Int32, Sendable {
    case constant = 0, reflect, replicate, circular
}

extension Tensor {
    private func withInts<R>(_ values: [Int], _ body: (UnsafePointer<Int64>?, Int) throws -> R) rethrows -> R {
        let v = values.map(Int64.init)
        return try v.withUnsafeBufferPointer { try body($0.baseAddress, v.count) }
    }

    public func reshape(_ shape: [Int]) throws -> Tensor { try withInts(shape) { try wrap(mt_reshape(handle, $0, $1)) } }
    public func view(_ shape: [Int]) throws -> Tensor { try withInts(shape) { try wrap(mt_view(handle, $0, $1)) } }
    public func expand(_ shape: [Int]) throws -> Tensor { try withInts(shape) { try wrap(mt_expand(handle, $0, $1)) } }
    public func repeated(_ repeats: [Int]) throws -> Tensor { try withInts(repeats) { try wrap(mt_repeat(handle, $0, $1)) } }
    public func permute(_ dims: [Int]) throws -> Tensor { try withInts(dims) { try wrap(mt_permute(handle, $0, $1)) } }
    public func transpose(_ d0: Int, _ d1: Int) throws -> Tensor { try wrap(mt_transpose(handle, Int64(d0), Int64(d1))) }
    /// The matrix transpose of a 2-D tensor.
    public func t() throws -> Tensor { try transpose(0, 1) }
    public func flatten(start: Int = 0, end: Int = -1) throws -> Tensor { try wrap(mt_flatten(handle, Int64(start), Int64(end))) }
    public func squeeze(dim: Int? = nil) throws -> Tensor { try wrap(mt_squeeze(handle, Int64(dim ?? 0), dim == nil ? 0 : 1)) }
    public func unsqueeze(_ dim: Int) throws -> Tensor { try wrap(mt_unsqueeze(handle, Int64(dim))) }
    public func flip(_ dims: [Int]) throws -> Tensor { try withInts(dims) { try wrap(mt_flip(handle, $0, $1)) } }

    public func roll(shifts: [Int], dims: [Int]) throws -> Tensor {
        guard shifts.count == dims.count else { throw TorchError("roll needs one shift per dimension") }
        let s = shifts.map(Int64.init), d = dims.map(Int64.init)
        return try wrap(mt_roll(handle, s, d, s.count))
    }

    /// Elements `start..<end` (stepping by `step`) along `dim`; a view, like Python slicing.
    public func slice(dim: Int, start: Int? = nil, end: Int? = nil, step: Int = 1) throws -> Tensor {
        try wrap(mt_slice(handle, Int64(dim), Int64(start ?? 0), Int64(end ?? Int(Int64.max)), Int64(step)))
    }

    public func narrow(dim: Int, start: Int, length: Int) throws -> Tensor {
        try slice(dim: dim, start: start, end: start + length)
    }

    /// The sub-tensor at `index` along `dim` (that dimension removed).
    public func select(dim: Int, index: Int) throws -> Tensor { try wrap(mt_select(handle, Int64(dim), Int64(index))) }

    /// `t[i]`: the sub-tensor at index `i` of the first dimension.
    public subscript(_ index: Int) -> Tensor {
        get throws { try select(dim: 0, index: index) }
    }

    /// `t[a..<b]`: a slice of the first dimension.
    public subscript(_ range: Range<Int>) -> Tensor {
        get throws { try slice(dim: 0, start: range.lowerBound, end: range.upperBound) }
    }

    public func indexSelect(dim: Int, index: Tensor) throws -> Tensor { try wrap(mt_index_select(handle, Int64(dim), index.handle)) }
    public func gather(dim: Int, index: Tensor) throws -> Tensor { try wrap(mt_gather(handle, Int64(dim), index.handle)) }
    public func scatter(dim: Int, index: Tensor, source: Tensor) throws -> Tensor {
        try wrap(mt_scatter(handle, Int64(dim), index.handle, source.handle))
    }
    public func maskedSelect(_ mask: Tensor) throws -> Tensor { try wrap(mt_masked_select(handle, mask.handle)) }

    public static func cat(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
        let handles: [mt_tensor_t?] = tensors.map { $0.handle }
        return try withExtendedLifetime(tensors) { try wrap(mt_cat(handles, handles.count, Int64(dim))) }
    }

    public static func stack(_ tensors: [Tensor], dim: Int = 0) throws -> Tensor {
        let handles: [mt_tensor_t?] = tensors.map { $0.handle }
        return try withExtendedLifetime(tensors) { try wrap(mt_stack(handles, handles.count, Int64(dim))) }
    }

    /// Pieces of `size` along `dim` (the last may be smaller).
    public func split(_ size: Int, dim: Int = 0) throws -> [Tensor] { try unpack(mt_split(handle, Int64(size), Int64(dim))) }

    public func split(sizes: [Int], dim: Int = 0) throws -> [Tensor] {
        try withInts(sizes) { try unpack(mt_split_sizes(handle, $0, $1, Int64(dim))) }
    }

    public func chunk(_ chunks: Int, dim: Int = 0) throws -> [Tensor] { try unpack(mt_chunk(handle, Int64(chunks), Int64(dim))) }

    /// Pads with (before, after) pairs starting from the last dimension, as torch.nn.functional.pad.
    public func pad(_ padding: [Int], mode: PadMode = .constant, value: Double = 0) throws -> Tensor {
        guard padding.count % 2 == 0 else { throw TorchError("padding needs (before, after) pairs, got \(padding.count) values") }
        return try withInts(padding) { try wrap(mt_pad(handle, $0, $1, mode.rawValue, value)) }
    }
}
