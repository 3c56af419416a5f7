import Foundation

/// Reads the first frame of a GIF (87a or 89a): LZW-compressed palette indices, optionally
/// interlaced, with a global or local colour table. DRIVE ships its vessel annotations and
/// field-of-view masks as GIFs, which the C codecs behind `ImageIO` do not cover.
///
/// The result is 2D ([width, height], row 0 at the top, unit spacing): the raw indices (uint8)
/// with `palette: .indices`, otherwise the colours — gray (1 channel) when the colour table is
/// gray, else RGB (3 channels, `.rgb8`). Pixels of the logical screen outside the first frame
/// take the background colour.
public enum GIFDecoder {
    public static func read(_ url: URL, palette: PaletteMode = .rgb) throws -> MedicalImage {
        let data: Data
        do { data = try Data(contentsOf: url, options: .mappedIfSafe) } catch {
            throw DataError(file: url, "cannot read: \(error.localizedDescription)")
        }
        return try decode(data, palette: palette, file: url)
    }

    /// Decodes GIF bytes; `file` names the source in errors.
    public static func decode(_ data: Data, palette: PaletteMode = .rgb, file: URL) throws -> MedicalImage {
        let bytes = [UInt8](data)
        var reader = ByteReader(bytes: bytes, file: file)
        let signature = String(decoding: try reader.take(6), as: UTF8.self)
        guard signature == "GIF87a" || signature == "GIF89a" else { throw DataError(file: file, "not a GIF file") }
        let screenWidth = try reader.u16(), screenHeight = try reader.u16()
        let flags = try reader.u8()
        let background = Int(try reader.u8())
        _ = try reader.u8()  // pixel aspect ratio
        var globalTable: [UInt8] = []
        if flags & 0x80 != 0 { globalTable = try reader.take(3 << (Int(flags & 0x07) + 1)) }

        while true {
            let introducer = try reader.u8()
            switch introducer {
            case 0x21:  // extension: label, then data sub-blocks
                _ = try reader.u8()
                try reader.skipSubBlocks()
            case 0x2C:
                let left = try reader.u16(), top = try reader.u16()
                let width = try reader.u16(), height = try reader.u16()
                let imageFlags = try reader.u8()
                var table = globalTable
                if imageFlags & 0x80 != 0 { table = try reader.take(3 << (Int(imageFlags & 0x07) + 1)) }
                guard !table.isEmpty else { throw DataError(file: file, "corrupt GIF: the first frame has no colour table") }
                let minimumCodeSize = Int(try reader.u8())
                guard (1...11).contains(minimumCodeSize) else {
                    throw DataError(file: file, "corrupt GIF: LZW code size \(minimumCodeSize)")
                }
                let compressed = try reader.subBlocks()
                guard width > 0, height > 0 else { throw DataError(file: file, "corrupt GIF: frame size \(width) x \(height)") }
                var frame = try lzwDecode(compressed, minimumCodeSize: minimumCodeSize, pixelCount: width * height, file: file)
                if imageFlags & 0x40 != 0 { frame = deinterlace(frame, width: width, height: height) }
                return image(frame: frame, left: left, top: top, width: width, height: height,
                             screen: (max(screenWidth, left + width), max(screenHeight, top + height)),
                             background: background, table: table, palette: palette)
            case 0x3B:
                throw DataError(file: file, "GIF holds no image")
            default:
                throw DataError(file: file, "corrupt GIF: unexpected block 0x\(String(introducer, radix: 16)) at byte \(reader.position - 1)")
            }
        }
    }

    private static func image(frame: [UInt8], left: Int, top: Int, width: Int, height: Int, screen: (Int, Int),
                              background: Int, table: [UInt8], palette: PaletteMode) -> MedicalImage {
        let (w, h) = screen
        var indices = frame
        if (w, h) != (width, height) {
            let fill = UInt8(clamping: background)
            indices = [UInt8](repeating: fill, count: w * h)
            for y in 0..<height {
                for x in 0..<width { indices[(top + y) * w + left + x] = frame[y * width + x] }
            }
        }
        if palette == .indices {
            return MedicalImage(size: [w, h], voxels: indices.map { Float($0) }, pixelType: .uint8)
        }
        let entries = table.count / 3
        func color(_ index: UInt8, _ c: Int) -> Float {
            let i = Int(index)
            return i < entries ? Float(table[3 * i + c]) : 0
        }
        let used = Set(indices)
        let gray = used.allSatisfy { color($0, 0) == color($0, 1) && color($0, 0) == color($0, 2) }
        if gray {
            return MedicalImage(size: [w, h], voxels: indices.map { color($0, 0) }, pixelType: .uint8)
        }
        let n = w * h
        var voxels = [Float](repeating: 0, count: 3 * n)
        for p in 0..<n {
            for c in 0..<3 { voxels[c * n + p] = color(indices[p], c) }
        }
        return MedicalImage(size: [w, h], channels: 3, voxels: voxels, pixelType: .rgb8)
    }

