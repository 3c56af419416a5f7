import CImageCodecs
import Foundation

/// 2D image formats: PNG, JPEG and TIFF through libpng/libjpeg/libtiff, BMP in Swift.
/// Images are [width, height] with row 0 at the top, unit spacing and identity direction; RGB(A)
/// files have 3 (4) channels; multi-page TIFFs are [width, height, pages] volumes.
public enum PlanarImages {
    // MARK: Reading

    public static func readPNG(_ url: URL, palette: PaletteMode = .rgb) throws -> MedicalImage {
        var raster = mc_raster()
        guard mc_png_read(url.path, &raster) == 0 else { throw DataError(file: url, codecError()) }
        defer { mc_raster_free(&raster) }
        return try image(from: raster, palette: palette, file: url)
    }

    public static func readJPEG(_ url: URL) throws -> MedicalImage {
        var raster = mc_raster()
        guard mc_jpeg_read(url.path, &raster) == 0 else { throw DataError(file: url, codecError()) }
        defer { mc_raster_free(&raster) }
        return try image(from: raster, palette: .rgb, file: url)
    }

    /// All pages of a TIFF: one page gives a 2D image, several a [width, height, pages] volume.
    public static func readTIFF(_ url: URL, palette: PaletteMode = .rgb) throws -> MedicalImage {
        var raster = mc_raster()
        // The pages' layout first: a stack too large for memory is refused before it is decoded.
        guard mc_tiff_stats(url.path, &raster, nil) == 0 else { throw DataError(file: url, codecError()) }
        try requireMemory(for: raster, decoded: false, file: url)
        guard mc_tiff_read(url.path, &raster) == 0 else { throw DataError(file: url, codecError()) }
        defer { mc_raster_free(&raster) }
        return try image(from: raster, palette: palette, file: url)
    }

    /// A TIFF's summary, its pages decoded one at a time; nil for palette TIFFs (read them whole).
    static func inspectTIFF(_ url: URL) throws -> ImageSummary? {
        var raster = mc_raster()
        var statistics = ImageStatistics()
        let rc = mc_tiff_stats(url.path, &raster, &statistics.raw)
        guard rc >= 0 else { throw DataError(file: url, codecError()) }
        guard rc == 0 else { return nil }
        let (w, h, pages) = (Int(raster.width), Int(raster.height), Int(raster.pages))
        return ImageSummary(size: pages > 1 ? [w, h, pages] : [w, h], channels: Int(raster.channels),
                            pixelType: pixelType(sampleType(of: raster), channels: Int(raster.channels)),
                            geometry: .identity(dims: pages > 1 ? 3 : 2), statistics: statistics)
    }

    /// Refuses a raster whose float32 values (and their planar copy) do not fit in memory, with
    /// its stored samples when they are still to be decoded.
    private static func requireMemory(for r: mc_raster, decoded: Bool, file: URL) throws {
        let samples = try DeclaredSize.elements([Int(r.width), Int(r.height), Int(r.pages), Int(r.channels)], file: file)
        let stored = decoded ? 0 : try DeclaredSize.bytes(samples, of: Int(r.bits) / 8, file: file)
        let size = [r.width, r.height] + (r.pages > 1 ? [r.pages] : [])
        try MemoryBudget.require(try DeclaredSize.bytes(samples, of: r.channels > 1 ? 8 : 4, plus: stored, file: file),
                                 for: "reading its \(size.map(String.init).joined(separator: " x ")) pixels (x \(r.channels) channel(s)) whole",
                                 file: file, hint: "`medseg data info` inspects it without holding it")
    }

    private static func sampleType(of r: mc_raster) -> SampleType {
        switch (r.bits, r.sample_format) {
        case (8, 2): return .int8
        case (16, 1): return .uint16
        case (16, 2): return .int16
        case (32, 1): return .uint32
        case (32, 2): return .int32
        case (32, 3): return .float32
        case (64, 1): return .uint64
        case (64, 2): return .int64
        case (64, 3): return .float64
        default: return .uint8
        }
    }

    /// The pixel type of an image of `channels` channels of `sample`s: 8-bit RGB(A) is its own type.
    private static func pixelType(_ sample: SampleType, channels: Int) -> PixelType {
        if sample == .uint8 && channels == 3 { return .rgb8 }
        if sample == .uint8 && channels == 4 { return .rgba8 }
        return sample.pixelType
    }

