import Foundation

/// NRRD images: attached (.nrrd) and detached (.nhdr + `data file`) headers; raw, gzip, ascii and
/// hex encodings. Geometry is returned in LPS like ITK: RAS or LAS spaces are converted.
/// Axes without a space direction (`none`) or with a non-spatial kind (vector, RGB-color, list,
/// ...) become channels.
public enum NRRD {
    // MARK: Reading

    /// A detached header may name any file, and its bytes would end up in converted output: only
    /// files in the header's folder (or below it) are read, unless MEDSEG_NRRD_ANY_DATA_FILE=1.
    static func refuseDataFileOutsideFolder(_ dataFile: URL, named name: String, header: URL) throws {
        if ProcessInfo.processInfo.environment["MEDSEG_NRRD_ANY_DATA_FILE"] == "1" { return }
        let folder = InputFiles.canonicalPath(header.deletingLastPathComponent()) + "/"
        guard InputFiles.canonicalPath(dataFile).hasPrefix(folder) else {
            throw DataError(file: header, "its data file \(name) lies outside the header's folder; MedSeg reads detached data only beside its header (MEDSEG_NRRD_ANY_DATA_FILE=1 allows any file)")
        }
    }

    public static func read(_ url: URL) throws -> MedicalImage {
        let file = try readFileRaw(url)
        // The header ends at the first empty line (or at the end of a detached header).
        let (lines, dataStart) = try headerLines(file, url: url)
        guard let magic = lines.first, magic.hasPrefix("NRRD000"), magic.count == 8 else {
            throw DataError(file: url, "not a NRRD file (it does not start with NRRD000x)")
        }
        var fields: [String: String] = [:]
        for line in lines.dropFirst() {
            if line.hasPrefix("#") || line.isEmpty { continue }
            if let range = line.range(of: ": ") {
                let key = line[..<range.lowerBound].lowercased().trimmingCharacters(in: .whitespaces)
                fields[key] = line[range.upperBound...].trimmingCharacters(in: .whitespaces)
            } else if line.contains(":=") {
                continue // key/value pairs: free-form metadata
            } else if line.hasSuffix(":") {
                fields[String(line.dropLast()).lowercased()] = ""
            } else {
                throw DataError(file: url, "corrupt NRRD header line \"\(line)\"")
            }
        }
        func field(_ names: String...) -> String? { names.lazy.compactMap { fields[$0] }.first }

        guard let typeName = field("type") else { throw DataError(file: url, "NRRD header has no type field") }
        guard let sample = sampleType(typeName) else { throw DataError(file: url, "unsupported NRRD type \"\(typeName)\"") }
        guard let dimension = field("dimension").flatMap({ Int($0) }), dimension >= 1 else {
            throw DataError(file: url, "NRRD header has no valid dimension field")
        }
        guard let sizes = field("sizes").map({ $0.split(separator: " ").compactMap { Int($0) } }),
              sizes.count == dimension, sizes.allSatisfy({ $0 >= 1 }) else {
            throw DataError(file: url, "NRRD sizes do not give \(dimension) positive sizes")
        }
        let encoding = (field("encoding") ?? "raw").lowercased()
        let bigEndian = (field("endian") ?? "little").lowercased() == "big"

        // Geometry fields.
        let kinds = field("kinds")?.split(separator: " ").map { $0.lowercased() }
        let directions = try field("space directions").map { try parseDirections($0, count: dimension, url: url) }
        let space = field("space")?.lowercased()
        var origin = try field("space origin").map { try parseVector($0, url: url) }
        let spacings = field("spacings")?.split(separator: " ").map { Double($0) ?? .nan }

        // Which axes are spatial.
        var spatialAxes: [Int]
        if let directions {
            spatialAxes = (0..<dimension).filter { directions[$0] != nil }
        } else if let kinds, kinds.count == dimension {
            spatialAxes = (0..<dimension).filter { kinds[$0] == "domain" || kinds[$0] == "space" }
            if spatialAxes.isEmpty { spatialAxes = Array(0..<min(dimension, 3)) }
        } else {
            spatialAxes = Array(0..<min(dimension, 3))
        }
        guard (1...3).contains(spatialAxes.count) else {
            throw DataError(file: url, "NRRD image has \(spatialAxes.count) spatial axes; MedSeg reads 1 to 3")
        }
        let channelAxes = (0..<dimension).filter { !spatialAxes.contains($0) }

        // Data.
        let count = try DeclaredSize.elements(sizes, file: url, what: "sizes")
        let byteCount = try DeclaredSize.bytes(count, of: sample.byteCount, file: url)
        // Held at once: the (inflated) samples, their float32 values and a reordered copy. Checked
        // once the encoding's own limits have found a lying header.
        func requireMemory() throws {
            try MemoryBudget.require(try DeclaredSize.bytes(count, of: 8, plus: byteCount, file: url),
                                     for: "reading its \(sizes.map(String.init).joined(separator: " x ")) samples whole", file: url)
        }
        var payload: Data
        var payloadFile = url
        if let dataFile = field("data file", "datafile") {
            let parts = dataFile.split(separator: " ")
            guard parts.count == 1, dataFile != "LIST" else {
                throw DataError(file: url, "NRRD data split over several files (\"data file: \(dataFile)\") is not supported")
            }
            payloadFile = dataFile.hasPrefix("/") ? URL(fileURLWithPath: dataFile)
                : url.deletingLastPathComponent().appendingPathComponent(dataFile)
            guard FileManager.default.fileExists(atPath: payloadFile.path) else {
                throw DataError(file: url, "the data file \(dataFile) it names does not exist")
            }
            try refuseDataFileOutsideFolder(payloadFile, named: dataFile, header: url)
            payload = try readFileRaw(payloadFile)
        } else {
            guard let dataStart else { throw DataError(file: url, "truncated: the NRRD header never ends (no empty line)") }
            payload = file.subdata(in: dataStart..<file.count)
        }
        if let lineSkip = field("line skip", "lineskip").flatMap({ Int($0) }), lineSkip > 0 {
            var skipped = 0, index = payload.startIndex
            while skipped < lineSkip, index < payload.endIndex {
                if payload[index] == 0x0A { skipped += 1 }
                index += 1
            }
            payload = payload.subdata(in: index..<payload.endIndex)
        }
        let byteSkip = field("byte skip", "byteskip").flatMap { Int($0) } ?? 0

        var values: [Float]
        switch encoding {
        case "raw":
            let start = byteSkip == -1 ? payload.count - byteCount : byteSkip
            guard start >= 0, payload.count - start >= byteCount else {
                throw DataError(file: payloadFile, "truncated: header says \(byteCount) voxel bytes, file has \(max(0, payload.count - max(start, 0)))")
            }
            try requireMemory()
            values = payload.withUnsafeBytes { decodeSamples($0, offset: start, count: count, type: sample, bigEndian: bigEndian) }
        case "gzip", "gz":
            let expected = try DeclaredSize.bytes(count, of: sample.byteCount, plus: max(byteSkip, 0), file: url)
            try DeclaredSize.refuseUnless(expected, fitsIn: payload.count, compressed: true, file: url)
            try requireMemory()
            let inflated = try inflateBytes(payload, limit: byteSkip == -1 ? nil : expected, file: payloadFile)
            let start = byteSkip == -1 ? inflated.count - byteCount : byteSkip
            guard start >= 0, inflated.count - start >= byteCount else {
                throw DataError(file: payloadFile, "truncated: header says \(byteCount) voxel bytes, data has \(max(0, inflated.count - max(start, 0)))")
            }
            values = inflated.withUnsafeBytes { decodeSamples($0, offset: start, count: count, type: sample, bigEndian: bigEndian) }
        case "ascii", "txt", "text":
            // Every value takes a digit and a separator at least.
            try DeclaredSize.refuseUnless(count, fitsIn: (payload.count + 1) / 2, file: url, unit: "values")
            try requireMemory()
            values = try parseASCII(payload, count: count, url: payloadFile)
        case "hex":
            try DeclaredSize.refuseUnless(byteCount, fitsIn: payload.count / 2, file: url)
            try requireMemory()
            let bytes = try parseHex(payload, byteCount: byteCount, url: payloadFile)
            values = bytes.withUnsafeBytes { decodeSamples($0, count: count, type: sample, bigEndian: bigEndian) }
        default:
            throw DataError(file: url, "unsupported NRRD encoding \"\(encoding)\"")
        }

        // Reorder so channel axes are slowest (MedicalImage is channel-major).
        let spatialSizes = spatialAxes.map { sizes[$0] }
        let channels = channelAxes.map { sizes[$0] }.reduce(1, *)
        if !channelAxes.isEmpty && channelAxes != Array((dimension - channelAxes.count)..<dimension) {
            values = permute(values, sizes: sizes, order: spatialAxes + channelAxes)
        }

        // Geometry (LPS).
        let n = spatialAxes.count
        let flip: [Double]
        switch space {
        case "right-anterior-superior", "ras": flip = [-1, -1, 1]
        case "left-anterior-superior", "las": flip = [1, -1, 1]
        case "right-posterior-superior", "rps": flip = [-1, 1, 1]
        default: flip = [1, 1, 1]
        }
        var spacing = [Double](repeating: 1, count: n)
        var direction = [Double](repeating: 0, count: n * n)
        for i in 0..<n { direction[i * n + i] = 1 }
        if let directions {
            for (col, axis) in spatialAxes.enumerated() {
                let v = directions[axis]!
                let norm = v.map { $0 * $0 }.reduce(0, +).squareRoot()
                spacing[col] = norm > 0 ? norm : 1
                for row in 0..<n {
                    let component = row < v.count ? v[row] * (row < 3 ? flip[row] : 1) : 0
                    direction[row * n + col] = norm > 0 ? component / norm : (row == col ? 1 : 0)
                }
            }
        } else if let spacings, spacings.count == dimension {
            for (col, axis) in spatialAxes.enumerated() where spacings[axis].isFinite && spacings[axis] > 0 {
                spacing[col] = spacings[axis]
            }
        }
        if let o = origin {
            origin = (0..<n).map { $0 < o.count ? o[$0] * ($0 < 3 ? flip[$0] : 1) : 0 }
        }
        var size = spatialSizes
        var geometry = ImageGeometry(spacing: spacing, origin: origin, direction: direction)
        if n == 1 { // a line: make it a 2D image of height 1
            size.append(1)
            geometry = ImageGeometry(spacing: spacing + [1], origin: (origin ?? [0]) + [0], direction: [direction[0], 0, 0, 1])
        }
        var pixelType = sample.pixelType
        if sample == .uint8, let kinds, channelAxes.count == 1 {
            let kind = kinds[channelAxes[0]]
            if kind == "rgb-color" && channels == 3 { pixelType = .rgb8 }
            if kind == "rgba-color" && channels == 4 { pixelType = .rgba8 }
        }
        return MedicalImage(size: size, channels: channels, voxels: values, pixelType: pixelType, geometry: geometry)
    }

