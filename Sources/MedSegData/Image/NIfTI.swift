import CImageCodecs
import Foundation

/// NIfTI-1 and NIfTI-2 images: single files (.nii, .nii.gz) and, for reading, .hdr/.img pairs.
///
/// Geometry follows SimpleITK: spacing from pixdim, the voxel-to-world affine from the sform when
/// sform_code > 0, else the qform (quaternion, qfac in pixdim[0]), else pixdim on the diagonal.
/// The RAS affine is kept in `ImageGeometry.niftiAffine`; origin and direction are the LPS (ITK)
/// form, i.e. the affine with its first two rows negated.
public enum NIfTI {
    // MARK: Reading

    public static func read(_ url: URL) throws -> MedicalImage {
        let (header, dataFile, offset) = try source(url)
        let layout = try layout(header, file: url)
        // Held at once: the stored bytes and their float32 values (and a planar copy of RGB voxels).
        let held = try DeclaredSize.bytes(layout.samples, of: layout.perVoxel > 1 ? 8 : 4, plus: layout.byteCount, file: url)
        try MemoryBudget.require(held, for: "reading its \(layout.spatial.map(String.init).joined(separator: " x ")) voxels (x \(layout.volumes * layout.perVoxel) channel(s)) whole",
                                 file: url, hint: "`medseg data info` inspects it without holding it")
        let data = try readFileInflating(dataFile, limit: try header.dataBytes(offset: offset, file: url))
        return try decode(header, data: data, offset: offset, file: dataFile)
    }

    /// The header and statistics of an image, its voxels streamed a megabyte at a time (an image
    /// of any size is inspected in constant memory).
    public static func inspect(_ url: URL) throws -> ImageSummary {
        let (header, dataFile, offset) = try source(url)
        let layout = try layout(header, file: url)
        let scaling = layout.perVoxel == 1 ? scaling(header) : nil
        var statistics = ImageStatistics()
        guard mc_gz_stats(dataFile.path, offset, layout.byteCount, slack, layout.sample.codecType, header.bigEndian != (1.bigEndian == 1) ? 1 : 0,
                          scaling?.slope ?? 1, scaling?.intercept ?? 0, &statistics.raw) == 0 else {
            throw DataError(file: dataFile, codecError())
        }
        var pixelType = layout.sample.pixelType
        if layout.perVoxel > 1 {
            pixelType = layout.interleavedPixelType
        } else if let scaling {
            pixelType = scaledPixelType(raw: layout.sample, slope: scaling.slope, inter: scaling.intercept,
                                        low: statistics.minimum ?? .infinity, high: statistics.maximum ?? -.infinity)
        }
        return ImageSummary(size: layout.spatial, channels: layout.volumes * layout.perVoxel, pixelType: pixelType,
                            geometry: geometry(header, dims: layout.spatial.count), statistics: statistics)
    }

    /// The checked header of `url`, the file holding its voxels, and their offset in it.
    private static func source(_ url: URL) throws -> (header: Header, dataFile: URL, offset: Int) {
        // The header first: what it declares caps how much of the file is inflated.
        let header = try Header(parsing: try readFileInflating(url, limit: 544, prefix: true), file: url)
        let ending = ImageIO.fileEnding(of: url)
        if ending == ".hdr" || ending == ".hdr.gz" { return (header, try imageFile(pairedWith: url), header.voxOffset) }
        // A single file (also with the pair magic "ni1": the data still follows the header).
        return (header, url, max(header.voxOffset, header.headerSize + 4))
    }

    /// The scl_slope and scl_inter a reader applies: none when the slope is missing, zero, not
    /// finite, or 1 with no intercept.
    private static func scaling(_ h: Header) -> (slope: Double, intercept: Double)? {
        guard let slope = h.sclSlope, slope.isFinite, slope != 0, !(slope == 1 && (h.sclInter ?? 0) == 0) else { return nil }
        return (slope, h.sclInter.flatMap { $0.isFinite ? $0 : nil } ?? 0)
    }

