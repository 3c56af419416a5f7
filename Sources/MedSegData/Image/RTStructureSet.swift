import CDicomSeg
import Foundation

/// Label maps as DICOM RT Structure Sets, encoded by DCMTK's dcmrt: each label value a ROI whose
/// contours are its boundaries on every slice of the series (closed planar polygons through the
/// middle between pixel centres inside and outside, `MaskContours`; holes and islands are
/// contours of their own), in patient coordinates, each referencing the instance of its slice.
public enum RTStructureSet {
    /// One ROI: the voxels of one label value.
    public struct ROI: Equatable, Sendable {
        public var name: String
        public var color: [Int]
        public init(name: String, color: [Int]) { self.name = name; self.color = color }
    }

    /// Distinct colours for ROIs 1, 2, ... (repeating after the last).
    static let palette = [[255, 0, 0], [0, 200, 0], [0, 0, 255], [255, 200, 0], [0, 200, 200], [200, 0, 200], [255, 128, 0], [128, 64, 255]]

    /// ROIs for label values 1...count, named from `names` (else "label N").
    public static func rois(count: Int, names: [Int: String] = [:]) -> [ROI] {
        (1...max(count, 1)).prefix(count).map { ROI(name: names[$0] ?? "label \($0)", color: palette[($0 - 1) % palette.count]) }
    }

    /// Writes `labels` (in `reference`'s geometry, as `DICOM.read` gives it) as an RT Structure Set of
    /// `rois` (ROI n is label value n), replacing `url` atomically. Returns the contours written per ROI.
    @discardableResult
    public static func write(labels: MedicalImage, reference: DICOMSeries, rois: [ROI], label: String = "MedSeg", to url: URL) throws -> [Int] {
        guard labels.dims == 3, labels.channels == 1 else {
            throw DataError("an RT Structure Set is written from one 3D label map, not \(labels.channels) channel(s) of \(labels.dims)D")
        }
        guard !rois.isEmpty else { throw DataError("the label map holds no label above 0: there is no ROI to write") }
        let (width, height, depth) = (labels.size[0], labels.size[1], labels.size[2])
        let g = labels.geometry
        // Pixel (x, y) of slice k in patient coordinates.
        func patient(_ p: MaskContours.Point, _ k: Int) -> [Double] { g.world([p.x, p.y, Double(k)]) }
        var contours: [[(slice: Int, points: [Double])]] = Array(repeating: [], count: rois.count)
        let plane = width * height
        for k in 0..<depth {
            // Each label's bounding box on this slice, in one pass; contours are traced in the box only
            // (a structure set of 100 organs would otherwise scan every slice 100 times).
            var boxes: [Int: (x0: Int, y0: Int, x1: Int, y1: Int)] = [:]
            for y in 0..<height {
                for x in 0..<width {
                    let value = Int(labels.voxels[k * plane + y * width + x])
                    guard value != 0 else { continue }
                    guard value >= 1, value <= rois.count else {
                        throw DataError("the label map holds \(value) on slice \(k), and there are \(rois.count) ROI(s)")
                    }
                    let b = boxes[value] ?? (x, y, x, y)
                    boxes[value] = (min(b.x0, x), min(b.y0, y), max(b.x1, x), max(b.y1, y))
                }
            }
            for (value, box) in boxes.sorted(by: { $0.key < $1.key }) {
                let (w, h) = (box.x1 - box.x0 + 1, box.y1 - box.y0 + 1)
                var mask = [Bool](repeating: false, count: w * h)
                for y in 0..<h {
                    let row = k * plane + (box.y0 + y) * width + box.x0
                    for x in 0..<w where Int(labels.voxels[row + x]) == value { mask[y * w + x] = true }
                }
                let offset = MaskContours.Point(Double(box.x0), Double(box.y0))
                for ring in MaskContours.polygons(mask: mask, width: w, height: h) {
                    contours[value - 1].append((k, ring.flatMap { patient($0 + offset, k) }))
                }
            }
        }
        var grid = DICOMSegmentation.grid(of: labels)
        let names = rois.map { strdup($0.name)! }
        let files = reference.files.map { strdup($0.path)! }
        defer { (names + files).forEach { free($0) } }
        try writeAtomically(to: url) { temporary in
            let status = withContours(contours) { described in
                let roiRecords = described.enumerated().map { r, list in
                    mdr_roi(name: names[r], color: (Int32(rois[r].color[0]), Int32(rois[r].color[1]), Int32(rois[r].color[2])),
                            contours: list.baseAddress, contour_count: Int32(list.count))
                }
                return files.map { UnsafePointer($0) }.withUnsafeBufferPointer { paths in
                    mdr_write(paths.baseAddress, Int32(paths.count), &grid, roiRecords, Int32(roiRecords.count), label, temporary)
                }
            }
            guard status == 0 else { throw DICOMSegmentation.referenceError(String(cString: mds_last_error()), reference) }
        }
        return contours.map(\.count)
    }

    /// Calls `body` with each ROI's contour records, their point arrays kept alive meanwhile.
    private static func withContours(_ contours: [[(slice: Int, points: [Double])]],
                                     _ body: ([UnsafeBufferPointer<mdr_contour>]) -> Int32) -> Int32 {
        // Every contour's points in one buffer, so that the pointers stay valid.
        let flat = contours.flatMap { $0.flatMap(\.points) }
        return flat.withUnsafeBufferPointer { all -> Int32 in
            var offset = 0
            var records: [[mdr_contour]] = []
            for roi in contours.indices {
                records.append(contours[roi].map { contour in
                    defer { offset += contour.points.count }
                    return mdr_contour(slice: Int32(contour.slice), point_count: Int32(contour.points.count / 3), points: all.baseAddress! + offset)
                })
            }
            let buffers = records.map { list -> UnsafeBufferPointer<mdr_contour> in
                let pointer = UnsafeMutableBufferPointer<mdr_contour>.allocate(capacity: max(list.count, 1))
                _ = pointer.initialize(from: list)
                return UnsafeBufferPointer(pointer)
            }
            defer { buffers.forEach { $0.deallocate() } }
            return body(buffers)
        }
    }
}