    private static func headerLines(_ file: Data, url: URL) throws -> ([String], Int?) {
        var lines: [String] = []
        var lineStart = file.startIndex
        var index = file.startIndex
        let limit = file.endIndex
        while index < limit {
            if file[index] == 0x0A {
                var end = index
                if end > lineStart && file[end - 1] == 0x0D { end -= 1 }
                let line = String(decoding: file[lineStart..<end], as: UTF8.self)
                if lines.isEmpty && !line.hasPrefix("NRRD") {
                    throw DataError(file: url, "not a NRRD file (it does not start with NRRD000x)")
                }
                if line.isEmpty { return (lines, index + 1) }
                lines.append(line)
                lineStart = index + 1
            }
            index += 1
        }
        if lineStart < limit {
            let line = String(decoding: file[lineStart..<limit], as: UTF8.self)
            if lines.isEmpty && !line.hasPrefix("NRRD") {
                throw DataError(file: url, file.isEmpty ? "empty file" : "not a NRRD file (it does not start with NRRD000x)")
            }
            lines.append(line)
        }
        if lines.isEmpty { throw DataError(file: url, "empty file") }
        return (lines, nil)
    }

    static func sampleType(_ name: String) -> SampleType? {
        switch name.lowercased().split(separator: " ").joined(separator: " ") {
        case "signed char", "int8", "int8_t": return .int8
        case "uchar", "unsigned char", "uint8", "uint8_t": return .uint8
        case "short", "short int", "signed short", "signed short int", "int16", "int16_t": return .int16
        case "ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t": return .uint16
        case "int", "signed int", "int32", "int32_t": return .int32
        case "uint", "unsigned int", "uint32", "uint32_t": return .uint32
        case "longlong", "long long", "long long int", "signed long long", "signed long long int", "int64", "int64_t":
            return .int64
        case "ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t": return .uint64
        case "float": return .float32
        case "double": return .float64
        default: return nil
        }
    }

