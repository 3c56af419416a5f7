import Foundation

/// Writes TensorBoard event files (`events.out.tfevents.<time>.<host>`): scalars and PNG images,
/// encoded by hand in the protobuf wire format (the messages are small and fixed).
public final class TensorBoardWriter {
    public let url: URL
    private let handle: FileHandle

    public init(directory: URL, now: Date = Date()) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let host = ProcessInfo.processInfo.hostName.split(separator: ".").first.map(String.init) ?? "localhost"
        url = directory.appendingPathComponent("events.out.tfevents.\(Int(now.timeIntervalSince1970)).\(host)")
        guard FileManager.default.createFile(atPath: url.path, contents: nil) else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: url.path])
        }
        handle = try FileHandle(forWritingTo: url)
        var event = ProtoWriter()
        event.double(1, now.timeIntervalSince1970)
        event.string(3, "brain.Event:2")
        try writeRecord(event.bytes)
    }

    deinit { try? handle.close() }

    public func addScalar(_ tag: String, _ value: Double, step: Int, wallTime: Date = Date()) throws {
        var v = ProtoWriter()
        v.string(1, tag)
        v.float(2, Float(value))
        try writeSummary(value: v, step: step, wallTime: wallTime)
    }

    public func flush() throws { try handle.synchronize() }

    private func writeSummary(value: ProtoWriter, step: Int, wallTime: Date) throws {
        var summary = ProtoWriter()
        summary.message(1, value)
        var event = ProtoWriter()
        event.double(1, wallTime.timeIntervalSince1970)
        event.varint(2, UInt64(bitPattern: Int64(step)))
        event.message(5, summary)
        try writeRecord(event.bytes)
    }

    /// TFRecord framing: length, masked CRC32C of the length, payload, masked CRC32C of the payload.
    private func writeRecord(_ payload: Data) throws {
        var length = UInt64(payload.count).littleEndian
        let lengthBytes = Data(bytes: &length, count: 8)
        var record = Data()
        record.append(lengthBytes)
        record.append(littleEndian: CRC32C.masked(lengthBytes))
        record.append(payload)
        record.append(littleEndian: CRC32C.masked(payload))
        try handle.write(contentsOf: record)
    }
}

/// Minimal protobuf wire-format encoder for the fields TensorBoard events use.
struct ProtoWriter {
    private(set) var bytes = Data()

    private mutating func key(_ field: Int, _ wireType: UInt64) { rawVarint(UInt64(field) << 3 | wireType) }

    private mutating func rawVarint(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func varint(_ field: Int, _ value: UInt64) { key(field, 0); rawVarint(value) }
    mutating func double(_ field: Int, _ value: Double) { key(field, 1); bytes.append(littleEndian: value.bitPattern) }
    mutating func float(_ field: Int, _ value: Float) { key(field, 5); bytes.append(littleEndian: value.bitPattern) }
    mutating func bytes(_ field: Int, _ value: Data) { key(field, 2); rawVarint(UInt64(value.count)); bytes.append(value) }
    mutating func string(_ field: Int, _ value: String) { bytes(field, Data(value.utf8)) }
    mutating func message(_ field: Int, _ value: ProtoWriter) { bytes(field, value.bytes) }
}

/// CRC-32C (Castagnoli), as TFRecord framing uses, with TensorBoard's masking.
enum CRC32C {
    private static let table: [UInt32] = (0..<256).map { i -> UInt32 in
        var c = UInt32(i)
        for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
        return c
    }

    static func checksum(_ data: Data) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in data { crc = table[Int((crc ^ UInt32(byte)) & 0xff)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }

    static func masked(_ data: Data) -> UInt32 {
        let crc = checksum(data)
        return ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }
}

extension Data {
    mutating func append<T: FixedWidthInteger>(littleEndian value: T) {
        var v = value.littleEndian
        Swift.withUnsafeBytes(of: &v) { append(contentsOf: $0) }
    }
}