    /// Bytes tolerated after the image a header describes (padding some writers leave).
    static let slack = 1 << 20

    /// The spatial size and the volume count a header's dim declares.
    private static func shape(_ h: Header, file: URL) throws -> (spatial: [Int], volumes: Int) {
        let rank = h.dim[0]
        guard (1...7).contains(rank) else { throw DataError(file: file, "corrupt header: dim[0] (the rank) is \(rank), expected 1 to 7") }
        let spatial: [Int]
        switch rank {
        case 1: spatial = [h.dim[1], 1]
        case 2: spatial = [h.dim[1], h.dim[2]]
        default: spatial = [h.dim[1], h.dim[2], h.dim[3]]
        }
        let volumes = rank > 3 ? try DeclaredSize.elements(Array(h.dim[4...rank]), file: file) : 1
        return (spatial, volumes)
    }

    /// What a header declares, checked: the shape, the sample type, and the samples and bytes of
    /// the image. Shared by the read's inflation limit and by decoding.
    struct Layout {
        let spatial: [Int], volumes: Int, sample: SampleType, perVoxel: Int, voxelsPerVolume: Int, samples: Int, byteCount: Int

        /// The type of an image of RGB(A) voxels: RGB or RGBA for one volume, else its channels' uint8.
        var interleavedPixelType: PixelType { volumes == 1 ? (perVoxel == 3 ? .rgb8 : .rgba8) : .uint8 }
    }

    static func layout(_ h: Header, file: URL) throws -> Layout {
        let (spatial, volumes) = try shape(h, file: file)
        let (sample, perVoxel) = try sampleType(h, file: file)
        let voxelsPerVolume = try DeclaredSize.elements(spatial, file: file)
        let samples = try DeclaredSize.elements([voxelsPerVolume, volumes, perVoxel], file: file)
        return Layout(spatial: spatial, volumes: volumes, sample: sample, perVoxel: perVoxel, voxelsPerVolume: voxelsPerVolume,
                      samples: samples, byteCount: try DeclaredSize.bytes(samples, of: sample.byteCount, file: file))
    }