    private static func parseVector(_ text: String, url: URL) throws -> [Double] {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard trimmed.hasPrefix("("), trimmed.hasSuffix(")") else {
            throw DataError(file: url, "corrupt NRRD vector \"\(text)\"")
        }
        let parts = trimmed.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let values = parts.compactMap { Double($0) }
        guard values.count == parts.count, !values.isEmpty else {
            throw DataError(file: url, "corrupt NRRD vector \"\(text)\"")
        }
        guard values.allSatisfy(\.isFinite) else {
            throw DataError(file: url, "corrupt header: the NRRD vector \"\(text)\" holds NaN or infinity (geometry must be finite numbers)")
        }
        return values
    }

    private static func parseDirections(_ text: String, count: Int, url: URL) throws -> [[Double]?] {
        var result: [[Double]?] = []
        var rest = Substring(text)
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" }
            if rest.isEmpty { break }
            if rest.lowercased().hasPrefix("none") {
                result.append(nil)
                rest = rest.dropFirst(4)
            } else if rest.hasPrefix("("), let close = rest.firstIndex(of: ")") {
                result.append(try parseVector(String(rest[...close]), url: url))
                rest = rest[rest.index(after: close)...]
            } else {
                throw DataError(file: url, "corrupt NRRD space directions \"\(text)\"")
            }
        }
        guard result.count == count else {
            throw DataError(file: url, "NRRD space directions give \(result.count) axes, dimension is \(count)")
        }
        return result
    }

    private static func parseASCII(_ data: Data, count: Int, url: URL) throws -> [Float] {
        var values = [Float]()
        values.reserveCapacity(count)
        var token = [UInt8]()
        func flush() throws {
            guard !token.isEmpty else { return }
            guard let v = Double(String(decoding: token, as: UTF8.self)) else {
                throw DataError(file: url, "corrupt NRRD ascii data: \"\(String(decoding: token, as: UTF8.self))\" is not a number")
            }
            values.append(Float(v))
            token.removeAll(keepingCapacity: true)
        }
        for byte in data {
            if byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09 || byte == 0x2C {
                try flush()
                if values.count == count { break }
            } else {
                token.append(byte)
            }
        }
        if values.count < count { try flush() }
        guard values.count >= count else {
            throw DataError(file: url, "truncated: header says \(count) values, ascii data has \(values.count)")
        }
        return Array(values.prefix(count))
    }

    private static func parseHex(_ data: Data, byteCount: Int, url: URL) throws -> [UInt8] {
        var bytes = [UInt8]()
        bytes.reserveCapacity(byteCount)
        var high: UInt8?
        for c in data where bytes.count < byteCount {
            let nibble: UInt8
            switch c {
            case 0x30...0x39: nibble = c - 0x30
            case 0x41...0x46: nibble = c - 0x41 + 10
            case 0x61...0x66: nibble = c - 0x61 + 10
            case 0x20, 0x0A, 0x0D, 0x09: continue
            default: throw DataError(file: url, "corrupt NRRD hex data")
            }
            if let h = high { bytes.append(h << 4 | nibble); high = nil } else { high = nibble }
        }
        guard bytes.count == byteCount else {
            throw DataError(file: url, "truncated: header says \(byteCount) voxel bytes, hex data has \(bytes.count)")
        }
        return bytes
    }

    /// Reorders an array with axis sizes `sizes` (first fastest) so the axes come in `order`.
    private static func permute(_ values: [Float], sizes: [Int], order: [Int]) -> [Float] {
        let d = sizes.count
        var strides = [Int](repeating: 1, count: d)
        for i in 1..<d { strides[i] = strides[i - 1] * sizes[i - 1] }
        let newSizes = order.map { sizes[$0] }
        let newStrides = order.map { strides[$0] } // source stride of each destination axis
        var out = [Float](repeating: 0, count: values.count)
        var index = [Int](repeating: 0, count: d)
        var source = 0
        for destination in 0..<values.count {
            out[destination] = values[source]
            var axis = 0
            while axis < d {
                index[axis] += 1
                source += newStrides[axis]
                if index[axis] < newSizes[axis] { break }
                source -= newStrides[axis] * newSizes[axis]
                index[axis] = 0
                axis += 1
            }
        }
        return out
    }

    // MARK: Writing

    /// Writes an attached, gzip-encoded NRRD in LPS space; channels are the last (slowest) axis,
    /// with kind RGB-color / RGBA-color for rgb8 / rgba8 images and `list` otherwise.
    public static func write(_ image: MedicalImage, to url: URL) throws {
        guard ImageIO.fileEnding(of: url) == ".nrrd" else {
            throw DataError(file: url, "NRRD files are written as .nrrd, not \"\(ImageIO.fileEnding(of: url))\"")
        }
        let sample = SampleType(image.pixelType)
        let typeName: String
        switch sample {
        case .uint8: typeName = "uint8"
        case .int8: typeName = "int8"
        case .uint16: typeName = "uint16"
        case .int16: typeName = "int16"
        case .uint32: typeName = "uint32"
        case .int32: typeName = "int32"
        case .uint64: typeName = "uint64"
        case .int64: typeName = "int64"
        case .float32: typeName = "float"
        case .float64: typeName = "double"
        }
        let g = image.geometry
        let n = image.dims
        let multi = image.channels > 1
        func vector(_ v: [Double]) -> String { "(" + v.map(formatNumber).joined(separator: ",") + ")" }
        var directions: [String] = (0..<n).map { col in
            vector((0..<n).map { row in g.direction[row * n + col] * g.spacing[col] })
        }
        var kinds = Array(repeating: "domain", count: n)
        var sizes = image.size.map(String.init)
        if multi {
            directions.append("none")
            kinds.append(image.pixelType == .rgb8 && image.channels == 3 ? "RGB-color"
                         : image.pixelType == .rgba8 && image.channels == 4 ? "RGBA-color" : "list")
            sizes.append(String(image.channels))
        }
        var header = "NRRD0004\n# Complete NRRD file format specification at:\n# http://teem.sourceforge.net/nrrd/format.html\n"
        header += "type: \(typeName)\ndimension: \(n + (multi ? 1 : 0))\n"
        header += n == 3 ? "space: left-posterior-superior\n" : "space dimension: \(n)\n"
        header += "sizes: \(sizes.joined(separator: " "))\n"
        header += "space directions: \(directions.joined(separator: " "))\n"
        header += "kinds: \(kinds.joined(separator: " "))\n"
        header += "endian: little\nencoding: gzip\n"
        header += "space origin: \(vector(Array(g.origin.prefix(n))))\n\n"
        let payload = try gzipBytes(encodeSamples(image.voxels, type: sample), level: 1, file: url)
        try writeDataAtomically([Data(header.utf8), payload], to: url)
    }
}
