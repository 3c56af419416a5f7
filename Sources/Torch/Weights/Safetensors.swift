import Foundation

/// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON naming each
/// tensor's dtype, shape and byte range (relative to the data that follows), then the raw
/// little-endian bytes. Reading checks the file as strictly as the reference implementation.
public enum Safetensors {
    static let codes: [(DType, String)] = [
        (.float32, "F32"), (.float16, "F16"), (.bfloat16, "BF16"), (.float64, "F64"), (.int64, "I64"),
        (.int32, "I32"), (.int16, "I16"), (.int8, "I8"), (.uint8, "U8"), (.bool, "BOOL"),
    ]

    /// The format's name for a dtype ("F32", "BF16", "BOOL", ...).
    public static func code(_ d: DType) -> String { codes.first { $0.0 == d }!.1 }
    /// The dtype a format name stands for, nil for names MedSeg does not support (F8, U16...).
    public static func dtype(_ code: String) -> DType? { codes.first { $0.1 == code }?.0 }

    /// Headers above this size are refused (the reference implementation's limit).
    static let maxHeaderLength: UInt64 = 100_000_000

    /// Reads every tensor (in file order) and the `__metadata__` strings.
    public static func load(_ url: URL) throws -> (tensors: StateDict, metadata: [String: String]) {
        let name = url.path
        func failure(_ what: String) -> TorchError { TorchError("\(name): \(what)") }
        if let problem = RegularFile.problem(url) { throw failure(problem) }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            let exists = FileManager.default.fileExists(atPath: name)
            throw failure(exists ? "cannot be read (\((error as NSError).localizedDescription))" : "no such file")
        }
        guard data.count >= 8 else {
            throw failure("truncated: \(data.count) bytes, a safetensors file starts with an 8-byte header length")
        }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            // A PyTorch checkpoint is a zip (or, before 1.6, a pickle): say so instead of a nonsense length.
            if data.starts(with: [0x50, 0x4B, 0x03, 0x04]) || (data[data.startIndex] == 0x80 && (2...5).contains(data[data.startIndex + 1])) {
                throw failure("is a PyTorch checkpoint (.pth/.pt), not a safetensors file; PyTorch weights load with `medseg weights` or where an option takes a .pth")
            }
            throw failure("header length \(headerLength) exceeds the file size (\(data.count) bytes): truncated or not a safetensors file")
        }
        guard headerLength <= maxHeaderLength else { throw failure("header length \(headerLength) is larger than the 100 MB the format allows") }
        let headerEnd = 8 + Int(headerLength)
        let headerBytes = data.subdata(in: 8..<headerEnd)
        guard headerBytes.first == UInt8(ascii: "{"), let parsed = try? JSONSerialization.jsonObject(with: headerBytes),
              let header = parsed as? [String: Any] else {
            throw failure("the \(headerLength)-byte header is not valid JSON (expected an object of tensor entries)")
        }
        let available = data.count - headerEnd
        var metadata: [String: String] = [:]
        var entries: [(name: String, dtype: DType, shape: [Int], begin: Int, end: Int)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: Any] else { throw failure("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw failure("__metadata__ entry '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let info = value as? [String: Any] else { throw failure("entry '\(key)' is not an object") }
            guard let code = info["dtype"] as? String else { throw failure("entry '\(key)' has no dtype") }
            guard let dtype = dtype(code) else {
                throw failure("entry '\(key)' has unknown or unsupported dtype '\(code)' (supported: \(codes.map(\.1).joined(separator: ", ")))")
            }
            guard let shape = integers(info["shape"]), shape.allSatisfy({ $0 >= 0 }) else {
                throw failure("entry '\(key)' has no valid shape (a list of non-negative integers)")
            }
            guard let offsets = integers(info["data_offsets"]), offsets.count == 2 else {
                throw failure("entry '\(key)' has no valid data_offsets (two integers)")
            }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, begin <= end, end <= available else {
                throw failure("entry '\(key)' has data_offsets [\(begin), \(end)] outside the \(available)-byte data section")
            }
            var size = dtype.byteSize
            for s in shape {
                let (p, o) = size.multipliedReportingOverflow(by: s)
                guard !o else { throw failure("entry '\(key)' has an impossible shape \(shape)") }
                size = p
            }
            guard end - begin == size else {
                throw failure("entry '\(key)' has \(end - begin) bytes at data_offsets [\(begin), \(end)] but shape \(shape) of \(code) needs \(size)")
            }
            entries.append((key, dtype, shape, begin, end))
        }
        // Tensors tile the data section in file order, without gaps or overlaps.
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var cursor = 0
        for e in entries {
            guard e.begin == cursor else {
                throw failure(e.begin < cursor ? "entry '\(e.name)' overlaps the previous tensor's bytes (data_offsets start at \(e.begin), expected \(cursor))"
                                               : "entry '\(e.name)' leaves a gap in the data (data_offsets start at \(e.begin), expected \(cursor))")
            }
            cursor = e.end
        }
        guard cursor == available else {
            throw failure("the data section has \(available) bytes but the tensors account for \(cursor)")
        }
        var dict = StateDict()
        try data.withUnsafeBytes { raw in
            for e in entries {
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(headerEnd + e.begin)..<(headerEnd + e.end)])
                dict.set(e.name, try Tensor(bytes: bytes, shape: e.shape, dtype: e.dtype))
            }
        }
        return (dict, metadata)
    }

    /// A JSON list of integers (numbers with a fractional part are refused).
    static func integers(_ value: Any?) -> [Int]? {
        guard let list = value as? [Any] else { return nil }
        var out: [Int] = []
        for v in list {
            guard let n = v as? NSNumber, Double(n.int64Value) == n.doubleValue else { return nil }
            out.append(Int(n.int64Value))
        }
        return out
    }

    /// Writes the tensors (copied to the CPU, contiguous) in the dict's order with `metadata` as
    /// `__metadata__`. The file appears atomically (see `SafetensorsWriter`).
    public static func save(_ dict: StateDict, metadata: [String: String] = [:], to url: URL) throws {
        let writer = try SafetensorsWriter(url, tensors: dict.map { ($0.0, $0.1.dtype, $0.1.shape) }, metadata: metadata)
        // One tensor at a time, so saving needs no second copy of the whole model in memory.
        for (index, (key, tensor)) in dict.enumerated() {
            let bytes = try tensor.data()
            guard bytes.count == tensor.count * tensor.dtype.byteSize else {
                throw TorchError("\(url.path): tensor '\(key)' gave \(bytes.count) bytes, expected \(tensor.count * tensor.dtype.byteSize)")
            }
            try writer.write(bytes, tensor: index)
        }
        try writer.commit()
    }
}