    /// The .img (or .img.gz) next to a .hdr.
    private static func imageFile(pairedWith url: URL) throws -> URL {
        let name = url.lastPathComponent
        let stem = String(name.dropLast(ImageIO.fileEnding(of: url).count))
        let directory = url.deletingLastPathComponent()
        for ending in [".img", ".IMG", ".Img", ".img.gz", ".IMG.GZ", ".img.GZ"] {
            let candidate = directory.appendingPathComponent(stem + ending)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        throw DataError(file: url, "the image file \(stem).img that goes with this header does not exist")
    }

    /// The sample type of a header's datatype and the samples per voxel (3 for RGB, 4 for RGBA).
    private static func sampleType(_ h: Header, file: URL) throws -> (SampleType, Int) {
        switch h.datatype {
        case 2: return (.uint8, 1)
        case 4: return (.int16, 1)
        case 8: return (.int32, 1)
        case 16: return (.float32, 1)
        case 64: return (.float64, 1)
        case 128: return (.uint8, 3)
        case 256: return (.int8, 1)
        case 512: return (.uint16, 1)
        case 768: return (.uint32, 1)
        case 1024: return (.int64, 1)
        case 1280: return (.uint64, 1)
        case 2304: return (.uint8, 4)
        default:
            let names = [1: " (binary)", 32: " (complex64)", 1536: " (float128)", 1792: " (complex128)", 2048: " (complex256)"]
            throw DataError(file: file, "unsupported NIfTI datatype \(h.datatype)\(names[h.datatype] ?? "")")
        }
    }

    private static func decode(_ h: Header, data: Data, offset: Int, file: URL) throws -> MedicalImage {
        let layout = try layout(h, file: file)
        let (spatial, volumes, sample, perVoxel) = (layout.spatial, layout.volumes, layout.sample, layout.perVoxel)
        let (voxelsPerVolume, samples, byteCount) = (layout.voxelsPerVolume, layout.samples, layout.byteCount)
        let available = max(0, data.count - offset)
        guard available >= byteCount else {
            throw DataError(file: file, "truncated: header says \(byteCount) voxel bytes, file has \(available)")
        }
        var values = data.withUnsafeBytes {
            decodeSamples($0, offset: offset, count: samples, type: sample, bigEndian: h.bigEndian)
        }
        var channels = volumes
        var pixelType = sample.pixelType
        if perVoxel > 1 {
            // RGB(A) voxels are interleaved within each volume.
            let volumeSamples = voxelsPerVolume * perVoxel
            var planar = [Float]()
            planar.reserveCapacity(values.count)
            for v in 0..<volumes {
                planar += planarFromInterleaved(Array(values[(v * volumeSamples)..<((v + 1) * volumeSamples)]), channels: perVoxel)
            }
            values = planar
            channels = volumes * perVoxel
            pixelType = layout.interleavedPixelType
        } else if let (slope, inter) = scaling(h) {
            var low = Float.infinity, high = -Float.infinity
            values.withUnsafeMutableBufferPointer { v in
                for i in v.indices {
                    let x = Float(Double(v[i]) * slope + inter)
                    v[i] = x
                    low = min(low, x)
                    high = max(high, x)
                }
            }
            pixelType = scaledPixelType(raw: sample, slope: slope, inter: inter, low: low, high: high)
        }
        return MedicalImage(size: spatial, channels: channels, voxels: values, pixelType: pixelType,
                            geometry: geometry(h, dims: spatial.count))
    }

    /// Scaled integers stay integers when slope and intercept are whole numbers (a CT stored as
    /// uint16 with intercept -1024): the stored type if the values still fit, else int16 or int32.
    private static func scaledPixelType(raw: SampleType, slope: Double, inter: Double, low: Float, high: Float) -> PixelType {
        if raw == .float64 { return .float64 }
        guard raw.isInteger, slope == slope.rounded(), inter == inter.rounded() else { return .float32 }
        let (lo, hi) = (Double(low), Double(high))
        func fits(_ t: PixelType) -> Bool {
            switch t {
            case .uint8: return lo >= 0 && hi <= Double(UInt8.max)
            case .int8: return lo >= Double(Int8.min) && hi <= Double(Int8.max)
            case .uint16: return lo >= 0 && hi <= Double(UInt16.max)
            case .int16: return lo >= Double(Int16.min) && hi <= Double(Int16.max)
            case .uint32: return lo >= 0 && hi <= Double(UInt32.max)
            case .int32: return lo >= Double(Int32.min) && hi <= Double(Int32.max)
            default: return false
            }
        }
        for candidate in [raw.pixelType, .int16, .int32] where fits(candidate) { return candidate }
        return .float32
    }

    // MARK: Writing

    /// Writes .nii.gz (gzip level 1) or .nii. The pixel type decides the datatype; channels
    /// become the 4th dimension (RGB/RGBA images with channels 3/4 are written as RGB24/RGBA32).
    /// sform_code and qform_code are the read file's (`ImageGeometry.niftiSformCode`/`niftiQformCode`)
    /// when it had any, else 1 (scanner). The sform and qform hold `niftiAffine` unchanged when it still matches the geometry's
    /// origin, direction and spacing, else an affine built from the geometry. NIfTI-2 is written
    /// when a dimension exceeds NIfTI-1's 32767, or when `version` is 2.
    public static func write(_ image: MedicalImage, to url: URL, version: Int? = nil) throws {
        let ending = ImageIO.fileEnding(of: url)
        guard ending == ".nii.gz" || ending == ".nii" else {
            throw DataError(file: url, "NIfTI files are written as .nii or .nii.gz, not \"\(ending)\"")
        }
        guard (1...3).contains(image.dims) else {
            throw DataError(file: url, "cannot write a \(image.dims)-dimensional image as NIfTI")
        }
        let rgb = image.pixelType == .rgb8 && image.channels == 3
        let rgba = image.pixelType == .rgba8 && image.channels == 4
        let sample = SampleType(image.pixelType)
        let datatype: Int
        switch (rgb, rgba, sample) {
        case (true, _, _): datatype = 128
        case (_, true, _): datatype = 2304
        case (_, _, .uint8): datatype = 2
        case (_, _, .int8): datatype = 256
        case (_, _, .uint16): datatype = 512
        case (_, _, .int16): datatype = 4
        case (_, _, .uint32): datatype = 768
        case (_, _, .int32): datatype = 8
        case (_, _, .float64): datatype = 64
        default: datatype = 16
        }
        let perVoxel = rgb ? 3 : rgba ? 4 : 1
        var dim = [Int](repeating: 1, count: 8)
        let spatial = image.size + Array(repeating: 1, count: 3 - image.dims)
        if perVoxel == 1 && image.channels > 1 {
            dim[0] = 4
            dim[1...3] = spatial[0...2]
            dim[4] = image.channels
        } else {
            dim[0] = max(image.dims, 2)
            for i in 0..<3 { dim[i + 1] = spatial[i] }
        }
        let needsVersion2 = dim[1...].contains { $0 > 32767 }
        let version = needsVersion2 ? 2 : (version ?? 1)

        let a = affineForWriting(image.geometry)
        var pixdim = [Double](repeating: 1, count: 8)
        var linear = [Double](repeating: 0, count: 9)
        for row in 0..<3 { for col in 0..<3 { linear[row * 3 + col] = a[row * 4 + col] } }
        for col in 0..<3 {
            let norm = (0..<3).map { linear[$0 * 3 + col] * linear[$0 * 3 + col] }.reduce(0, +).squareRoot()
            pixdim[col + 1] = norm > 0 ? norm : 1
            if norm > 0 { for row in 0..<3 { linear[row * 3 + col] /= norm } }
        }
        let q = quaternion(fromRotation: linear)
        pixdim[0] = q.qfac

        var h = Header()
        h.version = version
        h.dim = dim
        h.datatype = datatype
        h.pixdim = pixdim
        h.voxOffset = version == 2 ? 544 : 352
        h.sclSlope = 1
        h.sclInter = 0
        // The file's own codes (e.g. sform 4 = MNI) when it came from NIfTI with one set, else scanner (1).
        let keptCodes = [image.geometry.niftiSformCode ?? 0, image.geometry.niftiQformCode ?? 0]
        let codesKept = keptCodes.contains { $0 > 0 } && keptCodes.allSatisfy { (0...32767).contains($0) }
        h.sformCode = codesKept ? keptCodes[0] : 1
        h.qformCode = codesKept ? keptCodes[1] : 1
        h.quatern = [q.b, q.c, q.d]
        h.qoffset = [a[3], a[7], a[11]]
        h.srow = (0..<3).map { Array(a[($0 * 4)..<($0 * 4 + 4)]) }

        var bytes = encodeHeader(h, bitpix: sample.byteCount * perVoxel * 8)
        var values = image.voxels
        if perVoxel > 1 { values = interleavedFromPlanar(values, channels: perVoxel) }
        bytes += encodeSamples(values, type: perVoxel > 1 ? .uint8 : sample)
        if ending == ".nii.gz" {
            try writeAtomically(to: url) { temporary in
                guard bytes.withUnsafeBytes({ mc_gz_write_file(temporary, $0.baseAddress, $0.count, 1) }) == 0 else {
                    throw DataError(file: url, codecError())
                }
            }
        } else {
            try writeDataAtomically([Data(bytes)], to: url)
        }
    }
}
