import CImageCodecs
import Foundation
import Torch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a reader returns for a palette image (PNG or TIFF palette, BMP with a colour table).
public enum PaletteMode: Sendable {
    /// The colours, as RGB (3 channels) — or gray when the palette is gray.
    case rgb
    /// The raw palette indices (1 channel, uint8): label masks saved with a palette.
    case indices
}

/// Reads and writes every image format MedSeg knows, chosen by file ending (case-insensitive).
/// Writers replace the target atomically: they write a temporary file next to it and rename it.
public enum ImageIO {
    /// File endings `read` accepts.
    public static let readableEndings = [".nii.gz", ".nii", ".hdr", ".nrrd", ".nhdr", ".png", ".jpg", ".jpeg",
                                         ".tif", ".tiff", ".bmp"]
    /// File endings `write` accepts.
    public static let writableEndings = [".nii.gz", ".nii", ".nrrd", ".png", ".tif", ".tiff", ".bmp"]

    /// The lower-cased ending that selects the format: ".nii.gz" for "CASE_0000.nii.gz", ".png" for
    /// "a.PNG", "" when the name has no extension.
    public static func fileEnding(of url: URL) -> String {
        let name = url.lastPathComponent.lowercased()
        for compound in [".nii.gz", ".hdr.gz", ".img.gz"] where name.hasSuffix(compound) && name.count > compound.count {
            return compound
        }
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return "" }
        return String(name[dot...])
    }

    /// The file name without its format ending ("CASE_0000" for "CASE_0000.nii.gz").
    public static func stem(of url: URL) -> String {
        let name = url.lastPathComponent
        return String(name.dropLast(fileEnding(of: url).count))
    }

    /// Reads an image; palette images come back as RGB.
    public static func read(_ url: URL) throws -> MedicalImage {
        try read(url, palette: .rgb)
    }

    /// Reads an image; `palette: .indices` returns the raw indices of palette PNG/TIFF/BMP files
    /// (label masks); other files are read the same either way.
    public static func read(_ url: URL, palette: PaletteMode) throws -> MedicalImage {
        // A folder is a DICOM series (its only one; DICOM.read(folder:series:) picks among several).
        var isFolder: ObjCBool = false
        if FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue {
            return try DICOM.read(folder: url)
        }
        // A pipe or device would hang or never end a reader; a missing file is said the same for every format.
        if readableEndings.contains(fileEnding(of: url)), let problem = RegularFile.problem(url) { throw DataError(file: url, problem) }
        switch fileEnding(of: url) {
        case ".nii.gz", ".nii", ".hdr", ".hdr.gz": return try NIfTI.read(url)
        case ".nrrd", ".nhdr": return try NRRD.read(url)
        case ".png": return try PlanarImages.readPNG(url, palette: palette)
        case ".jpg", ".jpeg": return try PlanarImages.readJPEG(url)
        case ".tif", ".tiff": return try PlanarImages.readTIFF(url, palette: palette)
        case ".bmp": return try PlanarImages.readBMP(url, palette: palette)
        case let ending:
            throw DataError(file: url, "cannot read files ending \"\(ending)\" (readable: \(readableEndings.joined(separator: " ")), and folders of DICOM series)")
        }
    }

    /// Geometry that is not a set of finite numbers with positive spacing is refused (naming
    /// `file`: the source, or the target), so that a broken header read in is never written out
    /// as if it were real.
    public static func checkWritableGeometry(_ image: MedicalImage, file: URL) throws {
        let g = image.geometry
        if let bad = g.spacing.first(where: { !($0.isFinite && $0 > 0) }) {
            throw DataError(file: file, "its spacing \(g.spacing) holds \(bad) (spacing must be positive): fix the header before writing it out")
        }
        if (g.origin + g.direction + (g.niftiAffine ?? [])).contains(where: { !$0.isFinite }) {
            throw DataError(file: file, "its origin or direction holds NaN or infinity (origin \(g.origin)): fix the header before writing it out")
        }
    }

    /// Writes an image in the format its file ending names, replacing any file there atomically.
    public static func write(_ image: MedicalImage, to url: URL) throws {
        try checkWritableGeometry(image, file: url)
        switch fileEnding(of: url) {
        case ".nii.gz", ".nii": try NIfTI.write(image, to: url)
        case ".nrrd": try NRRD.write(image, to: url)
        case ".png": try PlanarImages.writePNG(image, to: url)
        case ".tif", ".tiff": try PlanarImages.writeTIFF(image, to: url)
        case ".bmp": try PlanarImages.writeBMP(image, to: url)
        case let ending:
            throw DataError(file: url, "cannot write files ending \"\(ending)\" (writable: \(writableEndings.joined(separator: " ")))")
        }
    }
}

