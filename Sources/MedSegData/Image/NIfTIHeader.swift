import Foundation

/// NIfTI-1 and NIfTI-2 headers: parsed (either byte order, checked) and encoded for writing.
extension NIfTI {
    struct Header {
        var version = 1
        var bigEndian = false
        var isPair = false
        var dim = [Int](repeating: 1, count: 8)
        var datatype = 0
        var pixdim = [Double](repeating: 0, count: 8)
        var voxOffset = 0
        var sclSlope: Double?
        var sclInter: Double?
        var qformCode = 0
        var sformCode = 0
        var quatern = [0.0, 0, 0]
        var qoffset = [0.0, 0, 0]
        var srow = [[Double]](repeating: [0, 0, 0, 0], count: 3)

        var headerSize: Int { version == 2 ? 540 : 348 }

        /// The bytes a file must hold up to the end of the image this header declares.
        func dataBytes(offset: Int, file: URL) throws -> Int {
            try DeclaredSize.bytes(NIfTI.layout(self, file: file).byteCount, of: 1, plus: max(offset, 0) + NIfTI.slack, file: file)
        }

        init() {}

        init(parsing data: Data, file: URL) throws {
            guard data.count >= 4 else {
                throw DataError(file: file, data.isEmpty ? "empty file" : "not a NIfTI file (\(data.count) bytes)")
            }
            let sizeLE = data.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.littleEndian
            switch (sizeLE, sizeLE.byteSwapped) {
            case (348, _): (version, bigEndian) = (1, false)
            case (_, 348): (version, bigEndian) = (1, true)
            case (540, _): (version, bigEndian) = (2, false)
            case (_, 540): (version, bigEndian) = (2, true)
            default:
                throw DataError(file: file, "not a NIfTI file (sizeof_hdr is \(Int32(bitPattern: sizeLE)), expected 348 or 540)")
            }
            guard data.count >= headerSize else {
                throw DataError(file: file, "truncated: NIfTI-\(version) header needs \(headerSize) bytes, file has \(data.count)")
            }
            let big = bigEndian
            try data.withUnsafeBytes { raw in
                func u16(_ o: Int) -> UInt16 { let v = raw.loadUnaligned(fromByteOffset: o, as: UInt16.self); return big ? v.bigEndian : v.littleEndian }
                func u32(_ o: Int) -> UInt32 { let v = raw.loadUnaligned(fromByteOffset: o, as: UInt32.self); return big ? v.bigEndian : v.littleEndian }
                func u64(_ o: Int) -> UInt64 { let v = raw.loadUnaligned(fromByteOffset: o, as: UInt64.self); return big ? v.bigEndian : v.littleEndian }
                func i16(_ o: Int) -> Int { Int(Int16(bitPattern: u16(o))) }
                func i32(_ o: Int) -> Int { Int(Int32(bitPattern: u32(o))) }
                func i64(_ o: Int) -> Int { Int(Int64(bitPattern: u64(o))) }
                func f32(_ o: Int) -> Double { Double(Float(bitPattern: u32(o))) }
                func f64(_ o: Int) -> Double { Double(bitPattern: u64(o)) }
                func magic(_ o: Int) -> String { String(decoding: raw[o..<(o + 3)], as: UTF8.self) }
                if version == 1 {
                    dim = (0..<8).map { i16(40 + 2 * $0) }
                    datatype = i16(70)
                    pixdim = (0..<8).map { f32(76 + 4 * $0) }
                    let offset = f32(108)
                    voxOffset = offset.isFinite && offset >= 0 && offset < 1e15 ? Int(offset) : 0
                    let m = magic(344)
                    isPair = m == "ni1"
                    sclSlope = f32(112)
                    sclInter = f32(116)
                    if m == "n+1" || m == "ni1" { // ANALYZE 7.5 headers hold other fields here
                        qformCode = i16(252)
                        sformCode = i16(254)
                        quatern = [f32(256), f32(260), f32(264)]
                        qoffset = [f32(268), f32(272), f32(276)]
                        srow = (0..<3).map { r in (0..<4).map { f32(280 + 16 * r + 4 * $0) } }
                    } else {
                        sclSlope = nil
                        sclInter = nil
                    }
                } else {
                    let m = magic(4)
                    guard m == "n+2" || m == "ni2" else { throw DataError(file: file, "not a NIfTI-2 file (magic \"\(m)\")") }
                    isPair = m == "ni2"
                    datatype = i16(12)
                    dim = (0..<8).map { i64(16 + 8 * $0) }
                    pixdim = (0..<8).map { f64(104 + 8 * $0) }
                    let declared = i64(168)
                    // No file holds data a petabyte in: such an offset is a broken header (and would overflow later sums).
                    guard declared < 1 << 50 else { throw DataError(file: file, "corrupt header: vox_offset \(declared) lies beyond any file") }
                    voxOffset = max(0, declared)
                    sclSlope = f64(176)
                    sclInter = f64(184)
                    qformCode = i32(344)
                    sformCode = i32(348)
                    quatern = [f64(352), f64(360), f64(368)]
                    qoffset = [f64(376), f64(384), f64(392)]
                    srow = (0..<3).map { r in (0..<4).map { f64(400 + 32 * r + 8 * $0) } }
                }
            }
            guard (1...7).contains(dim[0]) else {
                throw DataError(file: file, "corrupt header: dim[0] (the number of dimensions) is \(dim[0])")
            }
            for i in 1...dim[0] where dim[i] < 1 {
                throw DataError(file: file, "corrupt header: dim[\(i)] is \(dim[i])")
            }
        }
    }