    private static func image(from r: mc_raster, palette: PaletteMode, file: URL) throws -> MedicalImage {
        try requireMemory(for: r, decoded: true, file: file)
        let w = Int(r.width), h = Int(r.height), pages = Int(r.pages)
        let size = pages > 1 ? [w, h, pages] : [w, h]
        let pixels = w * h * pages
        if r.is_palette != 0, let indices = r.indices {
            let raw = UnsafeRawBufferPointer(start: indices, count: pixels)
            if palette == .indices {
                return MedicalImage(size: size, voxels: decodeSamples(raw, count: pixels, type: .uint8), pixelType: .uint8)
            }
        }
        let sample = sampleType(of: r)
        let channels = Int(r.channels)
        let raw = UnsafeRawBufferPointer(start: r.pixels, count: pixels * channels * sample.byteCount)
        var values = decodeSamples(raw, count: pixels * channels, type: sample)
        var outChannels = channels
        if r.is_palette != 0 && channels == 3 && isGray(values) {
            values = stride(from: 0, to: values.count, by: 3).map { values[$0] }
            outChannels = 1
        } else {
            values = planarFromInterleaved(values, channels: channels)
        }
        return MedicalImage(size: size, channels: outChannels, voxels: values, pixelType: pixelType(sample, channels: outChannels))
    }

    /// Interleaved RGB values with R == G == B everywhere.
    private static func isGray(_ rgb: [Float]) -> Bool {
        var i = 0
        while i + 2 < rgb.count {
            if rgb[i] != rgb[i + 1] || rgb[i] != rgb[i + 2] { return false }
            i += 3
        }
        return true
    }