// MARK: - Shared helpers for the readers and writers

/// A stored sample type.
enum SampleType: Sendable {
    case uint8, int8, uint16, int16, uint32, int32, uint64, int64, float32, float64

    var byteCount: Int {
        switch self {
        case .uint8, .int8: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        }
    }

    init(_ pixelType: PixelType) {
        switch pixelType {
        case .uint8, .rgb8, .rgba8: self = .uint8
        case .int8: self = .int8
        case .uint16: self = .uint16
        case .int16: self = .int16
        case .uint32: self = .uint32
        case .int32: self = .int32
        case .float32: self = .float32
        case .float64: self = .float64
        }
    }

    /// The pixel type an image read from this sample type reports (64-bit integers have none of
    /// their own: they become 32-bit).
    var pixelType: PixelType {
        switch self {
        case .uint8: return .uint8
        case .int8: return .int8
        case .uint16: return .uint16
        case .int16: return .int16
        case .uint32, .uint64: return .uint32
        case .int32, .int64: return .int32
        case .float32: return .float32
        case .float64: return .float64
        }
    }

    var isInteger: Bool { self != .float32 && self != .float64 }
}

@inline(__always)
private func decodeIntegers<T: FixedWidthInteger>(_ base: UnsafeRawPointer, _ count: Int, _: T.Type, swap: Bool,
                                                  into out: UnsafeMutableBufferPointer<Float>) {
    let stride = MemoryLayout<T>.size
    if swap {
        for i in 0..<count { out[i] = Float(base.loadUnaligned(fromByteOffset: i * stride, as: T.self).byteSwapped) }
    } else {
        for i in 0..<count { out[i] = Float(base.loadUnaligned(fromByteOffset: i * stride, as: T.self)) }
    }
}

/// Decodes `count` samples stored from `offset` of `bytes` into Floats (caller checks the length).
func decodeSamples(_ bytes: UnsafeRawBufferPointer, offset: Int = 0, count: Int, type: SampleType,
                   bigEndian: Bool = false) -> [Float] {
    precondition(offset + count * type.byteCount <= bytes.count)
    if count == 0 { return [] }
    let swap = bigEndian != (1.bigEndian == 1)
    let base = bytes.baseAddress! + offset
    return [Float](unsafeUninitializedCapacity: count) { out, initialized in
        switch type {
        case .uint8: decodeIntegers(base, count, UInt8.self, swap: false, into: out)
        case .int8: decodeIntegers(base, count, Int8.self, swap: false, into: out)
        case .uint16: decodeIntegers(base, count, UInt16.self, swap: swap, into: out)
        case .int16: decodeIntegers(base, count, Int16.self, swap: swap, into: out)
        case .uint32: decodeIntegers(base, count, UInt32.self, swap: swap, into: out)
        case .int32: decodeIntegers(base, count, Int32.self, swap: swap, into: out)
        case .uint64: decodeIntegers(base, count, UInt64.self, swap: swap, into: out)
        case .int64: decodeIntegers(base, count, Int64.self, swap: swap, into: out)
        case .float32:
            for i in 0..<count {
                let bits = base.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)
                out[i] = Float(bitPattern: swap ? bits.byteSwapped : bits)
            }
        case .float64:
            for i in 0..<count {
                let bits = base.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self)
                out[i] = Float(Double(bitPattern: swap ? bits.byteSwapped : bits))
            }
        }
        initialized = count
    }
}

