import Foundation
import XCTest
import MedSegData
import TestSupport

/// Label maps written as DICOM SEG on series pydicom wrote (DICOMFixtures), read back by tools
/// no one here wrote: highdicom (the SEG's segments, codes, references and pixels by source
/// instance), dicom3tools' dciodvfy (the IOD's rules) and dcmqi's segimage2itkimage; and by MedSeg.
final class DICOMSegmentationTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeTemporaryFolder("medseg-dicomseg")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// A series and a label map of labels 1...3 on its grid; slice 0 holds no label, label 3 only
    /// some slices.
    private func seriesAndLabels(_ orientation: String) throws -> (DICOMSeries, MedicalImage) {
        let folder = scratch.appendingPathComponent(orientation)
        try DICOMFixtures.writeSeries(folder, ["--orientation", orientation, "--shuffle", "--seed", "3"])
        let series = try DICOM.select(in: folder, series: nil)
        let image = try DICOM.read(series)
        var voxels = [Float](repeating: 0, count: image.voxelCount)
        for z in 1..<image.size[2] { for y in 0..<image.size[1] { for x in 0..<image.size[0] {
            var v = (x / 3 + y / 4 + z) % 3
            if v == 2, z >= 4, x > 6 { v = 3 }
            voxels[(z * image.size[1] + y) * image.size[0] + x] = Float(v)
        } } }
        return (series, MedicalImage(size: image.size, voxels: voxels, pixelType: .uint8, geometry: image.geometry))
    }

    private let segments = [SegmentDescription(label: "liver", category: CodedConcept("123037004", "SCT", "Anatomical Structure"),
                                               type: CodedConcept("10200004", "SCT", "Liver")),
                            SegmentDescription(label: "tumour", category: CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
                                               type: CodedConcept("108369006", "SCT", "Neoplasm")),
                            SegmentDescription(label: "Label 3")]

    /// What highdicom reads from `seg`: the segments and references, and the pixels of every source
    /// instance ordered along the slice normal (computed here from the source headers).
    private func highdicom(_ seg: URL, source: URL) throws -> [String: Any] {
        let script = """
            import glob, json, sys
            import highdicom as hd, numpy as np, pydicom
            from pydicom.sr.codedict import codes
            seg = hd.seg.segread(sys.argv[1])
            categories = {getattr(codes.cid7150, n).value for n in codes.cid7150.dir("")}
            src = [pydicom.dcmread(f, stop_before_pixels=True) for f in glob.glob(sys.argv[2] + "/*")]
            def along(d):
                o = np.array(d.ImageOrientationPatient, float)
                return float(np.dot(np.array(d.ImagePositionPatient, float), np.cross(o[:3], o[3:])))
            src.sort(key=along)
            pixels = seg.get_pixels_by_source_instance([d.SOPInstanceUID for d in src], combine_segments=True, skip_overlap_checks=True)
            code = lambda c: [c.CodeValue, c.CodingSchemeDesignator, c.CodeMeaning]
            print(json.dumps({
                "values": pixels.astype(int).ravel().tolist(),
                "labels": [s.SegmentLabel for s in seg.SegmentSequence],
                "categories": [code(s.SegmentedPropertyCategoryCodeSequence[0]) for s in seg.SegmentSequence],
                "types": [code(s.SegmentedPropertyTypeCodeSequence[0]) for s in seg.SegmentSequence],
                "standardCategories": [s.SegmentedPropertyCategoryCodeSequence[0].CodeValue in categories for s in seg.SegmentSequence],
                "algorithms": [[s.SegmentAlgorithmType, s.SegmentAlgorithmName] for s in seg.SegmentSequence],
                "frames": int(seg.NumberOfFrames),
                "referencedSeries": seg.ReferencedSeriesSequence[0].SeriesInstanceUID,
                "referencedInstances": sorted(i.ReferencedSOPInstanceUID for i in seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence),
                "sourceInstances": sorted(d.SOPInstanceUID for d in src),
                "frameOfReference": [seg.FrameOfReferenceUID, src[0].FrameOfReferenceUID],
                "patient": [seg.PatientID, seg.StudyInstanceUID, src[0].PatientID, src[0].StudyInstanceUID],
                "series": src[0].SeriesInstanceUID,
            }))
            """
        let output = try Python.run(script, [seg.path, source.path], interpreter: "/usr/bin/python3")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: Data(output.utf8)) as? [String: Any])
    }

    /// A command-line tool the set-up installs with pip: on the PATH or in pip's script folders.
    static func tool(_ name: String, from package: String) throws -> URL {
        let folders = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/local/bin", NSHomeDirectory() + "/.local/bin"]
        let found = folders.map { URL(fileURLWithPath: $0).appendingPathComponent(name) }.first { FileManager.default.isExecutableFile(atPath: $0.path) }
        return try XCTUnwrap(found, "\(name) is missing: scripts/setup.sh installs \(package) from PyPI")
    }

    /// dciodvfy's complaints about `file` (lines starting "Error"); the tool must be installed.
    static func validatorErrors(_ file: URL, kind: String = "Segmentation") throws -> [String] {
        let process = Process()
        process.executableURL = try tool("dciodvfy", from: "dicom3tools")
        process.arguments = [file.path]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertTrue(text.contains(kind), "dciodvfy did not recognise a \(kind):\n\(text)")
        return text.split(separator: "\n").map(String.init).filter { $0.hasPrefix("Error") }
    }

    private func checkWrittenSegmentation(_ orientation: String) throws {
        let (series, labels) = try seriesAndLabels(orientation)
        let url = scratch.appendingPathComponent("\(orientation).dcm")
        try DICOMSegmentation.write(labels: labels, reference: series, segments: segments, to: url)
        XCTAssertTrue(DICOMSegmentation.isSegmentation(url))
        XCTAssertFalse(DICOMSegmentation.isSegmentation(series.files[0]))

        let read = try highdicom(url, source: series.files[0].deletingLastPathComponent())
        XCTAssertEqual((read["values"] as? [Int])?.map(Float.init), labels.voxels, "\(orientation): highdicom's pixels by source instance")
        XCTAssertEqual(read["labels"] as? [String], ["liver", "tumour", "Label 3"])
        XCTAssertEqual(read["categories"] as? [[String]], segments.map { [$0.category.value, $0.category.scheme, $0.category.meaning] })
        XCTAssertEqual(read["types"] as? [[String]], segments.map { [$0.type.value, $0.type.scheme, $0.type.meaning] })
        XCTAssertEqual((read["types"] as? [[String]])?.last, ["85756007", "SCT", "Tissue"])
        XCTAssertEqual((read["categories"] as? [[String]])?.last, ["85756007", "SCT", "Tissue"])
        // Every category, the default's too, is one of DICOM's CID 7150 (pydicom's copy of the standard's tables).
        XCTAssertEqual(read["standardCategories"] as? [Bool], [true, true, true])
        XCTAssertEqual(read["algorithms"] as? [[String]], Array(repeating: ["AUTOMATIC", "MedSeg"], count: 3))
        // Only slices that hold a segment have a frame: labels 1 and 2 on slices 1...6, label 3 on 4...6.
        XCTAssertEqual(read["frames"] as? Int, 6 + 6 + 3)
        XCTAssertEqual(read["referencedSeries"] as? String, series.uid)
        XCTAssertEqual(read["referencedInstances"] as? [String], read["sourceInstances"] as? [String])
        let frame = try XCTUnwrap(read["frameOfReference"] as? [String])
        XCTAssertEqual(frame[0], frame[1])
        let patient = try XCTUnwrap(read["patient"] as? [String])
        XCTAssertEqual(Array(patient[0..<2]), Array(patient[2..<4]))
        XCTAssertEqual(try Self.validatorErrors(url), [], orientation)

        // MedSeg's own reader: on the series' grid, and on the grid the frames span (slices 1...6).
        let back = try DICOMSegmentation.read(url, reference: DICOM.read(series))
        XCTAssertEqual(back.voxels, labels.voxels)
        XCTAssertEqual(back.geometry.origin, labels.geometry.origin)
        XCTAssertEqual(try DICOMSegmentation.segmentLabels(url), ["liver", "tumour", "Label 3"])
        let spanned = try DICOMSegmentation.read(url)
        XCTAssertEqual(spanned.size, [12, 10, 6])
        XCTAssertNil(DICOMTests.difference(spanned, within: labels, tolerance: 0), orientation)
        for (a, b) in zip(spanned.geometry.direction, labels.geometry.direction) { XCTAssertEqual(a, b, accuracy: 1e-6) }
    }

    func testAxialSegmentationReadsBackVoxelForVoxel() throws {
        try checkWrittenSegmentation("axial")
    }

    func testDoubleObliqueSegmentationReadsBackVoxelForVoxel() throws {
        try checkWrittenSegmentation("oblique")
    }

    /// dcmqi's segimage2itkimage (as users convert SEG to NIfTI) gives the label map back at the
    /// same places: its volume spans the slices that hold a segment.
    func testDcmqiConvertsTheSegmentationBack() throws {
        let converter = try Self.tool("segimage2itkimage", from: "dcmqi")
        for orientation in ["axial", "oblique"] {
            let (series, labels) = try seriesAndLabels(orientation)
            let url = scratch.appendingPathComponent("\(orientation).dcm")
            try DICOMSegmentation.write(labels: labels, reference: series, segments: segments, to: url)
            let out = scratch.appendingPathComponent("dcmqi-\(orientation)")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let process = Process()
            process.executableURL = converter
            process.arguments = ["--inputDICOM", url.path, "--outputDirectory", out.path, "-t", "nifti", "--mergeSegments"]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0, "segimage2itkimage failed on \(url.path)")
            let converted = try ImageIO.read(out.appendingPathComponent("1.nii.gz"))
            XCTAssertEqual(converted.size, [12, 10, 6], orientation)
            XCTAssertNil(DICOMTests.difference(converted, within: labels, tolerance: 0), orientation)
            XCTAssertEqual(Set(converted.voxels), [0, 1, 2, 3])
        }
    }

    /// MedSeg's reader on a SEG it did not write: highdicom's, of the same label map.
    func testHighdicomSegmentationReadsBackIntoTheLabelMap() throws {
        let (series, labels) = try seriesAndLabels("oblique")
        let url = scratch.appendingPathComponent("highdicom.dcm")
        let script = """
            import glob, sys
            import highdicom as hd, numpy as np, pydicom
            src = [pydicom.dcmread(f) for f in glob.glob(sys.argv[1] + "/*")]
            o = np.array(src[0].ImageOrientationPatient, float)
            src.sort(key=lambda d: float(np.dot(np.array(d.ImagePositionPatient, float), np.cross(o[:3], o[3:]))))
            for d in src:  # type-2 attributes the fixture writer leaves out and highdicom copies
                for a in ("PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber", "ReferringPhysicianName"):
                    setattr(d, a, d.get(a, ""))
            shape = (len(src), src[0].Rows, src[0].Columns)
            mask = np.array([int(v) for v in sys.argv[3].split(",")], np.uint8).reshape(shape)
            code = lambda v, m: hd.sr.CodedConcept(v, "SCT", m)
            segments = [hd.seg.SegmentDescription(n, f"s{n}", code("85756007", "Tissue"), code("85756007", "Tissue"),
                                                  hd.seg.SegmentAlgorithmTypeValues.MANUAL) for n in (1, 2, 3)]
            seg = hd.seg.Segmentation(src, mask, hd.seg.SegmentationTypeValues.BINARY, segments, hd.UID(), 1, hd.UID(), 1,
                                      "test", "test", "1", "1")
            seg.save_as(sys.argv[2])
            """
        _ = try Python.run(script, [series.files[0].deletingLastPathComponent().path, url.path, labels.voxels.map { String(Int($0)) }.joined(separator: ",")],
                           interpreter: "/usr/bin/python3")
        XCTAssertEqual(try DICOMSegmentation.read(url, reference: DICOM.read(series)).voxels, labels.voxels)
        XCTAssertEqual(try DICOMSegmentation.segmentLabels(url), ["s1", "s2", "s3"])
    }

    func testLabelMapOffTheSeriesGridIsRefusedNamingTheFile() throws {
        let (series, labels) = try seriesAndLabels("axial")
        let url = scratch.appendingPathComponent("off.dcm")
        // One slice fewer than the series.
        let short = MedicalImage(size: [12, 10, 6], voxels: Array(labels.voxels.prefix(720)), pixelType: .uint8, geometry: labels.geometry)
        XCTAssertThrowsError(try DICOMSegmentation.write(labels: short, reference: series, segments: segments, to: url)) { error in
            XCTAssertNil((error as? DataError)?.file)
            XCTAssertTrue("\(error)".contains("has 7 files, the label map 6 slices"), "\(error)")
        }
        // Shifted by half a slice: the first misplaced file is named.
        var shifted = labels
        shifted.geometry.origin[2] += 1.25
        XCTAssertThrowsError(try DICOMSegmentation.write(labels: shifted, reference: series, segments: segments, to: url)) { error in
            XCTAssertTrue(series.files.contains { (error as? DataError)?.file == $0.path }, "\(error)")
            XCTAssertTrue("\(error)".contains(": its Image Position (Patient)"), "\(error)")
            XCTAssertTrue("\(error)".contains("not in this series' geometry"), "\(error)")
        }
        // A label without a segment.
        XCTAssertThrowsError(try DICOMSegmentation.write(labels: labels, reference: series, segments: Array(segments.prefix(2)), to: url)) { error in
            XCTAssertTrue("\(error)".contains("label 3 but only 2 segments"), "\(error)")
        }
        // Nothing is left behind, not even a temporary file.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).sorted(), ["axial"])
    }

    func testNonSegmentationFilesAreRefusedNamingTheFile() throws {
        let (series, _) = try seriesAndLabels("axial")
        XCTAssertThrowsError(try DICOMSegmentation.read(series.files[0])) { error in
            XCTAssertEqual((error as? DataError)?.file, series.files[0].path)
            XCTAssertTrue((error as? DataError)?.problem.hasPrefix("not a DICOM Segmentation (its SOP Class UID is '1.2.840.10008.5.1.4.1.1.2'") == true, "\(error)")
        }
        let text = scratch.appendingPathComponent("notes.dcm")
        try Data("not DICOM at all".utf8).write(to: text)
        XCTAssertThrowsError(try DICOMSegmentation.read(text)) { error in
            XCTAssertEqual((error as? DataError)?.file, text.path)
            XCTAssertTrue((error as? DataError)?.problem.hasPrefix("not a DICOM file") == true, "\(error)")
        }
    }

    func testSegmentDescriptionsFromDcmqiMetadataAndDefaults() throws {
        let codes = scratch.appendingPathComponent("meta.json")
        try Data("""
            {"segmentAttributes": [[{"labelID": 2, "SegmentLabel": "kidney",
              "SegmentedPropertyCategoryCodeSequence": {"CodeValue": "123037004", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Anatomical Structure"},
              "SegmentedPropertyTypeCodeSequence": {"CodeValue": "64033007", "CodingSchemeDesignator": "SCT", "CodeMeaning": "Kidney"}}]]}
            """.utf8).write(to: codes)
        let read = try SegmentDescription.read(codes: codes)
        XCTAssertEqual(read[2]?.type, CodedConcept("64033007", "SCT", "Kidney"))
        let all = SegmentDescription.segments(count: 3, names: [1: "liver", 2: "unused"], codes: read)
        XCTAssertEqual(all.map(\.label), ["liver", "kidney", "Label 3"])
        XCTAssertEqual(all[0].category, SegmentDescription.genericCategory)
        XCTAssertEqual(all[2].type, CodedConcept("85756007", "SCT", "Tissue"))

        let keyed = scratch.appendingPathComponent("keyed.json")
        try Data(#"{"1": {"SegmentLabel": "a", "SegmentedPropertyTypeCodeSequence": {"CodeValue": "x"}}}"#.utf8).write(to: keyed)
        XCTAssertThrowsError(try SegmentDescription.read(codes: keyed)) { error in
            XCTAssertEqual("\(error)", "\(keyed.path): \"1\".SegmentedPropertyTypeCodeSequence needs CodeValue, CodingSchemeDesignator and CodeMeaning (non-empty text)")
        }
    }
}
