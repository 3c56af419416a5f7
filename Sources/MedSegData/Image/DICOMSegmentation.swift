import CDicomSeg
import Foundation

/// Label maps as binary DICOM Segmentation objects (SEG), encoded by DCMTK's dcmseg: segment n is
/// the voxels of label value n, each frame one slice of one segment (only slices that hold it),
/// referencing the instance of the source series it lies on. Reading gives the label map back,
/// value n where segment n is set.
public enum DICOMSegmentation {
    /// Writes `labels` (in `reference`'s geometry, as `DICOM.read` gives it) as a SEG of
    /// `segments` (segment n describes label value n), replacing `url` atomically. A label map of
    /// another grid than the series', or values without a segment, are refused before anything is
    /// written: the error names the reference file at fault, or no file (the label map's).
    public static func write(labels: MedicalImage, reference: DICOMSeries, segments: [SegmentDescription],
                             description: String = "MedSeg segmentation", to url: URL) throws {
        guard labels.dims == 3, labels.channels == 1 else {
            throw DataError("a SEG is written from one 3D label map, not \(labels.channels) channel(s) of \(labels.dims)D")
        }
        guard !segments.isEmpty else { throw DataError("the label map holds no label above 0: there is no segment to write") }
        var values = [UInt16](repeating: 0, count: labels.voxelCount)
        for (i, v) in labels.voxels.enumerated() {
            guard v >= 0, v <= 65535, v == v.rounded() else {
                throw DataError("the label map holds \(v), not a label (whole numbers 0 to 65535)")
            }
            values[i] = UInt16(v)
        }
        var grid = Self.grid(of: labels)
        // C strings that live until the call returns.
        let texts: [String] = segments.flatMap { [$0.label, $0.category.value, $0.category.scheme, $0.category.meaning,
                                                  $0.type.value, $0.type.scheme, $0.type.meaning] }
        let strings = texts.map { strdup($0)! }
        let files = reference.files.map { strdup($0.path)! }
        defer { (strings + files).forEach { free($0) } }
        let described = segments.indices.map { i -> mds_segment in
            let s = strings[(i * 7)..<(i * 7 + 7)].map { UnsafePointer<CChar>($0) }
            return mds_segment(label: s[0], category: mds_code(value: s[1], scheme: s[2], meaning: s[3]),
                               type: mds_code(value: s[4], scheme: s[5], meaning: s[6]))
        }
        var writer: OpaquePointer?
        let status = files.map { UnsafePointer($0) }.withUnsafeBufferPointer { paths in
            mds_prepare(paths.baseAddress, Int32(paths.count), &grid, values, described, Int32(described.count), description, &writer)
        }
        guard status == 0, let writer else { throw referenceError(String(cString: mds_last_error()), reference) }
        defer { mds_free_writer(writer) }
        try writeAtomically(to: url) { temporary in
            guard mds_save(writer, temporary) == 0 else { throw DataError(file: url, String(cString: mds_last_error())) }
        }
    }

    /// A message of the C layer as an error about the reference file it starts with, if any
    /// (else about no file: the label map as a whole, which the caller names).
    static func referenceError(_ message: String, _ reference: DICOMSeries) -> DataError {
        for file in reference.files where message.hasPrefix(file.path + ": ") {
            return DataError(file: file, String(message.dropFirst(file.path.count + 2)))
        }
        return DataError(message)
    }