/// Rounds to the nearest integer and clamps into T's range (NaN becomes 0).
@inline(__always)
func clampedInteger<T: FixedWidthInteger>(_ value: Float, _: T.Type) -> T {
    let d = Double(value).rounded()
    if !(d == d) { return 0 }
    if d >= Double(T.max) { return T.max }
    if d <= Double(T.min) { return T.min }
    return T(d)
}

@inline(__always)
private func encodeIntegers<T: FixedWidthInteger>(_ values: UnsafeBufferPointer<Float>, _: T.Type, swap: Bool,
                                                  into out: UnsafeMutableRawPointer) {
    let stride = MemoryLayout<T>.size
    for i in 0..<values.count {
        let v = clampedInteger(values[i], T.self)
        out.storeBytes(of: swap ? v.byteSwapped : v, toByteOffset: i * stride, as: T.self)
    }
}

/// Encodes Floats as stored samples: integers are rounded and clamped to the type's range.
func encodeSamples(_ values: [Float], type: SampleType, bigEndian: Bool = false) -> [UInt8] {
    let swap = bigEndian != (1.bigEndian == 1)
    let byteCount = values.count * type.byteCount
    return [UInt8](unsafeUninitializedCapacity: byteCount) { raw, initialized in
        let out = UnsafeMutableRawPointer(raw.baseAddress!)
        values.withUnsafeBufferPointer { v in
            switch type {
            case .uint8: encodeIntegers(v, UInt8.self, swap: false, into: out)
            case .int8: encodeIntegers(v, Int8.self, swap: false, into: out)
            case .uint16: encodeIntegers(v, UInt16.self, swap: swap, into: out)
            case .int16: encodeIntegers(v, Int16.self, swap: swap, into: out)
            case .uint32: encodeIntegers(v, UInt32.self, swap: swap, into: out)
            case .int32: encodeIntegers(v, Int32.self, swap: swap, into: out)
            case .uint64: encodeIntegers(v, UInt64.self, swap: swap, into: out)
            case .int64: encodeIntegers(v, Int64.self, swap: swap, into: out)
            case .float32:
                for i in 0..<v.count {
                    let bits = v[i].bitPattern
                    out.storeBytes(of: swap ? bits.byteSwapped : bits, toByteOffset: 4 * i, as: UInt32.self)
                }
            case .float64:
                for i in 0..<v.count {
                    let bits = Double(v[i]).bitPattern
                    out.storeBytes(of: swap ? bits.byteSwapped : bits, toByteOffset: 8 * i, as: UInt64.self)
                }
            }
        }
        initialized = byteCount
    }
}

/// Interleaved samples (pixel-major: p0c0 p0c1 ...) to MedicalImage's channel-major layout.
func planarFromInterleaved(_ values: [Float], channels: Int) -> [Float] {
    guard channels > 1 else { return values }
    let n = values.count / channels
    return [Float](unsafeUninitializedCapacity: values.count) { out, initialized in
        values.withUnsafeBufferPointer { v in
            for p in 0..<n {
                for c in 0..<channels { out[c * n + p] = v[p * channels + c] }
            }
        }
        initialized = values.count
    }
}

/// Channel-major voxels to interleaved samples.
func interleavedFromPlanar(_ values: [Float], channels: Int) -> [Float] {
    guard channels > 1 else { return values }
    let n = values.count / channels
    return [Float](unsafeUninitializedCapacity: values.count) { out, initialized in
        values.withUnsafeBufferPointer { v in
            for p in 0..<n {
                for c in 0..<channels { out[p * channels + c] = v[c * n + p] }
            }
        }
        initialized = values.count
    }
}

/// The C codecs' last message.
func codecError() -> String {
    String(cString: mc_last_error())
}

/// A file's bytes, inflated when gzip-compressed (plain files are returned as they are). With
/// `limit`, content beyond that many bytes is an error (a header's promise caps what inflates);
/// with `prefix`, only the first `limit` bytes are read.
func readFileInflating(_ url: URL, limit: Int? = nil, prefix: Bool = false) throws -> Data {
    if let problem = RegularFile.problem(url) { throw DataError(file: url, problem) }
    var pointer: UnsafeMutablePointer<UInt8>?
    var length = 0
    guard mc_gz_read_file(url.path, limit.map { max($0, 1) } ?? 0, prefix ? 1 : 0, &pointer, &length) == 0 else {
        throw DataError(file: url, codecError())
    }
    guard let pointer, length > 0 else {
        mc_free(pointer)
        return Data()
    }
    return Data(bytesNoCopy: pointer, count: length, deallocator: .custom { p, _ in mc_free(p) })
}

