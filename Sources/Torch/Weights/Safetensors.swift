import Foundation

/// The safetensors format: an 8-byte little-endian header length, a JSON header naming each
/// tensor's dtype, shape and byte range, then the raw little-endian bytes.
public enum Safetensors {
    static let codes: [(DType, String)] = [
        (.float32, "F32"), (.float16, "F16"), (.bfloat16, "BF16"), (.float64, "F64"), (.int64, "I64"),
        (.int32, "I32"), (.int16, "I16"), (.int8, "I8"), (.uint8, "U8"), (.bool, "BOOL"),
    ]

    static func code(_ d: DType) -> String { codes.first { $0.0 == d }!.1 }
    static func dtype(_ code: String) -> DType? { codes.first { $0.1 == code }?.0 }

    public static func load(_ url: URL) throws -> (tensors: StateDict, metadata: [String: String]) {
        let name = url.path
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw TorchError("\(name): cannot read (\(error.localizedDescription))")
        }
        guard data.count >= 8 else { throw TorchError("\(name): truncated: \(data.count) bytes, a safetensors file has at least 8") }
        let headerLength = data.prefix(8).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        guard headerLength <= UInt64(data.count - 8) else {
            throw TorchError("\(name): header length \(headerLength) exceeds the file size \(data.count)")
        }
        let headerEnd = 8 + Int(headerLength)
        guard let header = try? JSONSerialization.jsonObject(with: data.subdata(in: 8..<headerEnd)) as? [String: Any] else {
            throw TorchError("\(name): the header is not a JSON object")
        }
        var metadata: [String: String] = [:]
        var entries: [(String, DType, [Int], Int, Int)] = []
        for (key, value) in header {
            if key == "__metadata__" {
                guard let m = value as? [String: String] else { throw TorchError("\(name): __metadata__ must map strings to strings") }
                metadata = m
                continue
            }
            guard let info = value as? [String: Any], let code = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offsets = info["data_offsets"] as? [Int], offsets.count == 2 else {
                throw TorchError("\(name): entry '\(key)' lacks dtype, shape or data_offsets")
            }
            guard let dtype = dtype(code) else { throw TorchError("\(name): entry '\(key)' has unsupported dtype \(code)") }
            guard shape.allSatisfy({ $0 >= 0 }), offsets[0] >= 0, offsets[0] <= offsets[1], headerEnd + offsets[1] <= data.count else {
                throw TorchError("\(name): entry '\(key)' has byte range \(offsets) outside the data (\(data.count - headerEnd) bytes)")
            }
            let expected = shape.reduce(1, *) * dtype.byteSize
            guard offsets[1] - offsets[0] == expected else {
                throw TorchError("\(name): entry '\(key)' holds \(offsets[1] - offsets[0]) bytes, shape \(shape) of \(code) needs \(expected)")
            }
            entries.append((key, dtype, shape, offsets[0], offsets[1]))
        }
        // Keep the file's order (by offset), which is the order it was written in.
        entries.sort { $0.3 < $1.3 }
        var dict = StateDict()
        try data.withUnsafeBytes { raw in
            for (key, dtype, shape, begin, end) in entries {
                let bytes = UnsafeRawBufferPointer(rebasing: raw[(headerEnd + begin)..<(headerEnd + end)])
                dict.set(key, try Tensor(bytes: bytes, shape: shape, dtype: dtype))
            }
        }
        return (dict, metadata)
    }

    /// Writes the tensors (moved to CPU, contiguous) atomically: temporary file, fsync, rename.
    public static func save(_ dict: StateDict, metadata: [String: String] = [:], to url: URL) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var blobs: [Data] = []
        var offset = 0
        for (name, tensor) in dict {
            let bytes = try tensor.data()
            header[name] = ["dtype": code(tensor.dtype), "shape": tensor.shape, "data_offsets": [offset, offset + bytes.count]]
            offset += bytes.count
            blobs.append(bytes)
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var out = Data(capacity: 8 + json.count + offset)
        var length = UInt64(json.count).littleEndian
        out.append(Data(bytes: &length, count: 8))
        out.append(json)
        for b in blobs { out.append(b) }
        guard FileManager.default.fileExists(atPath: url.deletingLastPathComponent().path) else {
            throw TorchError("\(url.path): the folder \(url.deletingLastPathComponent().path) does not exist")
        }
        do { try AtomicFile.write(out, to: url) } catch { throw TorchError("\(url.path): write failed: \(error.localizedDescription)") }
    }
}
