import Foundation
import ZIPFoundation

/// Reads `torch.save` files (the zip format of PyTorch >= 1.6): `ARCHIVE/data.pkl` plus raw
/// storages `ARCHIVE/data/<key>`, with tensors rebuilt from `_rebuild_tensor_v2` calls. Nothing
/// in the pickle is executed; storages may have been saved from any device and load on the CPU.
public enum PyTorchCheckpoint {
    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "DoubleStorage": .float64, "HalfStorage": .float16, "BFloat16Storage": .bfloat16,
        "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16, "CharStorage": .int8,
        "ByteStorage": .uint8, "BoolStorage": .bool,
    ]

    /// Where `stateDict(from:)` looks for a nested state dict, in this order.
    public static let wrapperKeys = ["state_dict", "model", "model_state_dict", "net", "network_weights"]

    /// The whole pickled object with every tensor rebuilt (`.tensor`), as contiguous CPU tensors.
    public static func load(_ url: URL) throws -> PickleValue {
        let name = url.path
        let archive = try open(url)
        let entries = Array(archive)
        // The archive's top folder is named after the file torch.save wrote, so it varies.
        let candidates = entries.filter { $0.type == .file && ($0.path == "data.pkl" || $0.path.hasSuffix("/data.pkl")) }
        guard let pkl = candidates.min(by: { $0.path.split(separator: "/").count < $1.path.split(separator: "/").count }) else {
            throw TorchError("\(name): not a torch.save checkpoint (the zip archive has no ARCHIVE/data.pkl)")
        }
        let prefix = String(pkl.path.dropLast("data.pkl".count))
        let pickle = try read(pkl, from: archive, file: name)

        var bigEndian = false
        if let entry = archive[prefix + "byteorder"] {
            let order = String(decoding: try read(entry, from: archive, file: name), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            guard order == "little" || order == "big" else { throw TorchError("\(name): unknown byte order '\(order)' in \(entry.path)") }
            bigEndian = order == "big"
        }

        var storages: [String: (bytes: Data, dtype: DType)] = [:]
        // ('storage', torch.FloatStorage, key, location, numel): load and check the record once,
        // then hand the id on to the rebuild call, which looks the bytes up by key.
        let persistentLoad: (PickleValue) throws -> PickleValue = { pid in
            guard let t = pid.items, t.count >= 5, t[0].string == "storage", case .global(_, let type) = t[1],
                  let key = t[2].string, let numel = t[4].int, numel >= 0 else {
                throw TorchError("\(name): unexpected persistent id \(pid) in \(pkl.path)")
            }
            guard let dtype = storageTypes[type] else { throw TorchError("\(name): unsupported storage type \(type)") }
            if let known = storages[key] {
                guard known.dtype == dtype else { throw TorchError("\(name): storage \(key) is used as both \(known.dtype) and \(dtype)") }
                return .persistent(pid)
            }
            guard let entry = archive[prefix + "data/" + key] else {
                throw TorchError("\(name): storage record \(prefix)data/\(key) is missing from the archive")
            }
            var bytes = try read(entry, from: archive, file: name)
            let (needed, overflow) = Int(numel).multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, bytes.count >= needed else {
                throw TorchError("\(name): storage \(entry.path) is truncated: \(bytes.count) bytes for \(numel) elements of \(dtype)")
            }
            if bigEndian && dtype.byteSize > 1 { swapBytes(&bytes, elementSize: dtype.byteSize) }
            storages[key] = (bytes, dtype)
            return .persistent(pid)
        }

        func rebuild(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue? {
            guard case .global(let module, let fn) = callable else { return nil }
            switch (module, fn) {
            case ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"):
                // (storage, storage_offset, size, stride[, requires_grad, backward_hooks[, metadata]])
                guard args.count >= 4, case .persistent(let pid) = args[0], let key = pid.items?[2].string, let storage = storages[key],
                      let offset = args[1].int, let size = args[2].items?.map(\.int), let stride = args[3].items?.map(\.int),
                      !size.contains(nil), !stride.contains(nil) else {
                    throw TorchError("\(name): malformed tensor record \(fn)(\(args.prefix(4).map(\.description).joined(separator: ", ")))")
                }
                return .tensor(try strided(storage.bytes, dtype: storage.dtype, offset: Int(offset), size: size.map { Int($0!) },
                                           stride: stride.map { Int($0!) }, file: name))
            case ("torch._utils", "_rebuild_parameter"), ("torch._utils", "_rebuild_parameter_with_state"):
                // (data, requires_grad, backward_hooks[, state]): the parameter's data.
                guard let first = args.first, case .tensor = first else { return nil }
                return first
            case ("torch._tensor", "_rebuild_from_type_v2"), ("torch._tensor", "_rebuild_from_type"):
                // (func, new_type, args, state): a tensor subclass; its plain tensor is enough.
                guard args.count >= 3, let inner = args[2].items else { return nil }
                return try rebuild(args[0], inner)
            default:
                return nil
            }
        }

        var reader = PickleReader(pickle, persistentLoad: persistentLoad, reduce: rebuild)
        do { return try reader.load() } catch let e as PickleReader.Failure {
            throw TorchError("\(name): \(pkl.path): \(e.description)")
        }
    }

    /// The state dict inside a checkpoint: the top-level dict when it holds only tensors (entries
    /// such as an OrderedDict's `_metadata` aside), a whole pickled `nn.Module`'s parameters and
    /// persistent buffers, or else the first of `wrapperKeys` that holds either, looked for at the
    /// top level and one level further down. A `module.` prefix on every key (DataParallel /
    /// DistributedDataParallel) is removed.
    public static func stateDict(from url: URL) throws -> StateDict {
        let root = try load(url)
        if let found = stateDict(in: root) { return found }
        var keys = ""
        if let pairs = root.pairs {
            keys = "; its top-level keys are " + pairs.prefix(20).map(\.0.description).joined(separator: ", ")
        }
        throw TorchError("\(url.path): no state dict found (looked at the top level and under \(wrapperKeys.joined(separator: ", ")))\(keys)")
    }

    /// The state dict in an already loaded checkpoint (see `stateDict(from:)`), or nil.
    public static func stateDict(in root: PickleValue) -> StateDict? {
        guard let found = direct(root) ?? nested(root, depth: 2) else { return nil }
        if found.keys.allSatisfy({ $0.hasPrefix("module.") }) { return found.strippingPrefix("module.") }
        return found
    }

    static func direct(_ value: PickleValue) -> StateDict? { tensorDict(value) ?? moduleState(value) }

    static func nested(_ value: PickleValue, depth: Int) -> StateDict? {
        guard depth > 0, value.pairs != nil else { return nil }
        for key in wrapperKeys {
            guard let inner = value[key] else { continue }
            if let d = direct(inner) ?? nested(inner, depth: depth - 1) { return d }
        }
        return nil
    }

    /// A dict whose values are all tensors (entries PyTorch adds beside them are allowed).
    static func tensorDict(_ value: PickleValue) -> StateDict? {
        guard let pairs = value.pairs else { return nil }
        var out = StateDict()
        for (k, v) in pairs {
            guard let key = k.string else { return nil }
            if case .tensor(let t) = v { out.set(key, t); continue }
            let ignorable = key == "_metadata" || key.hasSuffix("_extra_state")
            if case .none = v { continue }
            if !ignorable { return nil }
        }
        return out.isEmpty ? nil : out
    }

    /// The state dict of a whole pickled `nn.Module` (`torch.save(model)`): each module's
    /// `_parameters`, then its persistent `_buffers`, then its `_modules`, as `state_dict()` orders them.
    static func moduleState(_ value: PickleValue) -> StateDict? {
        var out = StateDict()
        func walk(_ module: PickleValue, _ prefix: String, depth: Int) -> Bool {
            guard depth < 200, case .call(_, _, let state?) = module, state["_parameters"] != nil, state["_modules"] != nil else { return false }
            for (k, v) in state["_parameters"]?.pairs ?? [] {
                if let n = k.string, case .tensor(let t) = v { out.set(prefix + n, t) }
            }
            var transient = Set<String>()
            if case .set(let names)? = state["_non_persistent_buffers_set"] { transient = Set(names.compactMap(\.string)) }
            for (k, v) in state["_buffers"]?.pairs ?? [] {
                if let n = k.string, !transient.contains(n), case .tensor(let t) = v { out.set(prefix + n, t) }
            }
            for (k, child) in state["_modules"]?.pairs ?? [] {
                guard let n = k.string else { continue }
                if case .none = child { continue }
                _ = walk(child, prefix + n + ".", depth: depth + 1)
            }
            return true
        }
        guard walk(value, "", depth: 0), !out.isEmpty else { return nil }
        return out
    }

    // MARK: Archive access

    static func open(_ url: URL) throws -> Archive {
        let name = url.path
        if let problem = RegularFile.problem(url) { throw TorchError("\(name): \(problem)") }
        guard let handle = FileHandle(forReadingAtPath: name) else { throw TorchError("\(name): cannot be opened for reading") }
        let head = (try? handle.read(upToCount: 4)) ?? Data()
        try? handle.close()
        if head.first == 0x80 {
            throw TorchError("\(name): legacy .pth format (torch < 1.6, not a zip archive) is not supported; re-save it with torch>=1.6: "
                             + "torch.save(torch.load(path), path)")
        }
        guard head.starts(with: [0x50, 0x4b]) else {
            throw TorchError("\(name): not a PyTorch checkpoint (not a zip archive)")
        }
        do { return try Archive(url: url, accessMode: .read) } catch {
            throw TorchError("\(name): damaged or truncated zip archive (\(error))")
        }
    }

    /// An entry's bytes, with its CRC checked.
    static func read(_ entry: Entry, from archive: Archive, file: String) throws -> Data {
        // The zip directory's sizes are only claims: stored entries hold at most their compressed
        // bytes, deflated ones at most ~1032 times them.
        let (limit, overflow) = max(entry.compressedSize, 1).multipliedReportingOverflow(by: entry.isCompressed ? 1032 : 1)
        guard overflow || entry.uncompressedSize <= limit else {
            throw TorchError("\(file): \(entry.path) claims \(entry.uncompressedSize) bytes from \(entry.compressedSize) stored: a corrupt or hostile archive")
        }
        var out = Data()
        out.reserveCapacity(Int(entry.uncompressedSize))
        let crc: CRC32
        do { crc = try archive.extract(entry, bufferSize: 1 << 20) { out.append($0) } } catch {
            throw TorchError("\(file): cannot read \(entry.path) from the archive (\(error))")
        }
        guard crc == entry.checksum, UInt64(out.count) == entry.uncompressedSize else {
            throw TorchError("\(file): \(entry.path) is damaged (checksum or size does not match the zip directory)")
        }
        return out
    }

    static func swapBytes(_ data: inout Data, elementSize: Int) {
        data.withUnsafeMutableBytes { raw in
            let p = raw.bindMemory(to: UInt8.self)
            var i = 0
            while i + elementSize <= p.count {
                var a = i, b = i + elementSize - 1
                while a < b { p.swapAt(a, b); a += 1; b -= 1 }
                i += elementSize
            }
        }
    }

    // MARK: Views

    /// A contiguous tensor holding the view (offset, size, stride, in elements) of a storage:
    /// what `as_strided` would give, so transposed or sliced tensors come back as they were saved.
    static func strided(_ storage: Data, dtype: DType, offset: Int, size: [Int], stride strides: [Int], file: String) throws -> Tensor {
        let element = dtype.byteSize
        let describe = "offset \(offset), size \(size), stride \(strides)"
        guard size.count == strides.count, offset >= 0, size.allSatisfy({ $0 >= 0 }), strides.allSatisfy({ $0 >= 0 }) else {
            throw TorchError("\(file): malformed tensor view (\(describe))")
        }
        var count = 1
        for s in size {
            let (c, o) = count.multipliedReportingOverflow(by: s)
            guard !o else { throw TorchError("\(file): tensor view (\(describe)) is too large") }
            count = c
        }
        if count == 0 { return try Tensor.zeros(size, dtype: dtype) }
        // A view may repeat elements (stride 0), but its copy must stay in proportion to the file.
        let storageElements = storage.count / max(element, 1)
        guard count <= storageElements || count <= (1 << 28) / max(element, 1) else {
            throw TorchError("\(file): tensor view (\(describe)) would expand \(storageElements) stored elements to \(count): a corrupt or hostile file")
        }
        // The farthest element the view touches must lie inside the storage.
        var last = offset
        for (s, st) in zip(size, strides) {
            let (span, o1) = (s - 1).multipliedReportingOverflow(by: st)
            let (sum, o2) = last.addingReportingOverflow(span)
            guard !o1, !o2 else { throw TorchError("\(file): tensor view (\(describe)) is too large") }
            last = sum
        }
        guard last < storage.count / element else {
            throw TorchError("\(file): tensor view (\(describe)) reaches beyond its storage of \(storage.count / element) elements")
        }
        var contiguous = [Int](repeating: 1, count: size.count)
        for i in stride(from: size.count - 2, through: 0, by: -1) { contiguous[i] = contiguous[i + 1] * size[i + 1] }
        // Strides of length-1 dimensions never matter.
        let isContiguous = zip(zip(size, strides), contiguous).allSatisfy { $0.0.0 == 1 || $0.0.1 == $0.1 }
        if isContiguous {
            return try storage.withUnsafeBytes { raw in
                try Tensor(bytes: UnsafeRawBufferPointer(rebasing: raw[(offset * element)..<((offset + count) * element)]), shape: size, dtype: dtype)
            }
        }
        // Gather the view in row-major order, copying runs along the last dimension when its
        // elements are adjacent (slices), element by element otherwise (transposes, expands).
        let rank = size.count
        let inner = size[rank - 1], innerStride = strides[rank - 1]
        let outer = count / inner
        var out = Data(count: count * element)
        storage.withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                let s = src.baseAddress!, d = dst.baseAddress!
                var index = [Int](repeating: 0, count: rank)
                var base = offset
                for row in 0..<outer {
                    let target = d + row * inner * element
                    if innerStride == 1 {
                        target.copyMemory(from: s + base * element, byteCount: inner * element)
                    } else {
                        for j in 0..<inner {
                            (target + j * element).copyMemory(from: s + (base + j * innerStride) * element, byteCount: element)
                        }
                    }
                    // Advance the outer index (all dimensions but the last).
                    var k = rank - 2
                    while k >= 0 {
                        index[k] += 1
                        base += strides[k]
                        if index[k] < size[k] { break }
                        base -= strides[k] * size[k]
                        index[k] = 0
                        k -= 1
                    }
                }
            }
        }
        return try out.withUnsafeBytes { try Tensor(bytes: $0, shape: size, dtype: dtype) }
    }
}
