import CTorch
import Foundation

/// A libtorch tensor. The Swift object owns one handle and frees it when released.
/// Tensors are not thread-safe values: keep a training loop on one thread.
public final class Tensor: CustomStringConvertible {
    let handle: mt_tensor_t

    init(handle: mt_tensor_t) {
        self.handle = handle
    }

    deinit { mt_free(handle) }

    // MARK: metadata

    public var rank: Int { Int(mt_dim(handle)) }
    public var dim: Int { rank }

    public var shape: [Int] {
        var sizes = [Int64](repeating: 0, count: rank)
        _ = mt_sizes(handle, &sizes, sizes.count)
        return sizes.map(Int.init)
    }

    public func size(_ dim: Int) -> Int {
        let s = shape
        return s[dim < 0 ? dim + s.count : dim]
    }

    public var strides: [Int] {
        var values = [Int64](repeating: 0, count: rank)
        _ = mt_strides(handle, &values, values.count)
        return values.map(Int.init)
    }

    public var count: Int { Int(mt_numel(handle)) }
    public var numel: Int { count }
    public var dtype: DType { DType(rawValue: mt_dtype(handle)) ?? .float32 }
    public var device: Device { Device(typeCode: mt_device_type(handle), index: mt_device_index(handle)) }
    public var isContiguous: Bool { mt_is_contiguous(handle) == 1 }

    public var description: String {
        guard let text = mt_to_string(handle) else { return "Tensor(<unprintable>)" }
        defer { mt_free_string(text) }
        return String(cString: text)
    }

    // MARK: creation

    static func shape64(_ shape: [Int]) -> [Int64] { shape.map(Int64.init) }

    private static func make(_ shape: [Int], _ body: (UnsafePointer<Int64>?, Int) -> mt_tensor_t?) throws -> Tensor {
        Torch.initialize()
        let s = shape64(shape)
        return try s.withUnsafeBufferPointer { try wrap(body($0.baseAddress, s.count)) }
    }

