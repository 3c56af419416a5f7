import Foundation

/// Writes a safetensors file piece by piece, so that a tensor larger than memory (a whole
/// volume's class probabilities) can be written slab by slab: the header is laid down first from
/// the declared names, dtypes and shapes, then any byte range of any tensor is written in any
/// order. The file appears atomically on `commit()`: until then it is a temporary file in the same
/// folder (removed if the writer is dropped uncommitted), so readers never see a partial file.
public final class SafetensorsWriter {
    public let url: URL
    /// Byte offset in the file of each tensor's first byte.
    private let starts: [Int]
    private let sizes: [Int]
    private let temporary: URL
    private var fd: Int32
    private var committed = false

    public init(_ url: URL, tensors: [(name: String, dtype: DType, shape: [Int])], metadata: [String: String] = [:]) throws {
        self.url = url
        let name = url.path
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0, offsets: [Int] = [], sizes: [Int] = []
        for (key, dtype, shape) in tensors {
            guard key != "__metadata__" else { throw TorchError("\(name): a tensor cannot be named __metadata__") }
            var count = dtype.byteSize, overflow = false
            for n in shape where !overflow { (count, overflow) = count.multipliedReportingOverflow(by: max(n, 0)) }
            guard !overflow, shape.allSatisfy({ $0 >= 0 }) else { throw TorchError("\(name): tensor '\(key)' has an impossible shape \(shape)") }
            header[key] = ["dtype": Safetensors.code(dtype), "shape": shape, "data_offsets": [offset, offset + count]] as [String: Any]
            offsets.append(offset)
            sizes.append(count)
            offset += count
        }
        var json: Data
        do { json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]) } catch {
            throw TorchError("\(name): cannot encode the header (\(error))")
        }
        json.append(contentsOf: [UInt8](repeating: 0x20, count: (8 - json.count % 8) % 8))
        var prefix = Data(count: 8)
        prefix.withUnsafeMutableBytes { $0.storeBytes(of: UInt64(json.count).littleEndian, as: UInt64.self) }
        let dataStart = 8 + json.count
        starts = offsets.map { $0 + dataStart }
        self.sizes = sizes

        let folder = url.deletingLastPathComponent()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw TorchError("\(name): the folder \(folder.path) does not exist")
        }
        temporary = folder.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        fd = Foundation.open(temporary.path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
        guard fd >= 0 else { throw TorchError("\(name): cannot create a temporary file in \(folder.path) (\(String(cString: strerror(errno))))") }
        try write(prefix + json, atFileOffset: 0)
        // The full size up front: ranges never written read back as zeros (a sparse file).
        guard ftruncate(fd, off_t(dataStart + offset)) == 0 else {
            throw TorchError("\(name): cannot size the file to \(dataStart + offset) bytes (\(String(cString: strerror(errno))))")
        }
    }

    deinit {
        if fd >= 0 { close(fd) }
        if !committed { unlink(temporary.path) }
    }

    /// Writes `bytes` into tensor `index` starting `offset` bytes into its data.
    public func write(_ bytes: Data, tensor index: Int, offset: Int = 0) throws {
        guard index >= 0, index < starts.count, offset >= 0, offset <= sizes[index] - bytes.count else {
            throw TorchError("\(url.path): \(bytes.count) bytes at \(offset) do not fit tensor \(index)")
        }
        try write(bytes, atFileOffset: starts[index] + offset)
    }

    private func write(_ bytes: Data, atFileOffset offset: Int) throws {
        guard fd >= 0 else { throw TorchError("\(url.path): written after commit") }
        try bytes.withUnsafeBytes { raw in
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, raw.baseAddress! + done, raw.count - done, off_t(offset + done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw TorchError("\(url.path): write failed (\(String(cString: strerror(errno))))") }
                done += n
            }
        }
    }

    /// Syncs the file and moves it into place over `url`.
    public func commit() throws {
        let name = url.path
        guard fd >= 0 else { throw TorchError("\(name): committed twice") }
        guard fsync(fd) == 0 else { throw TorchError("\(name): fsync failed (\(String(cString: strerror(errno))))") }
        let closing = fd
        fd = -1
        guard close(closing) == 0 else { throw TorchError("\(name): close failed (\(String(cString: strerror(errno))))") }
        guard rename(temporary.path, name) == 0 else {
            throw TorchError("\(name): cannot move the new file into place (\(String(cString: strerror(errno))))")
        }
        committed = true
        let dirfd = Foundation.open(url.deletingLastPathComponent().path, O_RDONLY)
        if dirfd >= 0 { fsync(dirfd); close(dirfd) }
    }
}
