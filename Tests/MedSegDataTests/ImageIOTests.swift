import Foundation
import XCTest
import TestSupport
@testable import MedSegData

/// Readers against files and values from nibabel, SimpleITK, pynrrd, Pillow and tifffile
/// (scripts/fixtures/make_io_fixtures.py), write/read round trips, nibabel reading MedSeg's NIfTI,
/// and the errors for broken files and unwritable paths.
final class ImageIOTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeTemporaryFolder("medseg-io")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func fixture(_ name: String) -> URL { fixtures.root.appendingPathComponent("io/" + name) }
    private func temp(_ name: String) -> URL { scratch.appendingPathComponent(name) }

    // MARK: - Reading files made by other tools

    func testReadersMatchReferenceTools() throws {
        let expected = try fixtures.json("io/expected.json")
        XCTAssertGreaterThanOrEqual(expected.count, 25)
        for name in expected.keys.sorted() {
            let entry = expected[name] as! [String: Any]
            let image = try ImageIO.read(fixture(name))
            check(image, against: entry, name)
            if let indices = entry["indices"] as? [String: Any] {
                check(try ImageIO.read(fixture(name), palette: .indices), against: indices, name + " (indices)")
            }
        }
    }

    private func check(_ image: MedicalImage, against entry: [String: Any], _ name: String,
                       file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(image.size, entry["size"] as? [Int], "\(name): size", file: file, line: line)
        XCTAssertEqual(image.channels, entry["channels"] as? Int, "\(name): channels", file: file, line: line)
        XCTAssertEqual(image.pixelType.rawValue, entry["pixel_type"] as? String, "\(name): pixel type", file: file, line: line)
        guard image.size == entry["size"] as? [Int], image.channels == entry["channels"] as? Int else { return }
        let tolerance = (entry["tolerance"] as? Double) ?? 0
        for key in ["spacing", "origin", "direction"] {
            guard let want = entry[key] as? [Double] else { continue }
            let got = key == "spacing" ? image.geometry.spacing : key == "origin" ? image.geometry.origin : image.geometry.direction
            assertClose(got, want, 1e-5, "\(name): \(key)", file: file, line: line)
        }
        if let affine = entry["affine"] as? [Double] {
            assertClose(image.geometry.niftiAffine ?? [], affine, 1e-6, "\(name): affine", file: file, line: line)
        }
        let values = image.voxels.map(Double.init)
        let sum = values.reduce(0, +)
        let weighted = values.enumerated().reduce(0.0) { $0 + $1.element * Double($1.offset % 13 + 1) }
        let n = Double(values.count)
        let want = entry["sum"] as! Double, wantWeighted = entry["weighted"] as! Double
        XCTAssertEqual(sum, want, accuracy: 1e-6 * max(1, abs(want)) + tolerance * n, "\(name): sum", file: file, line: line)
        XCTAssertEqual(weighted, wantWeighted, accuracy: 1e-6 * max(1, abs(wantWeighted)) + 13 * tolerance * n,
                       "\(name): weighted sum (voxel order)", file: file, line: line)
        let plane = image.voxelCount
        for sample in entry["samples"] as! [[Double]] {
            let (x, y, z, c) = (Int(sample[0]), Int(sample[1]), Int(sample[2]), Int(sample[3]))
            let index = c * plane + (z * image.size[1] + y) * image.size[0] + x
            XCTAssertEqual(Double(image.voxels[index]), sample[4], accuracy: max(tolerance, 1e-6 * abs(sample[4])),
                           "\(name): voxel (\(x), \(y), \(z)) channel \(c)", file: file, line: line)
        }
    }

    private func assertClose(_ a: [Double], _ b: [Double], _ tolerance: Double, _ what: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): \(a) vs \(b)", file: file, line: line)
        for (x, y) in zip(a, b) where abs(x - y) > tolerance * max(1, abs(y)) {
            XCTFail("\(what): \(a) vs \(b)", file: file, line: line)
            return
        }
    }

    func testNIfTIScalingAndPairAreReadAsStored() throws {
        // scl_slope 0.5 and inter -10 turn int16 into halves: float32.
        let scaled = try ImageIO.read(fixture("nifti1_oblique_slope.nii.gz"))
        XCTAssertEqual(scaled.pixelType, .float32)
        XCTAssertTrue(scaled.voxels.contains { $0 != $0.rounded() })
        // A .hdr whose .img is missing names the image file.
        let lonely = temp("lonely.hdr")
        try FileManager.default.copyItem(at: fixture("nifti1_pair.hdr"), to: lonely)
        XCTAssertThrowsError(try ImageIO.read(lonely)) { error in
            XCTAssertTrue("\(error)".contains("lonely.img"), "\(error)")
        }
    }

    func testPlainDataUnderAGzipEndingIsReadAsIs() throws {
        let image = MedicalImage(size: [3, 4, 2], voxels: ramp(24) { Float($0) }, pixelType: .int16)
        try ImageIO.write(image, to: temp("plain.nii"))
        try FileManager.default.moveItem(at: temp("plain.nii"), to: temp("plain.nii.gz"))
        XCTAssertEqual(try ImageIO.read(temp("plain.nii.gz")).voxels, image.voxels)
    }

    func testNRRDHexAndUnsupportedEncodings() throws {
        let header = "NRRD0004\ntype: short\ndimension: 2\nsizes: 2 2\nendian: big\nencoding: hex\n\n0001 FFFF\n0100 7fff\n"
        try Data(header.utf8).write(to: temp("hex.nrrd"))
        XCTAssertEqual(try ImageIO.read(temp("hex.nrrd")).voxels, [1, -1, 256, 32767])
        try Data(header.replacingOccurrences(of: "hex", with: "bzip2").utf8).write(to: temp("bz.nrrd"))
        assertDataError(temp("bz.nrrd"), "unsupported NRRD encoding \"bzip2\"")
        try Data("NRRD0004\ntype: complex\ndimension: 1\nsizes: 2\n\n".utf8).write(to: temp("complex.nrrd"))
        assertDataError(temp("complex.nrrd"), "unsupported NRRD type \"complex\"")
    }

    private func ramp(_ count: Int, _ f: (Int) -> Float) -> [Float] { (0..<count).map(f) }

    func testFileEndings() {
        XCTAssertEqual(ImageIO.fileEnding(of: URL(fileURLWithPath: "/d/CASE_0000.nii.gz")), ".nii.gz")
        XCTAssertEqual(ImageIO.fileEnding(of: URL(fileURLWithPath: "/d/a.b.NII.GZ")), ".nii.gz")
        XCTAssertEqual(ImageIO.fileEnding(of: URL(fileURLWithPath: "/d/x.PNG")), ".png")
        XCTAssertEqual(ImageIO.fileEnding(of: URL(fileURLWithPath: "/d/x.tiff")), ".tiff")
        XCTAssertEqual(ImageIO.fileEnding(of: URL(fileURLWithPath: "/d/noext")), "")
        XCTAssertEqual(ImageIO.stem(of: URL(fileURLWithPath: "/d/CASE_0000.nii.gz")), "CASE_0000")
        for ending in ImageIO.writableEndings { XCTAssertTrue(ImageIO.readableEndings.contains(ending), ending) }
    }

    // MARK: - Round trips

    private func obliqueGeometry() -> ImageGeometry {
        let (c, s) = (cos(0.4), sin(0.4))
        // Rotation about z then a small tilt about x, row-major, columns are the axis directions.
        let rz: [Double] = [c, -s, 0, s, c, 0, 0, 0, 1]
        let (ct, st) = (cos(0.15), sin(0.15))
        let rx: [Double] = [1, 0, 0, 0, ct, -st, 0, st, ct]
        var d = [Double](repeating: 0, count: 9)
        for i in 0..<3 { for j in 0..<3 { d[i * 3 + j] = (0..<3).map { rz[i * 3 + $0] * rx[$0 * 3 + j] }.reduce(0, +) } }
        return ImageGeometry(spacing: [0.75, 0.8, 2.5], origin: [-12.5, 30.25, -7], direction: d)
    }

    private func assertSameImage(_ a: MedicalImage, _ b: MedicalImage, geometry: Bool = true, _ what: String,
                                 file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.size, b.size, "\(what): size", file: file, line: line)
        XCTAssertEqual(a.channels, b.channels, "\(what): channels", file: file, line: line)
        XCTAssertEqual(a.pixelType, b.pixelType, "\(what): pixel type", file: file, line: line)
        XCTAssertEqual(a.voxels, b.voxels, "\(what): voxels", file: file, line: line)
        if geometry {
            assertClose(a.geometry.spacing, b.geometry.spacing, 1e-6, "\(what): spacing", file: file, line: line)
            assertClose(a.geometry.origin, b.geometry.origin, 1e-5, "\(what): origin", file: file, line: line)
            assertClose(a.geometry.direction, b.geometry.direction, 1e-6, "\(what): direction", file: file, line: line)
        }
    }

    func testNIfTIRoundTrips() throws {
        let n = 7 * 6 * 5
        let cases: [(String, MedicalImage)] = [
            ("int16.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0 * 37 % 2000 - 1000) }, pixelType: .int16, geometry: obliqueGeometry())),
            ("uint8.nii", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0 % 4) }, pixelType: .uint8, geometry: obliqueGeometry())),
            ("float32.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0) * 0.37 - 20 }, pixelType: .float32)),
            ("float64.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0) / 3 }, pixelType: .float64)),
            ("uint16.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0 * 211) }, pixelType: .uint16)),
            ("int32.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0 * 1001 - 100_000) }, pixelType: .int32)),
            ("uint32.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0 * 1001) }, pixelType: .uint32)),
            ("int8.nii.gz", MedicalImage(size: [7, 6, 5], voxels: ramp(n) { Float($0 % 200 - 100) }, pixelType: .int8)),
            ("channels.nii.gz", MedicalImage(size: [7, 6, 5], channels: 3, voxels: ramp(3 * n) { Float($0) * 0.5 }, pixelType: .float32, geometry: obliqueGeometry())),
            ("rgb.nii.gz", MedicalImage(size: [7, 6, 5], channels: 3, voxels: ramp(3 * n) { Float($0 % 256) }, pixelType: .rgb8)),
            ("flat.nii.gz", MedicalImage(size: [9, 4], voxels: ramp(36) { Float($0) }, pixelType: .uint8,
                                         geometry: ImageGeometry(spacing: [0.5, 0.25], origin: [3, -4], direction: [0, 1, 1, 0]))),
        ]
        for (name, image) in cases {
            try ImageIO.write(image, to: temp(name))
            let back = try ImageIO.read(temp(name))
            assertSameImage(back, image, name)
            XCTAssertNotNil(back.geometry.niftiAffine, name)
        }
        // NIfTI-2 on request.
        try NIfTI.write(cases[0].1, to: temp("v2.nii.gz"), version: 2)
        assertSameImage(try ImageIO.read(temp("v2.nii.gz")), cases[0].1, "NIfTI-2")
        // A file's affine goes back unchanged (sform and qform), byte for byte in float32.
        let original = try ImageIO.read(fixture("nifti1_oblique_slope.nii.gz"))
        try ImageIO.write(original, to: temp("prediction.nii.gz"))
        let back = try ImageIO.read(temp("prediction.nii.gz"))
        XCTAssertEqual(back.geometry.niftiAffine, original.geometry.niftiAffine)
        XCTAssertEqual(back.voxels, original.voxels)
        // A geometry changed after reading wins over the stale affine.
        var moved = original
        moved.geometry.origin[0] += 10
        try ImageIO.write(moved, to: temp("moved.nii.gz"))
        let movedBack = try ImageIO.read(temp("moved.nii.gz"))
        XCTAssertEqual(movedBack.geometry.origin[0], original.geometry.origin[0] + 10, accuracy: 1e-4)
        XCTAssertEqual(movedBack.geometry.niftiAffine?[3] ?? 0, (original.geometry.niftiAffine?[3] ?? 0) - 10, accuracy: 1e-4)
    }

    func testNRRDRoundTrips() throws {
        let cases: [(String, MedicalImage)] = [
            ("int16.nrrd", MedicalImage(size: [7, 6, 5], voxels: ramp(210) { Float($0 * 37 % 2000 - 1000) }, pixelType: .int16, geometry: obliqueGeometry())),
            ("vector.nrrd", MedicalImage(size: [4, 3, 2], channels: 2, voxels: ramp(48) { Float($0) * 0.25 }, pixelType: .float32, geometry: obliqueGeometry())),
            ("rgb.nrrd", MedicalImage(size: [4, 3], channels: 3, voxels: ramp(36) { Float($0 * 7 % 256) }, pixelType: .rgb8,
                                      geometry: ImageGeometry(spacing: [0.5, 2], origin: [1, 2]))),
            ("double.nrrd", MedicalImage(size: [5, 4, 3], voxels: ramp(60) { Float($0) / 7 }, pixelType: .float64)),
        ]
        for (name, image) in cases {
            try ImageIO.write(image, to: temp(name))
            assertSameImage(try ImageIO.read(temp(name)), image, name)
        }
    }

    func testPlanarRoundTrips() throws {
        let gray8 = MedicalImage(size: [13, 7], voxels: ramp(91) { Float($0 * 3 % 256) }, pixelType: .uint8)
        let gray16 = MedicalImage(size: [13, 7], voxels: ramp(91) { Float($0 * 701) }, pixelType: .uint16)
        let rgb = MedicalImage(size: [5, 6], channels: 3, voxels: ramp(90) { Float($0 * 11 % 256) }, pixelType: .rgb8)
        let rgba = MedicalImage(size: [5, 6], channels: 4, voxels: ramp(120) { Float($0 * 13 % 256) }, pixelType: .rgba8)
        let stack = MedicalImage(size: [6, 5, 3], voxels: ramp(90) { Float($0 * 601) }, pixelType: .uint16)
        let floats = MedicalImage(size: [6, 5], voxels: ramp(30) { Float($0) * 0.1 - 1 }, pixelType: .float32)
        let ints = MedicalImage(size: [6, 5, 2], voxels: ramp(60) { Float($0 * 1000 - 30000) }, pixelType: .int32)
        let cases: [(String, MedicalImage)] = [
            ("gray8.png", gray8), ("gray16.png", gray16), ("rgb.png", rgb), ("rgba.png", rgba),
            ("stack.tif", stack), ("floats.tiff", floats), ("ints.tif", ints), ("rgb.tif", rgb), ("gray8.tif", gray8),
            ("gray8.bmp", gray8), ("rgb.bmp", rgb),
        ]
        for (name, image) in cases {
            try ImageIO.write(image, to: temp(name))
            assertSameImage(try ImageIO.read(temp(name)), image, geometry: false, name)
        }
        // Labels held as float32 are stored in the smallest depth that holds them.
        let labels = MedicalImage(size: [4, 4], voxels: ramp(16) { Float($0 % 3) }, pixelType: .float32)
        try ImageIO.write(labels, to: temp("labels.png"))
        let labelsBack = try ImageIO.read(temp("labels.png"))
        XCTAssertEqual(labelsBack.voxels, labels.voxels)
        XCTAssertEqual(labelsBack.pixelType, .uint8)
        // Values a PNG cannot hold are refused, not rounded.
        XCTAssertThrowsError(try ImageIO.write(floats, to: temp("floats.png"))) { error in
            XCTAssertTrue("\(error)".contains("floats.png") && "\(error)".contains("PNG holds"), "\(error)")
        }
    }

    // MARK: - nibabel reads what MedSeg writes

    func testNibabelReadsMedSegNIfTI() throws {
        let geometryOnly = MedicalImage(size: [7, 6, 5], voxels: ramp(210) { Float($0 % 5) }, pixelType: .uint8, geometry: obliqueGeometry())
        let fromFile = try ImageIO.read(fixture("nifti1_oblique_slope.nii.gz"))
        let channels = MedicalImage(size: [4, 3, 2], channels: 2, voxels: ramp(48) { Float($0) - 10 }, pixelType: .int16, geometry: obliqueGeometry())
        try ImageIO.write(geometryOnly, to: temp("a.nii.gz"))
        try ImageIO.write(fromFile, to: temp("b.nii.gz"))
        try ImageIO.write(channels, to: temp("c.nii"))
        try NIfTI.write(geometryOnly, to: temp("d.nii.gz"), version: 2)

        let script = """
        import json, sys
        import numpy as np, nibabel as nib
        out = {}
        for path in sys.argv[1:]:
            img = nib.load(path)
            data = np.asarray(img.dataobj)
            out[path.rsplit('/', 1)[-1]] = {
                'affine': img.affine.ravel().tolist(), 'qform': img.get_qform().ravel().tolist(),
                'sform_code': int(img.header['sform_code']), 'qform_code': int(img.header['qform_code']),
                'shape': list(data.shape), 'dtype': str(data.dtype), 'sum': float(np.asarray(img.get_fdata()).sum()),
                'first': float(data.ravel(order='F')[1]), 'version': 2 if isinstance(img, nib.Nifti2Image) else 1}
        print(json.dumps(out))
        """
        let names = ["a.nii.gz", "b.nii.gz", "c.nii", "d.nii.gz"]
        let output = try runPython(script, arguments: names.map { temp($0).path })
        let result = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [String: [String: Any]]

        // Affine built from the geometry: LPS -> RAS flips the first two rows.
        let g = obliqueGeometry()
        var wantA = [Double](repeating: 0, count: 16)
        for r in 0..<3 {
            let sign: Double = r < 2 ? -1 : 1
            for c in 0..<3 { wantA[r * 4 + c] = sign * g.direction[r * 3 + c] * g.spacing[c] }
            wantA[r * 4 + 3] = sign * g.origin[r]
        }
        wantA[15] = 1
        let a = result["a.nii.gz"]!
        assertClose(a["affine"] as! [Double], wantA, 1e-5, "nibabel affine of a geometry-built NIfTI")
        assertClose(a["qform"] as! [Double], wantA, 1e-5, "nibabel qform of a geometry-built NIfTI")
        XCTAssertEqual(a["shape"] as? [Int], [7, 6, 5])
        XCTAssertEqual(a["dtype"] as? String, "uint8")
        XCTAssertEqual(a["sum"] as! Double, Double(geometryOnly.voxels.reduce(0, +)), accuracy: 1e-9)
        XCTAssertEqual(a["sform_code"] as? Int, 1)
        XCTAssertEqual(a["qform_code"] as? Int, 1)

        // Affine of a file written back unchanged, in the sform and (as a rotation) the qform.
        let b = result["b.nii.gz"]!
        assertClose(b["affine"] as! [Double], fromFile.geometry.niftiAffine!, 1e-7, "nibabel affine of a rewritten NIfTI")
        assertClose(b["qform"] as! [Double], fromFile.geometry.niftiAffine!, 1e-5, "nibabel qform of a rewritten NIfTI")
        XCTAssertEqual(b["sum"] as! Double, fromFile.voxels.map(Double.init).reduce(0, +), accuracy: 1e-3)

        let c = result["c.nii"]!
        XCTAssertEqual(c["shape"] as? [Int], [4, 3, 2, 2])
        XCTAssertEqual(c["dtype"] as? String, "int16")
        XCTAssertEqual(c["first"] as? Double, Double(channels.voxels[1]))
        XCTAssertEqual(c["sum"] as! Double, Double(channels.voxels.reduce(0, +)), accuracy: 1e-9)

        let d = result["d.nii.gz"]!
        XCTAssertEqual(d["version"] as? Int, 2)
        assertClose(d["affine"] as! [Double], wantA, 1e-9, "nibabel affine of a NIfTI-2")
    }

    /// sform_code 4 (MNI) and qform_code 2 survive read -> write, `medseg data convert`, and the
    /// geometry's JSON form (which preprocessing stores and predict writes back with).
    func testNIfTIFormCodesAreKept() throws {
        _ = try runPython("""
        import sys, numpy as np, nibabel as nib
        a = np.array([[-2, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]], float)
        img = nib.Nifti1Image(np.arange(60, dtype=np.int16).reshape(3, 4, 5), a)
        img.set_sform(a, code=4); img.set_qform(a, code=2)
        nib.save(img, sys.argv[1])
        """, arguments: [temp("mni.nii.gz").path])
        let image = try ImageIO.read(temp("mni.nii.gz"))
        XCTAssertEqual(image.geometry.niftiSformCode, 4)
        XCTAssertEqual(image.geometry.niftiQformCode, 2)
        try ImageIO.write(image, to: temp("rewritten.nii.gz"))
        var viaJSON = image
        viaJSON.geometry = try JSONDecoder().decode(ImageGeometry.self, from: JSONEncoder().encode(image.geometry))
        viaJSON.voxels = viaJSON.voxels.map { $0 > 30 ? 1 : 0 }
        viaJSON.pixelType = .uint8
        try ImageIO.write(viaJSON, to: temp("prediction.nii.gz"))
        var outputs = ["rewritten.nii.gz", "prediction.nii.gz"]
        if Executables.medseg() != nil {
            try Executables.runMedSeg(["data", "convert", temp("mni.nii.gz").path, temp("converted.nii").path])
            outputs.append("converted.nii")
        }
        let codes = try runPython("""
        import sys, nibabel as nib
        for p in sys.argv[1:]:
            h = nib.load(p).header
            print(int(h['sform_code']), int(h['qform_code']))
        """, arguments: outputs.map { temp($0).path })
        XCTAssertEqual(codes.split(separator: "\n").map(String.init), Array(repeating: "4 2", count: outputs.count), "\(outputs)")
    }

    /// TIFF keeps the x/y spacing as resolution tags (pixels per cm in 2D; ImageJ's pixels per mm
    /// with "spacing=" for the z spacing of a gray stack), read back by tifffile; `medseg data
    /// convert` names what TIFF cannot hold (origin, direction).
    func testTIFFKeepsSpacingAndConvertNamesWhatIsLost() throws {
        let stack = MedicalImage(size: [6, 5, 4], voxels: ramp(120) { Float($0) }, pixelType: .uint16,
                                 geometry: ImageGeometry(spacing: [0.5, 0.25, 2.5], origin: [10, -4, 7],
                                                         direction: [0, 1, 0, 1, 0, 0, 0, 0, 1]))
        let slice = MedicalImage(size: [6, 5], voxels: ramp(30) { Float($0) }, pixelType: .uint8,
                                 geometry: ImageGeometry(spacing: [0.2, 0.4]))
        try ImageIO.write(stack, to: temp("stack.nrrd"))
        try ImageIO.write(slice, to: temp("slice.tif"))
        var warning = ""
        if Executables.medseg() != nil {
            warning = try Executables.runMedSeg(["data", "convert", temp("stack.nrrd").path, temp("stack.tif").path]).output
        } else {
            try ImageIO.write(try ImageIO.read(temp("stack.nrrd")), to: temp("stack.tif"))
        }
        let output = try runPython("""
        import sys, json, tifffile
        out = []
        for path in sys.argv[1:]:
            with tifffile.TiffFile(path) as t:
                tags = t.pages[0].tags
                x = tags['XResolution'].value; y = tags['YResolution'].value
                out.append({'x': x[0] / x[1], 'y': y[0] / y[1], 'unit': int(tags['ResolutionUnit'].value),
                            'imagej': t.imagej_metadata or {}, 'shape': list(t.asarray().shape)})
        print(json.dumps(out))
        """, arguments: [temp("stack.tif").path, temp("slice.tif").path])
        let result = try JSONSerialization.jsonObject(with: Data(output.utf8)) as! [[String: Any]]
        XCTAssertEqual(result[0]["x"] as! Double, 2, accuracy: 1e-5)     // 1 / 0.5 mm
        XCTAssertEqual(result[0]["y"] as! Double, 4, accuracy: 1e-5)
        XCTAssertEqual(result[0]["unit"] as? Int, 1)
        let imagej = result[0]["imagej"] as! [String: Any]
        XCTAssertEqual(imagej["spacing"] as? Double, 2.5)
        XCTAssertEqual(imagej["unit"] as? String, "mm")
        XCTAssertEqual(result[0]["shape"] as? [Int], [4, 5, 6])
        XCTAssertEqual(result[1]["x"] as! Double, 50, accuracy: 1e-3)    // 10 / 0.2 mm per cm
        XCTAssertEqual(result[1]["y"] as! Double, 25, accuracy: 1e-3)
        XCTAssertEqual(result[1]["unit"] as? Int, 3)
        if Executables.medseg() != nil {
            XCTAssertTrue(warning.contains("warning") && warning.contains("stack.tif") && warning.contains("origin [10.0, -4.0, 7.0]")
                          && warning.contains("direction"), warning)
        }
        XCTAssertEqual(PlanarImages.tiffLosses(slice), [])
    }

    private func runPython(_ script: String, arguments: [String]) throws -> String {
        func run(_ args: [String]) throws -> (Int32, String, String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3"] + args
            let out = Pipe(), err = Pipe()
            process.standardOutput = out
            process.standardError = err
            try process.run()
            let stdout = out.fileHandleForReading.readDataToEndOfFile()
            let stderr = err.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            return (process.terminationStatus, String(decoding: stdout, as: UTF8.self), String(decoding: stderr, as: UTF8.self))
        }
        let (check, _, _) = try run(["-c", "import nibabel, numpy"])
        guard check == 0 else {
            XCTFail("python3 cannot import nibabel (and numpy): run scripts/setup.sh, or pip install nibabel numpy")
            throw XCTSkip("nibabel missing")
        }
        let (status, stdout, stderr) = try run(["-c", script] + arguments)
        guard status == 0 else {
            XCTFail("python3 failed (\(status)): \(stderr)")
            throw XCTSkip("python failed")
        }
        return stdout
    }

    // MARK: - Broken files

    private func assertDataError(_ url: URL, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try ImageIO.read(url), file: file, line: line) { error in
            guard let e = error as? DataError else { return XCTFail("\(type(of: error)): \(error)", file: file, line: line) }
            let message = e.description
            XCTAssertTrue(message.contains(url.lastPathComponent), "no file name in: \(message)", file: file, line: line)
            XCTAssertTrue(message.contains(fragment), "expected \"\(fragment)\" in: \(message)", file: file, line: line)
            XCTAssertFalse(message.contains("\n"), "not one line: \(message)", file: file, line: line)
        }
    }

    private func copy(_ fixtureName: String, to name: String, transform: (inout Data) -> Void) throws -> URL {
        var data = try Data(contentsOf: fixture(fixtureName))
        transform(&data)
        let url = temp(name)
        try data.write(to: url)
        return url
    }

    func testTruncatedAndCorruptFilesGiveDataErrors() throws {
        // NIfTI: short data, cut gzip stream, bad header, unknown datatype.
        let image = MedicalImage(size: [16, 16, 16], voxels: ramp(4096) { Float($0 % 100) }, pixelType: .int16)
        try ImageIO.write(image, to: temp("scan.nii"))
        let full = try Data(contentsOf: temp("scan.nii"))
        try full.prefix(1000).write(to: temp("scan.nii"))
        assertDataError(temp("scan.nii"), "truncated: header says 8192 voxel bytes, file has 648")
        assertDataError(try copy("nifti1_oblique_slope.nii.gz", to: "cut.nii.gz") { $0 = $0.prefix($0.count / 2) }, "truncated gzip")
        assertDataError(try copy("nifti1_oblique_slope.nii.gz", to: "crc.nii.gz") { $0[$0.count - 6] ^= 0xFF }, "corrupt gzip")
        assertDataError(try copy("rgb.png", to: "junk.nii") { $0 = $0.prefix(400) }, "not a NIfTI file")
        assertDataError(try copy("nifti1_bigendian.nii", to: "short.nii") { $0 = $0.prefix(200) }, "truncated")
        assertDataError(try copy("nifti1_bigendian.nii", to: "complex.nii") { $0[70] = 0; $0[71] = 32 }, "unsupported NIfTI datatype 32")
        try Data().write(to: temp("empty.nii.gz"))
        assertDataError(temp("empty.nii.gz"), "empty file")
        assertDataError(temp("missing.nii.gz"), "no such file")
        assertDataError(temp("missing.nrrd"), "no such file")
        assertDataError(temp("missing.png"), "no such file")

        // NRRD: short data, gzip cut, missing data file, not NRRD.
        assertDataError(try copy("ras_gzip.nrrd", to: "cut.nrrd") { $0 = $0.prefix($0.count - 200) }, "truncated")
        let nhdr = temp("lost.nhdr")
        try Data(contentsOf: fixture("vector_detached.nhdr")).write(to: nhdr)
        assertDataError(nhdr, "vector_detached.raw")
        try FileManager.default.copyItem(at: fixture("vector_detached.raw"), to: temp("vector_detached.raw"))
        try Data(contentsOf: fixture("vector_detached.raw")).prefix(100).write(to: temp("vector_detached.raw"))
        XCTAssertThrowsError(try ImageIO.read(nhdr)) { XCTAssertTrue("\($0)".contains("vector_detached.raw: truncated"), "\($0)") }
        assertDataError(try copy("rgb.png", to: "fake.nrrd") { _ in }, "not a NRRD file")

        // PNG / JPEG / TIFF / BMP.
        assertDataError(try copy("rgb.bmp", to: "x.png") { _ in }, "not a PNG file")
        assertDataError(try copy("rgb.png", to: "cut.png") { $0 = $0.prefix($0.count - 40) }, "corrupt PNG")
        assertDataError(try copy("rgb.png", to: "bits.png") { $0[100] ^= 0x55; $0[101] ^= 0x55 }, "corrupt PNG")
        assertDataError(try copy("rgb.png", to: "x.jpg") { _ in }, "not a JPEG file")
        assertDataError(try copy("photo.jpg", to: "cut.jpg") { $0 = $0.prefix($0.count - 120) }, "truncated JPEG")
        assertDataError(try copy("photo.jpg", to: "headless.jpg") { $0 = $0.prefix(300) }, "corrupt JPEG")
        assertDataError(try copy("rgb.png", to: "x.tif") { _ in }, "not a TIFF file")
        assertDataError(try copy("stack_u16.tif", to: "cut.tif") { $0 = $0.prefix(300) }, "TIFF")
        assertDataError(try copy("rgb.png", to: "x.bmp") { _ in }, "not a BMP file")
        assertDataError(try copy("rgb.bmp", to: "cut.bmp") { $0 = $0.prefix(100) }, "truncated")
        assertDataError(temp("whatever.xyz"), "cannot read files ending \".xyz\"")
    }

    // MARK: - Writing safely

    func testWritingIntoAMissingDirectoryFailsClearlyAndLeavesNothing() throws {
        let image = MedicalImage(size: [4, 4], voxels: ramp(16) { Float($0) }, pixelType: .uint8)
        for ending in ImageIO.writableEndings {
            let url = scratch.appendingPathComponent("no/such/dir/out" + ending)
            XCTAssertThrowsError(try ImageIO.write(image, to: url)) { error in
                let message = "\(error)"
                XCTAssertTrue(error is DataError, message)
                XCTAssertTrue(message.contains("out" + ending) && message.contains("does not exist"), message)
            }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path), [])
        XCTAssertThrowsError(try ImageIO.write(image, to: temp("out.jpg"))) { XCTAssertTrue("\($0)".contains("cannot write"), "\($0)") }
    }

    func testFailedWriteLeavesNoTemporaryFileAndKeepsTheOldOne() throws {
        let image = MedicalImage(size: [4, 4], voxels: ramp(16) { Float($0) }, pixelType: .uint8)
        // The target name is taken by a directory: the rename fails after the data was written.
        for ending in ImageIO.writableEndings {
            let blocked = temp("blocked" + ending)
            try FileManager.default.createDirectory(at: blocked, withIntermediateDirectories: false)
            XCTAssertThrowsError(try ImageIO.write(image, to: blocked)) { error in
                XCTAssertTrue(error is DataError && "\(error)".contains("blocked" + ending), "\(error)")
            }
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { !$0.hasPrefix("blocked") }
        XCTAssertEqual(leftovers, [], "temporary files left behind")
        // Overwriting replaces the old file in one step.
        try ImageIO.write(image, to: temp("keep.nii.gz"))
        var changed = image
        changed.voxels[0] = 99
        try ImageIO.write(changed, to: temp("keep.nii.gz"))
        XCTAssertEqual(try ImageIO.read(temp("keep.nii.gz")).voxels[0], 99)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.path).filter { $0.hasPrefix(".") }, [])
    }
}
