import Foundation

/// A numpy `.npy` array of floats (format versions 1 to 3; little-endian float16, float32 or
/// float64; C order), as numpy's `save` and `savez` write it.
public struct NumpyArray {
    public let shape: [Int]
    public let values: [Float]

    public init(_ data: Data) throws {
        let bytes = [UInt8](data)
        guard bytes.count >= 10, bytes[0] == 0x93, Array(bytes[1...5]) == Array("NUMPY".utf8) else { throw DataError("not a numpy .npy array") }
        let version = bytes[6]
        let (headerLength, start): (Int, Int) = version == 1
            ? (Int(bytes[8]) | Int(bytes[9]) << 8, 10)
            : (bytes.count >= 12 ? (Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24, 12) : (0, 12))
        guard [1, 2, 3].contains(version), start + headerLength <= bytes.count else { throw DataError("an .npy header of version \(version) that is cut short") }
        let header = String(decoding: bytes[start..<(start + headerLength)], as: UTF8.self)
        func value(_ key: String) -> String? {
            guard let range = header.range(of: "'\(key)':") else { return nil }
            return String(header[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        guard let descr = value("descr").flatMap({ $0.split(separator: "'").first }).map(String.init),
              let order = value("fortran_order"), let shapeText = value("shape"),
              let open = shapeText.firstIndex(of: "("), let close = shapeText.firstIndex(of: ")") else {
            throw DataError("an .npy header numpy would not write: \(header)")
        }
        guard order.hasPrefix("False") else { throw DataError("a Fortran-order array; MedSeg reads C order") }
        shape = shapeText[shapeText.index(after: open)..<close].split(separator: ",")
            .compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let count = shape.reduce(1, *)
        let body = start + headerLength
        let width: Int
        switch descr {
        case "<f2": width = 2
        case "<f4": width = 4
        case "<f8": width = 8
        default: throw DataError("an array of type '\(descr)'; MedSeg reads little-endian float16, float32 and float64")
        }
        guard bytes.count - body == count * width else {
            throw DataError("\(bytes.count - body) bytes of data for shape \(shape) of \(descr), which needs \(count * width)")
        }
        values = bytes.withUnsafeBytes { raw -> [Float] in
            let p = raw.baseAddress!.advanced(by: body)
            switch width {
            case 2: return (0..<count).map { Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: 2 * $0, as: UInt16.self).littleEndian)) }
            case 4: return (0..<count).map { Float(bitPattern: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self).littleEndian) }
            default: return (0..<count).map { Float(Double(bitPattern: p.loadUnaligned(fromByteOffset: 8 * $0, as: UInt64.self).littleEndian)) }
            }
        }
    }
}
