import Foundation
import XCTest
import MedSegData
import TestSupport

/// `medseg data convert` between label maps and DICOM SEG (as dcmqi's itkimage2segimage and
/// segimage2itkimage), on a series pydicom wrote and a label map made on its NIfTI conversion.
final class DICOMSegmentationCommandTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws { temp = try makeTemporaryFolder("medseg-dicomseg-cli") }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: temp) }

    /// The series folder and a label map of labels 1 and 2 written as NIfTI on its grid.
    private func seriesAndLabelMap() throws -> (series: URL, labels: URL, map: MedicalImage) {
        let series = temp.appendingPathComponent("series")
        try DICOMFixtures.writeSeries(series, ["--orientation", "oblique", "--shuffle", "--seed", "5"])
        let ct = temp.appendingPathComponent("ct.nii.gz")
        try medseg(["data", "convert", series.path, ct.path])
        var map = try ImageIO.read(ct)
        map.voxels = map.voxels.indices.map { i in i % 12 < 4 ? 1 : (i / 120 == 3 ? 2 : 0) }
        map.pixelType = .uint8
        let labels = temp.appendingPathComponent("labels.nii.gz")
        try ImageIO.write(map, to: labels)
        return (series, labels, map)
    }

    /// A dataset.json naming labels 1 and 2.
    private func datasetNamingLiverAndSpleen() throws -> URL {
        let dataset = temp.appendingPathComponent("dataset.json")
        try Data(#"{"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "spleen": 2}, "numTraining": 1, "file_ending": ".nii.gz"}"#.utf8)
            .write(to: dataset)
        return dataset
    }

    func testLabelMapToSegmentationAndBack() throws {
        let (series, labels, map) = try seriesAndLabelMap()
        let dataset = try datasetNamingLiverAndSpleen()
        let codes = temp.appendingPathComponent("codes.json")
        try Data(#"{"segmentAttributes": [[{"labelID": 2, "SegmentLabel": "Spleen", "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Anatomical Structure"}, "SegmentedPropertyTypeCodeSequence": {"CodeValue": "78961009", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Spleen"}}]]}"#.utf8)
            .write(to: codes)
        let seg = temp.appendingPathComponent("out/labels.dcm")
        let log = try medseg(["data", "convert", labels.path, seg.path, "--reference", series.path, "--labels", dataset.path, "--segment-codes", codes.path]).output
        XCTAssertTrue(log.contains("wrote \(seg.path) (2 segment(s))"), log)
        XCTAssertEqual(try DICOMSegmentation.segmentLabels(seg), ["liver", "Spleen"])

        let back = temp.appendingPathComponent("back.nii.gz")
        try medseg(["data", "convert", seg.path, back.path, "--reference", series.path])
        let read = try ImageIO.read(back)
        XCTAssertEqual(read.voxels, map.voxels)
        XCTAssertEqual(read.size, map.size)
        for (a, b) in zip(read.geometry.origin + read.geometry.direction, map.geometry.origin + map.geometry.direction) {
            XCTAssertEqual(a, b, accuracy: 1e-4)
        }
        // Without the series: the slices its frames span, here all of them.
        let spanned = temp.appendingPathComponent("spanned.nii.gz")
        try medseg(["data", "convert", seg.path, spanned.path])
        XCTAssertEqual(try ImageIO.read(spanned).voxels, map.voxels)
    }

    /// `--format rtstruct`: an RT Structure Set whose ROIs are named from dataset.json, read by pydicom.
    func testLabelMapToRTStructureSet() throws {
        let (series, labels, _) = try seriesAndLabelMap()
        let dataset = try datasetNamingLiverAndSpleen()
        let rt = temp.appendingPathComponent("rt.dcm")
        let log = try medseg(["data", "convert", labels.path, rt.path, "--reference", series.path, "--labels", dataset.path, "--format", "rtstruct"]).output
        XCTAssertTrue(log.contains("wrote \(rt.path) (2 ROI(s), "), log)
        let read = try Python.run("""
            import sys, pydicom
            ds = pydicom.dcmread(sys.argv[1])
            print(ds.Modality, ds.SOPClassUID, "|".join(r.ROIName for r in ds.StructureSetROISequence),
                  sum(len(c.ContourSequence) for c in ds.ROIContourSequence))
            """, [rt.path], interpreter: "/usr/bin/python3")
        XCTAssertTrue(read.hasPrefix("RTSTRUCT 1.2.840.10008.5.1.4.1.1.481.3 liver|spleen "), read)
        let refused = try medseg(["data", "convert", labels.path, temp.appendingPathComponent("x.nii.gz").path, "--format", "rtstruct"], expectSuccess: false)
        XCTAssertTrue(refused.output.contains("--format rtstruct writes an RT Structure Set: give an output ending .dcm"), refused.output)
    }

    func testBadInputsGiveOneErrorNamingTheFile() throws {
        let (series, labels, map) = try seriesAndLabelMap()
        let seg = temp.appendingPathComponent("seg.dcm")
        // A label map of another grid (one slice fewer).
        var short = map
        short.size[2] -= 1
        short.voxels = Array(map.voxels.prefix(short.voxelCount))
        let other = temp.appendingPathComponent("short.nii.gz")
        try ImageIO.write(short, to: other)
        let wrong = try medseg(["data", "convert", other.path, seg.path, "--reference", series.path], expectSuccess: false)
        XCTAssertNotEqual(wrong.status, 0)
        XCTAssertTrue(wrong.output.contains("Error: \(other.path): the reference series has 7 files, the label map 6 slices"), wrong.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: seg.path))
        // Values that are not labels.
        var fractional = map
        fractional.voxels[5] = 0.5
        fractional.pixelType = .float32
        let blurred = temp.appendingPathComponent("fractional.nii.gz")
        try ImageIO.write(fractional, to: blurred)
        let notLabels = try medseg(["data", "convert", blurred.path, seg.path, "--reference", series.path], expectSuccess: false)
        XCTAssertTrue(notLabels.output.contains("Error: \(blurred.path): the label map holds 0.5, not a label"), notLabels.output)
        // No series to reference.
        let none = try medseg(["data", "convert", labels.path, seg.path], expectSuccess: false)
        XCTAssertTrue(none.output.contains("needs --reference SERIES_DIR"), none.output)
        // A file that is not a SEG read as one: a slice of the series.
        let slice = try XCTUnwrap(try FileManager.default.contentsOfDirectory(at: series, includingPropertiesForKeys: nil).first)
        XCTAssertThrowsError(try DICOMSegmentation.read(slice)) { error in
            XCTAssertTrue("\(error)".hasPrefix("\(slice.path): not a DICOM Segmentation"), "\(error)")
        }
        // Only the inputs are left: nothing half-written.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: temp.path).sorted(), ["ct.nii.gz", "fractional.nii.gz", "labels.nii.gz", "series", "short.nii.gz"])
    }
}