    /// Uncompressed BMP: 1/4/8-bit palette, 16-bit, 24-bit and 32-bit (BI_RGB or BI_BITFIELDS),
    /// bottom-up or top-down.
    public static func readBMP(_ url: URL, palette: PaletteMode = .rgb) throws -> MedicalImage {
        let data = try readFileRaw(url)
        return try data.withUnsafeBytes { raw -> MedicalImage in
            guard raw.count >= 2, raw[0] == 0x42, raw[1] == 0x4D else { throw DataError(file: url, "not a BMP file") }
            guard raw.count >= 26 else { throw DataError(file: url, "truncated: BMP header needs at least 26 bytes, file has \(raw.count)") }
            func u16(_ o: Int) -> Int { Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt16.self))) }
            func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
            func i32(_ o: Int) -> Int { Int(Int32(bitPattern: u32(o))) }
            let pixelOffset = Int(u32(10))
            let dibSize = Int(u32(14))
            guard raw.count >= 14 + dibSize else {
                throw DataError(file: url, "truncated: BMP header needs \(14 + dibSize) bytes, file has \(raw.count)")
            }
            let width: Int, height: Int, bpp: Int
            var compression: UInt32 = 0, colorsUsed = 0
            let core = dibSize == 12
            if core {
                (width, height, bpp) = (u16(18), Int(Int16(bitPattern: UInt16(u16(20)))), u16(24))
            } else if dibSize >= 40 {
                (width, height, bpp) = (i32(18), i32(22), u16(28))
                compression = u32(30)
                colorsUsed = Int(u32(46))
            } else {
                throw DataError(file: url, "corrupt BMP: unknown header size \(dibSize)")
            }
            guard width > 0, height != 0 else { throw DataError(file: url, "corrupt BMP: size \(width) x \(height)") }
            let topDown = height < 0
            let rows = abs(height)
            guard compression == 0 || compression == 3 || compression == 6 else {
                throw DataError(file: url, "compressed BMP (compression \(compression)) is not supported")
            }
            guard [1, 4, 8, 16, 24, 32].contains(bpp) else { throw DataError(file: url, "unsupported BMP bit depth \(bpp)") }
            let stride = (width * bpp + 31) / 32 * 4
            let needed = pixelOffset + stride * rows
            guard raw.count >= needed else {
                throw DataError(file: url, "truncated: header says \(stride * rows) pixel bytes, file has \(max(0, raw.count - pixelOffset))")
            }
            let n = width * rows
            func rowStart(_ y: Int) -> Int { pixelOffset + (topDown ? y : rows - 1 - y) * stride }

            if bpp <= 8 {
                let entries = colorsUsed > 0 ? min(colorsUsed, 1 << bpp) : 1 << bpp
                let entrySize = core ? 3 : 4
                let paletteStart = 14 + dibSize
                guard raw.count >= paletteStart + entries * entrySize || palette == .indices else {
                    throw DataError(file: url, "truncated: the BMP colour table is cut short")
                }
                var table = [[Float]](repeating: [0, 0, 0], count: 256)
                for i in 0..<entries where paletteStart + i * entrySize + 3 <= raw.count {
                    let o = paletteStart + i * entrySize
                    table[i] = [Float(raw[o + 2]), Float(raw[o + 1]), Float(raw[o])]
                }
                var indices = [UInt8](repeating: 0, count: n)
                let mask = (1 << bpp) - 1
                for y in 0..<rows {
                    let start = rowStart(y)
                    for x in 0..<width {
                        let bit = x * bpp
                        indices[y * width + x] = UInt8((Int(raw[start + bit / 8]) >> (8 - bpp - bit % 8)) & mask)
                    }
                }
                if palette == .indices {
                    return MedicalImage(size: [width, rows], voxels: indices.map { Float($0) }, pixelType: .uint8)
                }
                let gray = (0..<entries).allSatisfy { table[$0][0] == table[$0][1] && table[$0][0] == table[$0][2] }
                if gray {
                    return MedicalImage(size: [width, rows], voxels: indices.map { table[Int($0)][0] }, pixelType: .uint8)
                }
                var voxels = [Float](repeating: 0, count: 3 * n)
                for p in 0..<n {
                    let c = table[Int(indices[p])]
                    voxels[p] = c[0]
                    voxels[n + p] = c[1]
                    voxels[2 * n + p] = c[2]
                }
                return MedicalImage(size: [width, rows], channels: 3, voxels: voxels, pixelType: .rgb8)
            }

            if bpp == 24 {
                var voxels = [Float](repeating: 0, count: 3 * n)
                for y in 0..<rows {
                    let start = rowStart(y)
                    for x in 0..<width {
                        let o = start + 3 * x, p = y * width + x
                        voxels[p] = Float(raw[o + 2])
                        voxels[n + p] = Float(raw[o + 1])
                        voxels[2 * n + p] = Float(raw[o])
                    }
                }
                return MedicalImage(size: [width, rows], channels: 3, voxels: voxels, pixelType: .rgb8)
            }

            // 16 and 32 bits: channel masks.
            var masks: [UInt32] = bpp == 16 ? [0x7C00, 0x03E0, 0x001F, 0] : [0xFF0000, 0xFF00, 0xFF, 0]
            if compression == 3 || compression == 6 {
                let maskStart = 14 + 40
                let count = compression == 6 || dibSize >= 56 ? 4 : 3
                guard raw.count >= maskStart + 4 * count else { throw DataError(file: url, "truncated: BMP colour masks are cut short") }
                for i in 0..<count { masks[i] = u32(maskStart + 4 * i) }
                if count == 3 { masks[3] = 0 }
            }
            let channels = masks[3] != 0 ? 4 : 3
            let shifts = masks.map { $0 == 0 ? 0 : UInt32($0.trailingZeroBitCount) }
            let maxima = zip(masks, shifts).map { $0 == 0 ? Float(1) : Float($0 >> $1) }
            var voxels = [Float](repeating: 0, count: channels * n)
            for y in 0..<rows {
                let start = rowStart(y)
                for x in 0..<width {
                    let v = bpp == 16 ? UInt32(u16(start + 2 * x)) : u32(start + 4 * x)
                    let p = y * width + x
                    for c in 0..<channels {
                        let field = Float((v & masks[c]) >> shifts[c])
                        voxels[c * n + p] = maxima[c] == 255 ? field : (field * 255 / maxima[c]).rounded()
                    }
                }
            }
            return MedicalImage(size: [width, rows], channels: channels, voxels: voxels, pixelType: channels == 4 ? .rgba8 : .rgb8)
        }
    }

    // MARK: Writing

    /// Writes an 8-bit (uint8/rgb8/rgba8 images) or 16-bit (uint16) PNG with 1-4 channels; other
    /// pixel types are written as 8 or 16 bits when every value is a whole number that fits.
    public static func writePNG(_ image: MedicalImage, to url: URL) throws {
        let (w, h) = try planarSize(image, url: url, format: "PNG")
        guard (1...4).contains(image.channels) else {
            throw DataError(file: url, "PNG holds 1 to 4 channels, the image has \(image.channels)")
        }
        let bits = try unsignedBits(image, allowed: [8, 16], url: url, format: "PNG")
        let bytes = encodeSamples(interleavedFromPlanar(image.voxels, channels: image.channels), type: bits == 8 ? .uint8 : .uint16)
        try writeAtomically(to: url) { temporary in
            let rc = bytes.withUnsafeBytes { mc_png_write(temporary, $0.baseAddress, Int32(w), Int32(h), Int32(image.channels), Int32(bits)) }
            guard rc == 0 else { throw DataError(file: url, codecError()) }
        }
    }

    /// Writes a deflate-compressed TIFF; a 3D image becomes one page per z slice. Gray (1 channel)
    /// of any pixel type, or RGB (3 channels).
    public static func writeTIFF(_ image: MedicalImage, to url: URL) throws {
        guard image.dims == 2 || image.dims == 3 else {
            throw DataError(file: url, "cannot write a \(image.dims)-dimensional image as TIFF")
        }
        guard image.channels == 1 || image.channels == 3 else {
            throw DataError(file: url, "TIFF is written with 1 or 3 channels, the image has \(image.channels)")
        }
        let (bits, format): (Int32, Int32)
        let sample = SampleType(image.pixelType)
        switch sample {
        case .uint8: (bits, format) = (8, 1)
        case .int8: (bits, format) = (8, 2)
        case .uint16: (bits, format) = (16, 1)
        case .int16: (bits, format) = (16, 2)
        case .uint32: (bits, format) = (32, 1)
        case .int32: (bits, format) = (32, 2)
        case .uint64: (bits, format) = (64, 1)
        case .int64: (bits, format) = (64, 2)
        case .float32: (bits, format) = (32, 3)
        case .float64: (bits, format) = (64, 3)
        }
        let pages = image.dims == 3 ? image.size[2] : 1
        let bytes = encodeSamples(interleavedFromPlanar(image.voxels, channels: image.channels), type: sample)
        let tags = tiffSpacingTags(image)
        try writeAtomically(to: url) { temporary in
            let rc = bytes.withUnsafeBytes { raw in
                tags.description.withOptionalCString { text in
                    mc_tiff_write(temporary, raw.baseAddress, Int32(image.size[0]), Int32(image.size[1]), Int32(pages),
                                  Int32(image.channels), bits, format, 1, tags.x, tags.y, tags.unit, text)
                }
            }
            guard rc == 0 else { throw DataError(file: url, codecError()) }
        }
    }

    /// What a TIFF holds of the geometry: 2D (and RGB stacks) pixels per centimetre from the x/y
    /// spacing (mm); a gray stack ImageJ's way: pixels per mm, unit none, and a description
    /// "ImageJ=... unit=mm spacing=Z". Origin and direction are not stored (`tiffLosses`).
    static func tiffSpacingTags(_ image: MedicalImage) -> (x: Double, y: Double, unit: Int32, description: String?) {
        let g = image.geometry
        guard g.spacing.count >= 2, g.spacing[0] > 0, g.spacing[1] > 0 else { return (0, 0, 1, nil) }
        if image.dims == 3 && image.channels == 1 && g.spacing.count == 3 {
            let z = image.size[2]
            let text = "ImageJ=1.11a\nimages=\(z)\nslices=\(z)\nunit=mm\nspacing=\(g.spacing[2])\nloop=false\n"
            return (1 / g.spacing[0], 1 / g.spacing[1], 1, text)
        }
        return (10 / g.spacing[0], 10 / g.spacing[1], 3, nil)
    }

    /// The parts of `image`'s geometry a TIFF written by `writeTIFF` cannot hold (empty when none
    /// differ from the defaults): origin, direction, and the z spacing of an RGB stack.
    public static func tiffLosses(_ image: MedicalImage) -> [String] {
        let g = image.geometry
        var lost: [String] = []
        if g.origin.contains(where: { $0 != 0 }) { lost.append("origin \(g.origin)") }
        let n = g.dims
        if g.direction.enumerated().contains(where: { abs($0.element - ($0.offset % (n + 1) == 0 ? 1 : 0)) > 1e-9 }) {
            lost.append("direction \(g.direction)")
        }
        if image.dims == 3 && image.channels != 1 && g.spacing.count == 3 && g.spacing[2] != 1 {
            lost.append("z spacing \(g.spacing[2])")
        }
        return lost
    }

    /// Writes an uncompressed bottom-up BMP: 8-bit with a gray colour table (1 channel) or 24-bit (3).
    public static func writeBMP(_ image: MedicalImage, to url: URL) throws {
        let (w, h) = try planarSize(image, url: url, format: "BMP")
        guard image.channels == 1 || image.channels == 3 else {
            throw DataError(file: url, "BMP is written with 1 or 3 channels, the image has \(image.channels)")
        }
        _ = try unsignedBits(image, allowed: [8], url: url, format: "BMP")
        let gray = image.channels == 1
        let bpp = gray ? 8 : 24
        let stride = (w * bpp + 31) / 32 * 4
        let tableSize = gray ? 1024 : 0
        let pixelOffset = 14 + 40 + tableSize
        let fileSize = pixelOffset + stride * h
        var b = [UInt8](repeating: 0, count: fileSize)
        func put16(_ v: Int, _ o: Int) { b[o] = UInt8(v & 0xFF); b[o + 1] = UInt8((v >> 8) & 0xFF) }
        func put32(_ v: Int, _ o: Int) { for i in 0..<4 { b[o + i] = UInt8((v >> (8 * i)) & 0xFF) } }
        b[0] = 0x42
        b[1] = 0x4D
        put32(fileSize, 2)
        put32(pixelOffset, 10)
        put32(40, 14)
        put32(w, 18)
        put32(h, 22)
        put16(1, 26)
        put16(bpp, 28)
        put32(stride * h, 34)
        put32(2835, 38) // 72 dpi
        put32(2835, 42)
        if gray {
            put32(256, 46)
            for i in 0..<256 { b[54 + 4 * i] = UInt8(i); b[55 + 4 * i] = UInt8(i); b[56 + 4 * i] = UInt8(i) }
        }
        let n = w * h
        let v = image.voxels
        for y in 0..<h {
            let start = pixelOffset + (h - 1 - y) * stride
            for x in 0..<w {
                let p = y * w + x
                if gray {
                    b[start + x] = clampedInteger(v[p], UInt8.self)
                } else {
                    b[start + 3 * x] = clampedInteger(v[2 * n + p], UInt8.self)
                    b[start + 3 * x + 1] = clampedInteger(v[n + p], UInt8.self)
                    b[start + 3 * x + 2] = clampedInteger(v[p], UInt8.self)
                }
            }
        }
        try writeDataAtomically([Data(b)], to: url)
    }

    /// Width and height of an image a 2D format can hold ([w, h] or [w, h, 1]).
    private static func planarSize(_ image: MedicalImage, url: URL, format: String) throws -> (Int, Int) {
        guard image.dims == 2 || (image.dims == 3 && image.size[2] == 1) else {
            throw DataError(file: url, "\(format) holds 2D images, the image is \(image.size.map(String.init).joined(separator: "x"))")
        }
        return (image.size[0], image.size[1])
    }

    /// The unsigned bit depth to store: from the pixel type when it is one of `allowed`, else the
    /// smallest allowed depth that holds every value exactly.
    private static func unsignedBits(_ image: MedicalImage, allowed: [Int], url: URL, format: String) throws -> Int {
        switch image.pixelType {
        case .uint8, .rgb8, .rgba8: return 8
        case .uint16 where allowed.contains(16): return 16
        default: break
        }
        var low = Float.infinity, high = -Float.infinity, whole = true
        for v in image.voxels {
            low = min(low, v)
            high = max(high, v)
            if v != v.rounded() { whole = false }
        }
        if image.voxels.isEmpty { (low, high) = (0, 0) }
        if whole && low >= 0 {
            if high <= 255 { return 8 }
            if high <= 65535 && allowed.contains(16) { return 16 }
        }
        let depths = allowed.map { "\($0)" }.joined(separator: " or ")
        throw DataError(file: url, "\(format) holds \(depths)-bit unsigned integers; the \(image.pixelType.rawValue) image has values from \(low) to \(high)\(whole ? "" : " (not whole numbers)")")
    }
}

private extension Optional where Wrapped == String {
    /// Calls `body` with a C string, or with nil when there is no string.
    func withOptionalCString<R>(_ body: (UnsafePointer<CChar>?) throws -> R) rethrows -> R {
        switch self {
        case .some(let text): return try text.withCString { try body($0) }
        case .none: return try body(nil)
        }
    }
}
