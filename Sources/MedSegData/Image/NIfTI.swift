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
            pixelType = layout.volumes == 1 ? (layout.perVoxel == 3 ? .rgb8 : .rgba8) : .uint8
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
            pixelType = volumes == 1 ? (perVoxel == 3 ? .rgb8 : .rgba8) : .uint8
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

    /// The affine the header describes (4x4 row-major, RAS).
    static func affine(_ h: Header) -> [Double] {
        let spacing = (1...3).map { i -> Double in
            let p = abs(h.pixdim[i])
            return p.isFinite && p > 0 ? p : 1
        }
        if h.sformCode > 0 {
            return h.srow[0] + h.srow[1] + h.srow[2] + [0, 0, 0, 1]
        }
        if h.qformCode > 0 {
            let qfac: Double = h.pixdim[0] < 0 ? -1 : 1
            let r = rotation(fromQuaternion: h.quatern)
            let scale = [spacing[0], spacing[1], qfac * spacing[2]]
            var m = [Double](repeating: 0, count: 16)
            for row in 0..<3 {
                for col in 0..<3 { m[row * 4 + col] = r[row * 3 + col] * scale[col] }
                m[row * 4 + 3] = h.qoffset[row]
            }
            m[15] = 1
            return m
        }
        return [spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1]
    }

    private static func geometry(_ h: Header, dims: Int) -> ImageGeometry {
        let a = affine(h)
        let (origin, direction) = lpsOriginDirection(a)
        let spacing = (1...3).map { i -> Double in
            let p = abs(h.pixdim[i])
            return p.isFinite && p > 0 ? p : 1
        }
        if dims == 2 {
            return ImageGeometry(spacing: Array(spacing[0..<2]), origin: Array(origin[0..<2]),
                                 direction: [direction[0], direction[1], direction[3], direction[4]], niftiAffine: a,
                                 niftiSformCode: h.sformCode, niftiQformCode: h.qformCode)
        }
        return ImageGeometry(spacing: spacing, origin: origin, direction: direction, niftiAffine: a,
                             niftiSformCode: h.sformCode, niftiQformCode: h.qformCode)
    }

    /// ITK's origin and direction (LPS) for a RAS affine: the first two rows change sign and the
    /// columns of the 3x3 part are normalised.
    static func lpsOriginDirection(_ a: [Double]) -> (origin: [Double], direction: [Double]) {
        let flip: [Double] = [-1, -1, 1]
        let origin = (0..<3).map { flip[$0] * a[$0 * 4 + 3] }
        var direction = [Double](repeating: 0, count: 9)
        for col in 0..<3 {
            let column = (0..<3).map { flip[$0] * a[$0 * 4 + col] }
            let norm = (column.map { $0 * $0 }.reduce(0, +)).squareRoot()
            for row in 0..<3 { direction[row * 3 + col] = norm > 0 ? column[row] / norm : (row == col ? 1 : 0) }
        }
        return (origin, direction)
    }

    /// nifti1's quaternion to rotation matrix (row-major 3x3); a = sqrt(1 - b² - c² - d²).
    static func rotation(fromQuaternion q: [Double]) -> [Double] {
        var (b, c, d) = (q[0], q[1], q[2])
        var a = 1 - (b * b + c * c + d * d)
        if a < 1e-7 {
            let n = (b * b + c * c + d * d).squareRoot()
            if n > 0 { (b, c, d) = (b / n, c / n, d / n) }
            a = 0
        } else {
            a = a.squareRoot()
        }
        return [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
                2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
                2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]
    }

    /// The quaternion (b, c, d) and qfac of a rotation-like 3x3 matrix (row-major), made
    /// orthonormal first (polar decomposition) so sheared matrices get the nearest rotation.
    static func quaternion(fromRotation m: [Double]) -> (b: Double, c: Double, d: Double, qfac: Double) {
        var r = orthonormalized(m)
        var qfac = 1.0
        if determinant3(r) < 0 {
            qfac = -1
            for row in 0..<3 { r[row * 3 + 2] = -r[row * 3 + 2] }
        }
        let (r11, r12, r13) = (r[0], r[1], r[2])
        let (r21, r22, r23) = (r[3], r[4], r[5])
        let (r31, r32, r33) = (r[6], r[7], r[8])
        var a = r11 + r22 + r33 + 1, b: Double, c: Double, d: Double
        if a > 0.5 {
            a = 0.5 * a.squareRoot()
            b = 0.25 * (r32 - r23) / a
            c = 0.25 * (r13 - r31) / a
            d = 0.25 * (r21 - r12) / a
        } else {
            let xd = 1 + r11 - (r22 + r33), yd = 1 + r22 - (r11 + r33), zd = 1 + r33 - (r11 + r22)
            if xd > 1 {
                b = 0.5 * xd.squareRoot()
                c = 0.25 * (r12 + r21) / b
                d = 0.25 * (r13 + r31) / b
                a = 0.25 * (r32 - r23) / b
            } else if yd > 1 {
                c = 0.5 * yd.squareRoot()
                b = 0.25 * (r12 + r21) / c
                d = 0.25 * (r23 + r32) / c
                a = 0.25 * (r13 - r31) / c
            } else {
                d = 0.5 * zd.squareRoot()
                b = 0.25 * (r13 + r31) / d
                c = 0.25 * (r23 + r32) / d
                a = 0.25 * (r21 - r12) / d
            }
            if a < 0 { (b, c, d) = (-b, -c, -d) }
        }
        return (b, c, d, qfac)
    }

    private static func determinant3(_ m: [Double]) -> Double {
        m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6])
    }

    /// Nearest orthogonal matrix by the iteration X <- (X + X^-T) / 2.
    private static func orthonormalized(_ m: [Double]) -> [Double] {
        var x = m
        for _ in 0..<30 {
            let det = determinant3(x)
            guard abs(det) > 1e-12 else { break }
            // inverse-transpose = cofactor matrix / det
            let cof: [Double] = [
                x[4] * x[8] - x[5] * x[7], -(x[3] * x[8] - x[5] * x[6]), x[3] * x[7] - x[4] * x[6],
                -(x[1] * x[8] - x[2] * x[7]), x[0] * x[8] - x[2] * x[6], -(x[0] * x[7] - x[1] * x[6]),
                x[1] * x[5] - x[2] * x[4], -(x[0] * x[5] - x[2] * x[3]), x[0] * x[4] - x[1] * x[3],
            ]
            var change = 0.0
            for i in 0..<9 {
                let next = 0.5 * (x[i] + cof[i] / det)
                change = max(change, abs(next - x[i]))
                x[i] = next
            }
            if change < 1e-15 { break }
        }
        return x
    }

    // MARK: Header

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

    /// `niftiAffine` when it still describes the geometry, else the geometry's own affine.
    static func affineForWriting(_ g: ImageGeometry) -> [Double] {
        let n = g.dims
        // The geometry, padded to 3D.
        var spacing = [1.0, 1, 1], origin = [0.0, 0, 0]
        var direction: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
        for i in 0..<min(n, 3) {
            spacing[i] = g.spacing[i]
            if i < g.origin.count { origin[i] = g.origin[i] }
            for j in 0..<min(n, 3) where i * n + j < g.direction.count { direction[i * 3 + j] = g.direction[i * n + j] }
        }
        if let a = g.niftiAffine, a.count == 16 {
            let (o, d) = lpsOriginDirection(a)
            var consistent = true
            for i in 0..<min(n, 3) {
                let norm = (0..<3).map { a[$0 * 4 + i] * a[$0 * 4 + i] }.reduce(0, +).squareRoot()
                if abs(norm - spacing[i]) > 1e-4 * max(1, spacing[i]) { consistent = false }
                if abs(o[i] - origin[i]) > 1e-4 * max(1, abs(origin[i])) { consistent = false }
                for j in 0..<min(n, 3) where abs(d[i * 3 + j] - direction[i * 3 + j]) > 1e-4 { consistent = false }
            }
            if consistent { return a }
        }
        let flip: [Double] = [-1, -1, 1]
        var a = [Double](repeating: 0, count: 16)
        for row in 0..<3 {
            for col in 0..<3 { a[row * 4 + col] = flip[row] * direction[row * 3 + col] * spacing[col] }
            a[row * 4 + 3] = flip[row] * origin[row]
        }
        a[15] = 1
        return a
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