    static func encodeHeader(_ h: Header, bitpix: Int) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: h.voxOffset)
        func put16(_ v: Int, _ o: Int) { withUnsafeBytes(of: Int16(truncatingIfNeeded: v).littleEndian) { b.replaceSubrange(o..<(o + 2), with: $0) } }
        func put32(_ v: Int, _ o: Int) { withUnsafeBytes(of: Int32(truncatingIfNeeded: v).littleEndian) { b.replaceSubrange(o..<(o + 4), with: $0) } }
        func put64(_ v: Int, _ o: Int) { withUnsafeBytes(of: Int64(v).littleEndian) { b.replaceSubrange(o..<(o + 8), with: $0) } }
        func putF32(_ v: Double, _ o: Int) { withUnsafeBytes(of: Float(v).bitPattern.littleEndian) { b.replaceSubrange(o..<(o + 4), with: $0) } }
        func putF64(_ v: Double, _ o: Int) { withUnsafeBytes(of: v.bitPattern.littleEndian) { b.replaceSubrange(o..<(o + 8), with: $0) } }
        func putText(_ s: String, _ o: Int, _ limit: Int) { let u = Array(s.utf8.prefix(limit)); b.replaceSubrange(o..<(o + u.count), with: u) }
        if h.version == 2 {
            put32(540, 0)
            b.replaceSubrange(4..<12, with: [0x6E, 0x2B, 0x32, 0x00, 0x0D, 0x0A, 0x1A, 0x0A]) // "n+2\0\r\n\032\n"
            put16(h.datatype, 12)
            put16(bitpix, 14)
            for i in 0..<8 { put64(h.dim[i], 16 + 8 * i) }
            for i in 0..<8 { putF64(h.pixdim[i], 104 + 8 * i) }
            put64(h.voxOffset, 168)
            putF64(h.sclSlope ?? 0, 176)
            putF64(h.sclInter ?? 0, 184)
            putText("MedSeg", 240, 80)
            put32(h.qformCode, 344)
            put32(h.sformCode, 348)
            for i in 0..<3 { putF64(h.quatern[i], 352 + 8 * i) }
            for i in 0..<3 { putF64(h.qoffset[i], 376 + 8 * i) }
            for r in 0..<3 { for c in 0..<4 { putF64(h.srow[r][c], 400 + 32 * r + 8 * c) } }
            put32(2, 500) // xyzt_units: millimetres
        } else {
            put32(348, 0)
            for i in 0..<8 { put16(h.dim[i], 40 + 2 * i) }
            put16(h.datatype, 70)
            put16(bitpix, 72)
            for i in 0..<8 { putF32(h.pixdim[i], 76 + 4 * i) }
            putF32(Double(h.voxOffset), 108)
            putF32(h.sclSlope ?? 0, 112)
            putF32(h.sclInter ?? 0, 116)
            b[123] = 2 // xyzt_units: millimetres
            putText("MedSeg", 148, 80)
            put16(h.qformCode, 252)
            put16(h.sformCode, 254)
            for i in 0..<3 { putF32(h.quatern[i], 256 + 4 * i) }
            for i in 0..<3 { putF32(h.qoffset[i], 268 + 4 * i) }
            for r in 0..<3 { for c in 0..<4 { putF32(h.srow[r][c], 280 + 16 * r + 4 * c) } }
            putText("n+1", 344, 4)
        }
        return b
    }
}