/// A file's bytes as stored.
func readFileRaw(_ url: URL) throws -> Data {
    if let problem = RegularFile.problem(url) { throw DataError(file: url, problem) }
    do {
        return try Data(contentsOf: url, options: .mappedIfSafe)
    } catch {
        throw DataError(file: url, "cannot read: \(error.localizedDescription)")
    }
}

/// Inflates gzip (or zlib) bytes; more than `limit` bytes of output (when given) is an error.
func inflateBytes(_ bytes: Data, limit: Int? = nil, file: URL) throws -> Data {
    var pointer: UnsafeMutablePointer<UInt8>?
    var length = 0
    let rc = bytes.withUnsafeBytes { raw in
        mc_inflate(raw.baseAddress, raw.count, limit.map { max($0, 1) } ?? 0, &pointer, &length)
    }
    guard rc == 0 else { throw DataError(file: file, codecError()) }
    guard let pointer, length > 0 else {
        mc_free(pointer)
        return Data()
    }
    return Data(bytesNoCopy: pointer, count: length, deallocator: .custom { p, _ in mc_free(p) })
}

/// Gzip-compresses bytes (level 1: fast, as nibabel does by default).
func gzipBytes(_ bytes: [UInt8], level: Int32 = 1, file: URL) throws -> Data {
    var pointer: UnsafeMutablePointer<UInt8>?
    var length = 0
    let rc = bytes.withUnsafeBytes { raw in
        mc_gzip_compress(raw.baseAddress, raw.count, level, &pointer, &length)
    }
    guard rc == 0, let pointer else { throw DataError(file: file, codecError()) }
    return Data(bytesNoCopy: pointer, count: length, deallocator: .custom { p, _ in mc_free(p) })
}

/// Runs `body` with a temporary path in the target's directory and renames the result onto the
/// target; on any failure the temporary file is removed and the target is left as it was.
func writeAtomically(to url: URL, _ body: (String) throws -> Void) throws {
    let directory = url.deletingLastPathComponent()
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw DataError(file: url, "cannot write: directory \(directory.path) does not exist")
    }
    let temporary = directory.appendingPathComponent(
        ".\(url.lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp").path
    do {
        try body(temporary)
    } catch let error as DataError {
        unlink(temporary)
        throw error.about(url)
    } catch {
        unlink(temporary)
        throw DataError(file: url, "cannot write: \(error.localizedDescription)")
    }
    // Data on disk before the name: a system crash leaves the old file or the new one, not a stub.
    let descriptor = open(temporary, O_RDONLY)
    if descriptor >= 0 {
        _ = fsync(descriptor)
        close(descriptor)
    }
    guard rename(temporary, url.path) == 0 else {
        let reason = String(cString: strerror(errno))
        unlink(temporary)
        throw DataError(file: url, "cannot write: \(reason)")
    }
}

/// Writes bytes to the target atomically.
func writeDataAtomically(_ chunks: [Data], to url: URL) throws {
    try writeAtomically(to: url) { temporary in
        guard let handle = fopen(temporary, "wb") else {
            throw DataError(file: url, "cannot create: \(String(cString: strerror(errno)))")
        }
        var failed = false
        for chunk in chunks where !failed && !chunk.isEmpty {
            let wrote = chunk.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, handle) }
            failed = wrote != chunk.count
        }
        let reason = String(cString: strerror(errno))
        if fclose(handle) != 0 || failed {
            throw DataError(file: url, "write error: \(failed ? reason : String(cString: strerror(errno)))")
        }
    }
}

/// Swift's shortest round-trip text for a Double ("0.5", "-12", "1e-07").
func formatNumber(_ value: Double) -> String {
    if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return "\(value)"
}
