import Foundation
import ZIPFoundation

/// Reads `torch.save` files (the zip format of PyTorch >= 1.6): `ARCHIVE/data.pkl` plus raw
/// storages `ARCHIVE/data/N`, with tensors rebuilt from `_rebuild_tensor_v2` calls.
public enum PyTorchCheckpoint {
    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "DoubleStorage": .float64, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16, "CharStorage": .int8,
        "ByteStorage": .uint8, "BoolStorage": .bool,
    ]

    /// The whole pickled object with tensors in place.
    public static func load(_ url: URL) throws -> PickleValue {
        let name = url.path
        guard FileManager.default.fileExists(atPath: name) else { throw TorchError("\(name): no such file") }
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            let head = (try? FileHandle(forReadingFrom: url).read(upToCount: 2)) ?? Data()
            if head.first == 0x80 {
                throw TorchError("\(name): legacy (pre-1.6) .pth format is not supported; re-save it with torch.save in PyTorch >= 1.6")
            }
            throw TorchError("\(name): not a PyTorch checkpoint (not a zip archive)")
        }
        guard let pkl = archive.first(where: { $0.path.hasSuffix("data.pkl") && $0.path.split(separator: "/").count == 2 }) else {
            throw TorchError("\(name): the archive has no ARCHIVE/data.pkl")
        }
        let prefix = String(pkl.path.dropLast("data.pkl".count))
        func read(_ entry: Entry) throws -> Data {
            var out = Data()
            do { _ = try archive.extract(entry, skipCRC32: true) { out.append($0) } } catch {
                throw TorchError("\(name): cannot read \(entry.path) from the archive: \(error)")
            }
            return out
        }
        let pickle = try read(pkl)
        var storages: [String: (Data, DType)] = [:]

        let persistentLoad: (PickleValue) throws -> PickleValue = { pid in
            // ('storage', torch.FloatStorage, key, location, numel)
            guard let t = pid.items, t.count >= 5, t[0].string == "storage", case .global(_, let type) = t[1], let key = t[2].string else {
                throw TorchError("\(name): unexpected persistent id \(pid)")
            }
            guard let dtype = storageTypes[type] else { throw TorchError("\(name): unsupported storage type \(type)") }
            if storages[key] == nil {
                guard let entry = archive[prefix + "data/" + key] else { throw TorchError("\(name): storage \(key) is missing from the archive") }
                let bytes = try read(entry)
                let numel = Int(t[4].int ?? 0)
                guard bytes.count >= numel * dtype.byteSize else {
                    throw TorchError("\(name): storage \(key) is truncated: \(bytes.count) bytes for \(numel) elements of \(dtype)")
                }
                storages[key] = (bytes, dtype)
            }
            return .tuple([.string("storage"), .string(key)])
        }

        let rebuild: (PickleValue, [PickleValue]) throws -> PickleValue? = { callable, args in
            guard case .global(let module, let fn) = callable else { return nil }
            if module == "torch._utils" && fn == "_rebuild_tensor_v2" {
                guard args.count >= 4, let s = args[0].items, s.count == 2, let key = s[1].string, let (bytes, dtype) = storages[key],
                      let offset = args[1].int, let size = args[2].items?.compactMap(\.int), let stride = args[3].items?.compactMap(\.int) else {
                    throw TorchError("\(name): malformed tensor record")
                }
                return .tensor(try strided(bytes, dtype: dtype, offset: Int(offset), size: size.map(Int.init), stride: stride.map(Int.init), file: name))
            }
            if module == "torch._utils" && fn == "_rebuild_parameter", let first = args.first { return first }
            if module == "collections" && fn == "OrderedDict" { return .dict([]) }
            return nil
        }

        var reader = PickleReader(pickle, persistentLoad: persistentLoad, reduce: rebuild)
        do { return try reader.load() } catch let e as PickleReader.Failure {
            throw TorchError("\(name): \(e.description)")
        }
    }

    /// The state dict inside a checkpoint: the top-level dict when its values are tensors, else
    /// the first of "state_dict", "model", "model_state_dict", "net", "network_weights" that holds
    /// tensors; a `module.` prefix common to every key (DistributedDataParallel) is removed.
    public static func stateDict(from url: URL) throws -> StateDict {
        let root = try load(url)
        guard let dict = tensorDict(root) ?? nestedTensorDict(root) else {
            throw TorchError("\(url.path): no state dict found (looked at the top level and under state_dict, model, model_state_dict, net, network_weights)")
        }
        if !dict.isEmpty && dict.keys.allSatisfy({ $0.hasPrefix("module.") }) { return dict.strippingPrefix("module.") }
        return dict
    }

    static func tensorDict(_ value: PickleValue) -> StateDict? {
        guard case .dict(let pairs) = value else { return nil }
        var out = StateDict()
        for (k, v) in pairs {
            guard let key = k.string else { continue }
            if case .tensor(let t) = v { out.set(key, t) }
        }
        return out.isEmpty ? nil : out
    }

    static func nestedTensorDict(_ value: PickleValue) -> StateDict? {
        guard case .dict(let pairs) = value else { return nil }
        for wanted in ["state_dict", "model", "model_state_dict", "net", "network_weights"] {
            if let v = pairs.first(where: { $0.0.string == wanted })?.1 {
                if let d = tensorDict(v) { return d }
                if let d = nestedTensorDict(v) { return d }
            }
        }
        return nil
    }

    /// A contiguous tensor holding the strided view of a storage.
    static func strided(_ storage: Data, dtype: DType, offset: Int, size: [Int], stride strides: [Int], file: String) throws -> Tensor {
        let element = dtype.byteSize
        let count = size.reduce(1, *)
        if count == 0 { return try Tensor.zeros(size, dtype: dtype) }
        let last = offset + zip(size, strides).reduce(0) { $0 + ($1.0 - 1) * $1.1 }
        guard offset >= 0, (last + 1) * element <= storage.count else {
            throw TorchError("\(file): tensor view (offset \(offset), size \(size), stride \(strides)) reaches beyond its storage")
        }
        var contiguousStride = [Int](repeating: 1, count: size.count)
        for i in stride(from: size.count - 2, through: 0, by: -1) { contiguousStride[i] = contiguousStride[i + 1] * size[i + 1] }
        if strides == contiguousStride || size.count == 0 {
            return try storage.withUnsafeBytes { raw in
                try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[(offset * element)..<((offset + count) * element)]), shape: size, dtype: dtype)
            }
        }
        // Gather the elements of a non-contiguous view (a transposed weight, for instance).
        var out = Data(count: count * element)
        storage.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                var index = [Int](repeating: 0, count: size.count)
                for n in 0..<count {
                    var source = offset
                    for d in 0..<size.count { source += index[d] * strides[d] }
                    dst.baseAddress!.advanced(by: n * element).copyMemory(from: src.baseAddress!.advanced(by: source * element), byteCount: element)
                    var d = size.count - 1
                    while d >= 0 {
                        index[d] += 1
                        if index[d] < size[d] { break }
                        index[d] = 0
                        d -= 1
                    }
                }
            }
        }
        return try out.withUnsafeBytes { try Tensor(bytes: $0, shape: size, dtype: dtype) }
    }
}