    public static func zeros(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_zeros($0, $1, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    /// Zeros for a large buffer that lives for one stage of a process (on the CPU: in pages of
    /// their own, given back to the system when freed, instead of the heap, which keeps its size).
    public static func zerosMapped(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        guard device == .cpu else { return try zeros(shape, dtype: dtype, device: device) }
        return try make(shape) { mt_zeros_mapped($0, $1, dtype.rawValue) }
    }

    public static func ones(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_ones($0, $1, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    public static func empty(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_empty($0, $1, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_full($0, $1, value, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    /// Uniform samples in [0, 1).
    public static func rand(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_rand($0, $1, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    /// Standard normal samples.
    public static func randn(_ shape: [Int], dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_randn($0, $1, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    /// Integers uniformly drawn from [low, high).
    public static func randint(_ low: Int, _ high: Int, _ shape: [Int], dtype: DType = .int64, device: Device = .cpu) throws -> Tensor {
        try make(shape) { mt_randint(Int64(low), Int64(high), $0, $1, dtype.rawValue, device.typeCode, device.indexCode) }
    }

    public static func randperm(_ n: Int, device: Device = .cpu) throws -> Tensor {
        Torch.initialize()
        return try wrap(mt_randperm(Int64(n), device.typeCode, device.indexCode))
    }

    public static func arange(_ start: Double = 0, _ end: Double, step: Double = 1, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        Torch.initialize()
        return try wrap(mt_arange(start, end, step, dtype.rawValue, device.typeCode, device.indexCode))
    }

    public static func linspace(_ start: Double, _ end: Double, steps: Int, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        Torch.initialize()
        return try wrap(mt_linspace(start, end, Int64(steps), dtype.rawValue, device.typeCode, device.indexCode))
    }

    public static func eye(_ n: Int, dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        Torch.initialize()
        return try wrap(mt_eye(Int64(n), dtype.rawValue, device.typeCode, device.indexCode))
    }

    public static func zeros(like t: Tensor) throws -> Tensor { try wrap(mt_zeros_like(t.handle)) }
    public static func ones(like t: Tensor) throws -> Tensor { try wrap(mt_ones_like(t.handle)) }

    /// A tensor holding a copy of `values`, shaped `shape` (a flat vector when omitted).
    public convenience init<S: TensorScalar>(_ values: [S], shape: [Int]? = nil) throws {
        let shape = shape ?? [values.count]
        guard shape.reduce(1, *) == values.count else {
            throw TorchError("\(values.count) values do not fill shape \(shape)")
        }
        // The bytes are copied inside the closure: the array's storage is only valid there.
        let made = try values.withUnsafeBytes { try Tensor(bytes: $0, shape: shape, dtype: S.dtype) }
        self.init(handle: mt_shallow_copy(made.handle)!)
    }

    /// A tensor holding a copy of raw little-endian element bytes.
    public convenience init(bytes: UnsafeRawBufferPointer, shape: [Int], dtype: DType) throws {
        Torch.initialize()
        let needed = shape.reduce(1, *) * dtype.byteSize
        guard bytes.count == needed else {
            throw TorchError("\(bytes.count) bytes given, shape \(shape) of \(dtype) needs \(needed)")
        }
        let s = Tensor.shape64(shape)
        // from_blob needs a non-null pointer even for empty tensors.
        var placeholder: UInt64 = 0
        let handle: mt_tensor_t? = withUnsafeMutableBytes(of: &placeholder) { ph in
            s.withUnsafeBufferPointer { mt_from_buffer(bytes.baseAddress ?? UnsafeRawPointer(ph.baseAddress!), $0.baseAddress, s.count, dtype.rawValue) }
        }
        guard let handle else { throw TorchError.last() }
        self.init(handle: handle)
    }

    /// A 0-dimensional tensor.
    public convenience init(scalar: Double, dtype: DType = .float32) throws {
        let t = try Tensor.full([], scalar, dtype: dtype)
        self.init(handle: mt_shallow_copy(t.handle)!)
    }

    // MARK: reading values

    /// The raw element bytes in row-major order (copied to CPU and made contiguous first).
    public func data() throws -> Data {
        var out = Data(count: count * dtype.byteSize)
        let n = out.count
        try out.withUnsafeMutableBytes { try check(mt_copy_to_buffer(handle, $0.baseAddress, n)) }
        return out
    }

    /// The elements as a flat Swift array; the element type must match `dtype`.
    public func toArray<S: TensorScalar>(_ type: S.Type = S.self) throws -> [S] {
        let source = dtype == S.dtype ? self : try to(dtype: S.dtype)
        let n = count
        return try [S](unsafeUninitializedCapacity: n) { buffer, initialized in
            try check(mt_copy_to_buffer(source.handle, buffer.baseAddress, n * MemoryLayout<S>.stride))
            initialized = n
        }
    }

    public func floats() throws -> [Float] { try toArray(Float.self) }

    /// The value of a one-element tensor.
    public func item() throws -> Double {
        var value = 0.0
        try check(mt_item_double(handle, &value))
        return value
    }

    public func itemInt() throws -> Int {
        var value: Int64 = 0
        try check(mt_item_int64(handle, &value))
        return Int(value)
    }

    // MARK: conversion

    /// This tensor on `device` with `dtype` (itself when nothing changes and `copy` is false).
    /// `nonBlocking`: a copy between pinned host memory and a GPU is queued on the current stream
    /// and this returns at once (as PyTorch's `non_blocking=True`); elsewhere it has no effect.
    public func to(device: Device? = nil, dtype: DType? = nil, copy: Bool = false, nonBlocking: Bool = false) throws -> Tensor {
        let d = device ?? self.device
        return try wrap(mt_to(handle, (dtype ?? self.dtype).rawValue, d.typeCode, d.indexCode, copy ? 1 : 0, nonBlocking ? 1 : 0))
    }

    /// A copy of this CPU tensor in page-locked (pinned) host memory, which the GPU reads by DMA,
    /// so copies from it can overlap compute. Needs CUDA; throws libtorch's error without it.
    public func pinnedMemory() throws -> Tensor { try wrap(mt_pin_memory(handle)) }

    /// Whether this tensor lives in pinned host memory (always false on a CPU-only build).
    public var isPinned: Bool { mt_is_pinned(handle) != 0 }

    public func to(dtype: DType) throws -> Tensor { try to(device: nil, dtype: dtype) }
    public func float() throws -> Tensor { try to(dtype: .float32) }
    public func long() throws -> Tensor { try to(dtype: .int64) }

    public func contiguous() throws -> Tensor { try wrap(mt_contiguous(handle)) }
    public func clone() throws -> Tensor { try wrap(mt_clone(handle)) }
    /// A tensor sharing storage but cut from the autograd graph.
    public func detach() throws -> Tensor { try wrap(mt_detach(handle)) }

    /// Another Swift reference to the same libtorch tensor (same storage and autograd identity).
    public func alias() -> Tensor { Tensor(handle: mt_shallow_copy(handle)!) }

    public func allClose(_ other: Tensor, rtol: Double = 1e-5, atol: Double = 1e-8) throws -> Bool {
        let r = mt_allclose(handle, other.handle, rtol, atol)
        if r < 0 { throw TorchError.last() }
        return r == 1
    }

    public func equal(_ other: Tensor) throws -> Bool {
        let r = mt_equal(handle, other.handle)
        if r < 0 { throw TorchError.last() }
        return r == 1
    }
}