    /// Variable-width LZW as GIF uses it: codes packed least significant bit first, a clear code
    /// (2^minimumCodeSize), an end code, code width growing to 12 bits.
    static func lzwDecode(_ data: [UInt8], minimumCodeSize: Int, pixelCount: Int, file: URL) throws -> [UInt8] {
        let clear = 1 << minimumCodeSize, end = clear + 1
        var prefix = [Int](repeating: -1, count: 4096)
        var suffix = [UInt8](repeating: 0, count: 4096)
        var first = [UInt8](repeating: 0, count: 4096)
        var length = [Int](repeating: 0, count: 4096)
        for i in 0..<clear {
            suffix[i] = UInt8(truncatingIfNeeded: i)
            first[i] = UInt8(truncatingIfNeeded: i)
            length[i] = 1
        }
        var out = [UInt8](repeating: 0, count: pixelCount)
        var written = 0
        var codeSize = minimumCodeSize + 1
        var next = end + 1
        var previous = -1
        var bitBuffer = 0, bitCount = 0, position = 0

        // Writes the string of `code` at `written` (truncated at the frame's end).
        func emit(_ code: Int) {
            let n = length[code]
            var k = code
            var i = written + n - 1
            while k >= 0 {
                if i < pixelCount { out[i] = suffix[k] }
                i -= 1
                k = prefix[k]
            }
            written += n
        }

        while written < pixelCount {
            while bitCount < codeSize && position < data.count {
                bitBuffer |= Int(data[position]) << bitCount
                bitCount += 8
                position += 1
            }
            guard bitCount >= codeSize else { break }
            let code = bitBuffer & ((1 << codeSize) - 1)
            bitBuffer >>= codeSize
            bitCount -= codeSize

            if code == clear {
                codeSize = minimumCodeSize + 1
                next = end + 1
                previous = -1
                continue
            }
            if code == end { break }
            if previous < 0 {
                guard code < clear else { throw DataError(file: file, "corrupt GIF: LZW code \(code) before any string") }
                emit(code)
                previous = code
                continue
            }
            // A code already in the table is emitted first; the one being defined (KwKwK) after its
            // entry is added: previous string + its own first byte.
            let isNew = code == next
            guard code < next || (isNew && next < 4096) else {
                throw DataError(file: file, "corrupt GIF: LZW code \(code) beyond the table (\(next) entries)")
            }
            if !isNew { emit(code) }
            if next < 4096 {
                prefix[next] = previous
                suffix[next] = isNew ? first[previous] : first[code]
                first[next] = first[previous]
                length[next] = length[previous] + 1
                next += 1
                if next == (1 << codeSize) && codeSize < 12 { codeSize += 1 }
            }
            if isNew { emit(code) }
            previous = code
        }
        guard written >= pixelCount else {
            throw DataError(file: file, "truncated: GIF frame holds \(written) of \(pixelCount) pixels")
        }
        return out
    }

    /// Rows of an interlaced frame come in four passes: every 8th from 0, every 8th from 4, every
    /// 4th from 2, every 2nd from 1.
    static func deinterlace(_ rows: [UInt8], width: Int, height: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: rows.count)
        var source = 0
        for (start, step) in [(0, 8), (4, 8), (2, 4), (1, 2)] {
            var y = start
            while y < height {
                out[(y * width)..<((y + 1) * width)] = rows[(source * width)..<((source + 1) * width)]
                source += 1
                y += step
            }
        }
        return out
    }

    private struct ByteReader {
        let bytes: [UInt8]
        let file: URL
        var position = 0

        init(bytes: [UInt8], file: URL) {
            self.bytes = bytes
            self.file = file
        }

        mutating func take(_ n: Int) throws -> [UInt8] {
            guard position + n <= bytes.count else {
                throw DataError(file: file, "truncated: GIF ends at byte \(bytes.count), needs \(position + n)")
            }
            defer { position += n }
            return Array(bytes[position..<(position + n)])
        }

        mutating func u8() throws -> UInt8 { try take(1)[0] }

        mutating func u16() throws -> Int {
            let b = try take(2)
            return Int(b[0]) | Int(b[1]) << 8
        }

        mutating func subBlocks() throws -> [UInt8] {
            var out: [UInt8] = []
            while true {
                let n = Int(try u8())
                if n == 0 { return out }
                out += try take(n)
            }
        }

        mutating func skipSubBlocks() throws {
            while true {
                let n = Int(try u8())
                if n == 0 { return }
                _ = try take(n)
            }
        }
    }
}