    /// A 3D label map's grid as the C layer takes it (shared with the RT Structure Set writer).
    static func grid(of labels: MedicalImage) -> mds_grid {
        var grid = mds_grid()
        let g = labels.geometry, d = g.direction
        grid.size = (Int32(labels.size[0]), Int32(labels.size[1]), Int32(labels.size[2]))
        grid.spacing = (g.spacing[0], g.spacing[1], g.spacing[2])
        grid.origin = (g.origin[0], g.origin[1], g.origin[2])
        grid.direction = (d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8])
        return grid
    }

    /// The segments a label map needs: one per value 1...its largest label.
    public static func segmentCount(of labels: MedicalImage) -> Int {
        Int(labels.voxels.max() ?? 0)
    }

    /// Whether `url` is a file holding a DICOM Segmentation (read only as far as its SOP Class).
    public static func isSegmentation(_ url: URL) -> Bool {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), !isFolder.boolValue,
              let handle = FileHandle(forReadingAtPath: url.path) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 4096) else { return false }
        return head.count > 132 && head[128..<132] == Data("DICM".utf8) && head.range(of: Data("1.2.840.10008.5.1.4.1.1.66.4".utf8)) != nil
    }

    /// A SEG as a label map on the grid its frames span: the SEG's orientation and pixel spacing,
    /// its slice spacing, from the first to the last slice that holds a segment.
    public static func read(_ url: URL) throws -> MedicalImage {
        try withSegmentation(url) { seg in
            let normal = normalOf(seg)
            let along = (0..<Int(seg.frame_count)).map { f in dot(position(seg, f), normal) }
            let low = along.min()!, high = along.max()!
            var step = seg.slice_spacing
            if !(step > 0) {
                let gaps = zip(along.sorted(), along.sorted().dropFirst()).map { $1 - $0 }.filter { $0 > 1e-4 }
                step = gaps.min() ?? 1
            }
            let first = along.firstIndex(of: low)!
            let slices = Int(((high - low) / step).rounded()) + 1
            let o = seg.orientation
            let direction = [o.0, o.3, normal[0], o.1, o.4, normal[1], o.2, o.5, normal[2]]
            let geometry = ImageGeometry(spacing: [seg.pixel_spacing.1, seg.pixel_spacing.0, step], origin: position(seg, first), direction: direction)
            return try labelMap(seg, size: [Int(seg.columns), Int(seg.rows), slices], geometry: geometry, file: url)
        }
    }

    /// A SEG as a label map on `reference`'s grid (the series it was made from, as `DICOM.read`
    /// gives it): frames that lie off that grid, or planes of another orientation, are refused.
    public static func read(_ url: URL, reference: MedicalImage) throws -> MedicalImage {
        try withSegmentation(url) { seg in
            let g = reference.geometry
            let o = seg.orientation
            let rows = [o.0, o.1, o.2], columns = [o.3, o.4, o.5]
            guard reference.dims == 3, (0..<3).allSatisfy({ abs(g.direction[$0 * 3] - rows[$0]) < 1e-4 && abs(g.direction[$0 * 3 + 1] - columns[$0]) < 1e-4 }),
                  Int(seg.columns) == reference.size[0], Int(seg.rows) == reference.size[1] else {
                throw DataError(file: url, "its frames (\(seg.columns) x \(seg.rows), orientation \(rows + columns)) are not planes of the reference series' grid")
            }
            return try labelMap(seg, size: reference.size, geometry: ImageGeometry(spacing: g.spacing, origin: g.origin, direction: g.direction), file: url)
        }
    }

    // MARK: - Frames to voxels

    private static func withSegmentation<T>(_ url: URL, _ body: (mds_segmentation) throws -> T) throws -> T {
        var seg = mds_segmentation()
        guard mds_read(url.path, &seg) == 0 else {
            let message = String(cString: mds_last_error())
            throw DataError(file: url, message.hasPrefix(url.path + ": ") ? String(message.dropFirst(url.path.count + 2)) : message)
        }
        defer { mds_free(&seg) }
        return try body(seg)
    }

    private static func position(_ seg: mds_segmentation, _ frame: Int) -> [Double] {
        (0..<3).map { seg.frame_positions[frame * 3 + $0] }
    }

    private static func normalOf(_ seg: mds_segmentation) -> [Double] {
        let o = seg.orientation
        return [o.1 * o.5 - o.2 * o.4, o.2 * o.3 - o.0 * o.5, o.0 * o.4 - o.1 * o.3]
    }

    private static func dot(_ a: [Double], _ b: [Double]) -> Double { a[0] * b[0] + a[1] * b[1] + a[2] * b[2] }

    /// Paints each frame's segment number where the frame is set, on the slice of `geometry` the
    /// frame lies on (a later segment wins where two overlap).
    private static func labelMap(_ seg: mds_segmentation, size: [Int], geometry: ImageGeometry, file: URL) throws -> MedicalImage {
        let plane = size[0] * size[1]
        var voxels = [Float](repeating: 0, count: plane * size[2])
        let d = geometry.direction
        for f in 0..<Int(seg.frame_count) {
            let offset = zip(position(seg, f), geometry.origin).map { $0 - $1 }
            let along = (0..<3).map { axis in (offset[0] * d[axis] + offset[1] * d[3 + axis] + offset[2] * d[6 + axis]) / geometry.spacing[axis] }
            let k = Int(along[2].rounded())
            guard abs(along[0]) < 0.01, abs(along[1]) < 0.01, abs(along[2] - Double(k)) < 0.01, (0..<size[2]).contains(k) else {
                throw DataError(file: file, "frame \(f + 1) lies at \(position(seg, f)), not on a slice of the grid (\(size[2]) slices from \(geometry.origin))")
            }
            let segment = Float(seg.frame_segments[f])
            let pixels = seg.pixels + f * plane
            voxels.withUnsafeMutableBufferPointer { out in
                for p in 0..<plane where pixels[p] != 0 { out[k * plane + p] = segment }
            }
        }
        return MedicalImage(size: size, voxels: voxels, pixelType: seg.segment_count <= 255 ? .uint8 : .uint16, geometry: geometry)
    }

    /// The segment labels of a SEG, by segment number - 1.
    public static func segmentLabels(_ url: URL) throws -> [String] {
        try withSegmentation(url) { seg in (0..<Int(seg.segment_count)).map { seg.segment_labels[$0].map { String(cString: $0) } ?? "" } }
    }
}
