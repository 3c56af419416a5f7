import Foundation
import XCTest
import TestSupport
@testable import MedSegData

/// RT Structure Sets of label maps, checked by tools no one here wrote: dicom3tools' dciodvfy
/// (the IOD's rules) and rt-utils, which fills the contours of each ROI back into a mask on the
/// series (OpenCV's polygon fill with vertices rounded to whole pixels), as radiotherapy scripts do.
final class RTStructureSetTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws { scratch = try makeTemporaryFolder("rtstruct") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// A square series of square pixels (rt-utils fills square slices only, and takes a row's
    /// direction with the spacing between rows) and two labels: a ring with a hole on
    /// slices 1-3, two islands and a diagonal pair on slices 2-4; slice 0 and 5 hold nothing.
    private func seriesAndLabels(_ orientation: String) throws -> (DICOMSeries, MedicalImage) {
        let folder = scratch.appendingPathComponent(orientation)
        try DICOMFixtures.writeSeries(folder, ["--orientation", orientation, "--shuffle", "--size", "24,24,6", "--seed", "5", "--spacing", "0.75,0.75,2.5"])
        let series = try DICOM.select(in: folder, series: nil)
        let image = try DICOM.read(series)
        let (w, h) = (image.size[0], image.size[1])
        var voxels = [Float](repeating: 0, count: image.voxelCount)
        for z in 0..<image.size[2] { for y in 0..<h { for x in 0..<w {
            var v: Float = 0
            if (1...3).contains(z), (3...14).contains(x), (4...15).contains(y), !((7...10).contains(x) && (8...11).contains(y)) { v = 1 }
            if (2...4).contains(z), (17...21).contains(x) && (2...6).contains(y) || (16...19).contains(x) && (17...21).contains(y) { v = 2 }
            if (2...4).contains(z), (x == 20 && y == 12) || (x == 21 && y == 13) { v = 2 }
            voxels[(z * h + y) * w + x] = v
        } } }
        return (series, MedicalImage(size: image.size, voxels: voxels, pixelType: .uint8, geometry: image.geometry))
    }

    /// rt-utils' masks of every ROI, each as voxels in MedSeg's slice order (x fastest), found by
    /// where each of its slices lies on the label map's grid.
    private func rtUtilsMasks(_ rt: URL, series: URL, labels: MedicalImage) throws -> [String: [Bool]] {
        let g = labels.geometry
        let script = """
            import json, sys, warnings
            warnings.simplefilter("ignore")
            import numpy as np
            from rt_utils import RTStructBuilder
            from rt_utils.image_helper import load_sorted_image_series
            rt = RTStructBuilder.create_from(dicom_series_path=sys.argv[1], rt_struct_path=sys.argv[2])
            origin, direction, spacing = (np.array(json.loads(a)) for a in sys.argv[3:6])
            normal = direction.reshape(3, 3)[:, 2]
            order = [int(round(float(np.dot(np.array(s.ImagePositionPatient, float) - origin, normal)) / spacing[2])) for s in load_sorted_image_series(sys.argv[1])]
            out = {}
            for name in rt.get_roi_names():
                mask = rt.get_roi_mask_by_name(name)  # [row, column, slice] for square slices
                volume = np.zeros((len(order),) + mask.shape[:2], bool)
                for i, k in enumerate(order):
                    volume[k] = mask[:, :, i]
                out[name] = volume.ravel().tolist()
            print(json.dumps(out))
            """
        func json(_ v: [Double]) -> String { "[" + v.map { "\($0)" }.joined(separator: ",") + "]" }
        let output = try Python.run(script, [series.path, rt.path, json(g.origin), json(g.direction), json(g.spacing)], interpreter: "/usr/bin/python3")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: [Bool]])
    }

    /// Voxels where `filled` and the label differ all lie at the label's boundary (within one voxel
    /// of a voxel whose in-plane neighbours disagree with it); returns how many differ.
    private func boundaryDifferences(_ filled: [Bool], _ labels: MedicalImage, value: Float, _ message: String) -> Int {
        let (w, h, d) = (labels.size[0], labels.size[1], labels.size[2])
        func inside(_ x: Int, _ y: Int, _ z: Int) -> Bool { x >= 0 && y >= 0 && x < w && y < h && labels.voxels[(z * h + y) * w + x] == value }
        var differing = 0
        for z in 0..<d { for y in 0..<h { for x in 0..<w where filled[(z * h + y) * w + x] != inside(x, y, z) {
            differing += 1
            let nearBoundary = (-1...1).contains { dy in (-1...1).contains { dx in inside(x + dx, y + dy, z) != inside(x, y, z) } }
            XCTAssertTrue(nearBoundary, "\(message): voxel (\(x), \(y), \(z)) differs away from the boundary")
        } } }
        return differing
    }

    private func check(_ orientation: String) throws {
        let (series, labels) = try seriesAndLabels(orientation)
        let rt = scratch.appendingPathComponent("\(orientation).dcm")
        let contours = try RTStructureSet.write(labels: labels, reference: series, rois: RTStructureSet.rois(count: 2, names: [1: "liver", 2: "lesions"]), to: rt)
        XCTAssertEqual(contours, [3 * 2, 3 * 4], "a ring is two contours per slice, the lesions four (the diagonal pair apart)")
        if ProcessInfo.processInfo.environment["KEEP_RT"] != nil { try? FileManager.default.copyItem(at: scratch, to: URL(fileURLWithPath: "/tmp/rtdbg/\(orientation)")) }
        XCTAssertEqual(try DICOMSegmentationTests.validatorErrors(rt, kind: "RTStructureSet"), [])
        let masks = try rtUtilsMasks(rt, series: scratch.appendingPathComponent(orientation), labels: labels)
        XCTAssertEqual(Set(masks.keys), ["liver", "lesions"])
        for (name, value) in [("liver", Float(1)), ("lesions", 2)] {
            let filled = try XCTUnwrap(masks[name])
            let differing = boundaryDifferences(filled, labels, value: value, "\(orientation) \(name)")
            let count = labels.voxels.filter { $0 == value }.count
            XCTAssertLessThan(Double(differing), 0.5 * Double(count), "\(orientation) \(name): \(differing) of \(count) voxels differ")
            XCTAssertFalse(filled[(2 * 24 + 9) * 24 + 8], "the ring's hole stays empty")
        }
    }

    func testAxialStructureSetFillsBackToTheLabelMap() throws { try check("axial") }

    func testDoubleObliqueStructureSetFillsBackToTheLabelMap() throws { try check("oblique") }

    func testALabelMapOffTheSeriesIsRefusedNamingTheFile() throws {
        let (series, labels) = try seriesAndLabels("axial")
        var shifted = labels
        shifted.geometry.origin[2] += 0.5 * labels.geometry.spacing[2]
        let rt = scratch.appendingPathComponent("off.dcm")
        XCTAssertThrowsError(try RTStructureSet.write(labels: shifted, reference: series, rois: RTStructureSet.rois(count: 2), to: rt)) { error in
            XCTAssertTrue("\(error)".contains("is not on a slice of the label map's grid"), "\(error)")
            XCTAssertTrue(series.files.contains { "\(error)".hasPrefix($0.path) }, "\(error)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: rt.path), "nothing half-written")
        XCTAssertThrowsError(try RTStructureSet.write(labels: labels, reference: series, rois: RTStructureSet.rois(count: 1), to: rt)) {
            XCTAssertTrue("\($0)".contains("holds 2 on slice 2, and there are 1 ROI(s)"), "\($0)")
        }
    }
}
