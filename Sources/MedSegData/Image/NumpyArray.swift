import Foundation

/// A numpy `.npy` array of floats (format versions 1 to 3; little-endian float16, float32 or
/// float64; C order), as numpy's `save` and `savez` write it. The header is checked before
/// anything is allocated: every shape element a whole number, counts in checked arithmetic, the
/// data exactly as long as the shape needs.
public struct NumpyArray {
    public let shape: [Int]
    public let values: [Float]

    /// What an `.npy` header says: the element width in bytes, the shape, and where the data starts.
    public struct Header: Equatable, Sendable {
        public let width: Int
        public let shape: [Int]
        public let dataOffset: Int
        /// The whole file's length: header and data.
        public let fileLength: Int
    }

    /// The header at the start of `bytes` (which may hold only the start of the file), or nil when
    /// `bytes` is too short to hold all of it yet.
    public static func header(_ bytes: Data) throws -> Header? {
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard bytes.prefix(6).elementsEqual(magic.prefix(bytes.count)) else { throw DataError("not a numpy .npy array") }
        guard bytes.count >= 10 else { return nil }
        let b = [UInt8](bytes.prefix(12))
        let version = b[6]
        guard [1, 2, 3].contains(version) else { throw DataError("an .npy file of format version \(version); numpy writes 1 to 3") }
        if version != 1 && b.count < 12 { return nil }
        let (headerLength, start) = version == 1 ? (Int(b[8]) | Int(b[9]) << 8, 10)
                                                 : (Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24, 12)
        // numpy's headers are a few hundred bytes; a longer one is no header numpy wrote.
        guard headerLength <= 1 << 20 else { throw DataError("an .npy header of \(headerLength) bytes; numpy writes a short one") }
        guard bytes.count >= start + headerLength else { return nil }
        let text = String(decoding: bytes.dropFirst(start).prefix(headerLength), as: UTF8.self)
        func value(_ key: String) -> Substring? {
            guard let range = text.range(of: "'\(key)':") else { return nil }
            return text[range.upperBound...].drop { $0 == " " }
        }
        guard let descr = value("descr").flatMap({ $0.split(separator: "'").first }),
              let order = value("fortran_order"), let shapeText = value("shape"),
              let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")"), open < close else {
            throw DataError("an .npy header numpy would not write: \(text.prefix(200))")
        }
        guard order.hasPrefix("False") else { throw DataError("a Fortran-order array; MedSeg reads C order") }
        let width: Int
        switch descr {
        case "<f2": width = 2
        case "<f4": width = 4
        case "<f8": width = 8
        default: throw DataError("an array of type '\(descr.prefix(20))'; MedSeg reads little-endian float16, float32 and float64")
        }
        var items = shapeText[shapeText.index(after: open)..<close].split(separator: ",", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }
        if items.last == "" && items.count > 1 { items.removeLast() }   // "(3,)"
        if items == [""] { items = [] }                                  // "()": a 0-d array
        var shape: [Int] = [], count = 1, overflow = false
        for item in items {
            guard let n = Int(item), n >= 0 else {
                throw DataError("an .npy shape (\(shapeText[shapeText.index(after: open)..<close].prefix(100))) whose element '\(item.prefix(30))' is not a count")
            }
            shape.append(n)
            if !overflow { (count, overflow) = count.multipliedReportingOverflow(by: n) }
        }
        let (bytesNeeded, tooMany) = count.multipliedReportingOverflow(by: width)
        guard !overflow, !tooMany, bytesNeeded <= Int.max - start - headerLength else {
            throw DataError("an .npy shape \(shape) of \(descr) whose size overflows 64 bits")
        }
        return Header(width: width, shape: shape, dataOffset: start + headerLength, fileLength: start + headerLength + bytesNeeded)
    }

    public init(_ data: Data) throws {
        guard let header = try Self.header(data) else { throw DataError("an .npy file cut short in its header (\(data.count) bytes)") }
        guard data.count == header.fileLength else {
            throw DataError("\(data.count - header.dataOffset) bytes of data for shape \(header.shape), which needs \(header.fileLength - header.dataOffset)")
        }
        shape = header.shape
        let count = (header.fileLength - header.dataOffset) / header.width, body = header.dataOffset
        values = data.withUnsafeBytes { raw -> [Float] in
            let p = raw.baseAddress!.advanced(by: body)
            switch header.width {
            case 2: return (0..<count).map { Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian)) }
            case 4: return (0..<count).map { Float(bitPattern: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) }
            default: return (0..<count).map { Float(Double(bitPattern: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian)) }
            }
        }
    }
}
