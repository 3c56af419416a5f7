import Foundation
import XCTest
import MedSegData
import TestSupport

/// DICOM series written by pydicom (DICOMFixtures) from a known volume, read by MedSeg through GDCM and compared with the volume and with Debian's dcm2niix.
final class DICOMTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeTemporaryFolder("medseg-dicom")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: scratch) }

    /// dcm2niix's NIfTI of the series in `folder` (the reference users compare with).
    static func dcm2niix(_ folder: URL, into out: URL) throws -> MedicalImage {
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/dcm2niix")
        process.arguments = ["-z", "n", "-b", "n", "-f", "series", "-o", out.path, folder.path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "dcm2niix failed on \(folder.path) (scripts/setup.sh installs it)")
        return try ImageIO.read(out.appendingPathComponent("series.nii"))
    }

    /// nil when every voxel of `a` has the same value at the same world position in `b` (whatever
    /// each one's voxel order), else the first difference.
    static func physicalDifference(_ a: MedicalImage, _ b: MedicalImage) -> String? {
        guard a.voxelCount == b.voxelCount, a.dims == 3, b.dims == 3 else { return "sizes \(a.size) and \(b.size)" }
        return difference(a, within: b)
    }

    /// nil when every voxel of `part` has `whole`'s value (within `tolerance` of it, relative above 1)
    /// at the same world position (`part` may span some of `whole`'s voxels), else the first difference.
    static func difference(_ part: MedicalImage, within whole: MedicalImage, tolerance: Float = 1e-3) -> String? {
        let gp = part.geometry, gw = whole.geometry
        for z in 0..<part.size[2] { for y in 0..<part.size[1] { for x in 0..<part.size[0] {
            let world = gp.world([Double(x), Double(y), Double(z)]), inWhole = gw.index(world)
            let i = inWhole.map { Int($0.rounded()) }
            guard zip(inWhole, i).allSatisfy({ abs($0 - Double($1)) < 1e-3 }), (0..<3).allSatisfy({ i[$0] >= 0 && i[$0] < whole.size[$0] }) else {
                return "voxel \([x, y, z]) at \(world) falls at \(inWhole) in the reference grid \(whole.size)"
            }
            let a = part.voxels[(z * part.size[1] + y) * part.size[0] + x], b = whole.voxels[(i[2] * whole.size[1] + i[1]) * whole.size[0] + i[0]]
            if abs(a - b) > tolerance * max(1, abs(b)) { return "voxel \([x, y, z]): \(a), reference \(b)" }
        } } }
        return nil
    }

    func testSeriesInEveryOrientationMatchesTheVolumeAndDcm2niix() throws {
        for orientation in ["axial", "sagittal", "coronal", "oblique"] {
            let folder = scratch.appendingPathComponent(orientation)
            let written = try DICOMFixtures.writeSeries(folder, ["--orientation", orientation, "--shuffle", "--intercept", "-1024", "--seed", "7"])
            let image = try ImageIO.read(folder)
            XCTAssertEqual(image.size, [12, 10, 7], orientation)
            XCTAssertEqual(image.pixelType, .int16, orientation)
            // Slices sorted along the normal, whatever the file names: the written volume, voxel for voxel.
            XCTAssertEqual(image.voxels, written.values.map(Float.init), orientation)
            for (a, b) in zip(image.geometry.spacing, written.spacing) { XCTAssertEqual(a, b, accuracy: 1e-6, orientation) }
            for (a, b) in zip(image.geometry.origin, written.ipp0) { XCTAssertEqual(a, b, accuracy: 1e-4, orientation) }
            let reference = try Self.dcm2niix(folder, into: scratch.appendingPathComponent("nii-\(orientation)"))
            XCTAssertNil(Self.physicalDifference(image, reference), orientation)
        }
    }

    func testRescaleSlopeGivesFloatVoxelsAsDcm2niix() throws {
        let folder = scratch.appendingPathComponent("mr")
        let written = try DICOMFixtures.writeSeries(folder, ["--modality", "MR", "--slope", "0.5", "--intercept", "10.25", "--orientation", "sagittal"])
        let image = try DICOM.read(folder: folder)
        XCTAssertEqual(image.pixelType, .float32)
        XCTAssertEqual(image.voxels, written.values.map(Float.init))
        XCTAssertNil(Self.physicalDifference(image, try Self.dcm2niix(folder, into: scratch.appendingPathComponent("nii"))))
    }

    func testAFolderOfSeveralSeriesListsThemAndAsksWhich() throws {
        let folder = scratch.appendingPathComponent("study")
        let first = try DICOMFixtures.writeSeries(folder, ["--series-number", "2", "--description", "plain", "--prefix", "A"])
        let second = try DICOMFixtures.writeSeries(folder, ["--series-number", "5", "--description", "contrast", "--prefix", "B", "--seed", "3"])
        try Data("not DICOM".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        let series = try DICOM.series(in: folder)
        XCTAssertEqual(series.map(\.number), ["2", "5"])
        XCTAssertEqual(series.map(\.description), ["plain", "contrast"])
        XCTAssertEqual(series.map(\.uid), [first.uid, second.uid])
        XCTAssertEqual(series.map(\.files.count), [7, 7])
        XCTAssertThrowsError(try ImageIO.read(folder)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.hasPrefix("\(folder.path): holds 2 DICOM series; choose one with `series: NUMBER` or `series: UID`"), text)
            XCTAssertTrue(text.contains("series 5  CT  \"contrast\"  7 file(s)  \(second.uid)"), text)
        }
        XCTAssertEqual(try DICOM.read(folder: folder, series: "5").voxels, second.values.map(Float.init))
        XCTAssertEqual(try DICOM.read(folder: folder, series: first.uid).voxels, first.values.map(Float.init))
        XCTAssertThrowsError(try DICOM.read(folder: folder, series: "9")) { XCTAssertTrue("\($0)".contains("no series '9'"), "\($0)") }
        XCTAssertFalse(DICOM.isSeriesFolder(scratch.appendingPathComponent("absent")))
        XCTAssertTrue(DICOM.isSeriesFolder(folder))
    }

    func testBrokenSeriesAreRefusedNamingTheFile() throws {
        let gap = scratch.appendingPathComponent("gap")
        try DICOMFixtures.writeSeries(gap, ["--gap-after", "2"])
        XCTAssertThrowsError(try ImageIO.read(gap)) { error in
            XCTAssertTrue("\(error)".contains("5 mm from") && "\(error)".contains("unevenly spaced slices (a missing file?)"), "\(error)")
            XCTAssertTrue("\(error)".hasPrefix(gap.path + "/IM"), "\(error)")
        }
        let twice = scratch.appendingPathComponent("twice")
        try DICOMFixtures.writeSeries(twice, ["--duplicate", "4"])
        XCTAssertThrowsError(try ImageIO.read(twice)) { XCTAssertTrue("\($0)".contains("lie at the same position"), "\($0)") }
        let empty = scratch.appendingPathComponent("empty")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        try Data("x".utf8).write(to: empty.appendingPathComponent("readme"))
        XCTAssertThrowsError(try ImageIO.read(empty)) { XCTAssertEqual("\($0)", "\(empty.path): no DICOM files in this folder") }
    }

    /// Entries that are no files (a dangling link, a link loop, a FIFO, a link to /dev/null, a
    /// folder) among a series' files are passed over: every slice is still read. GDCM's own
    /// directory walk stopped at the first of them and returned a volume of the slices before it.
    func testEntriesThatAreNoFilesDoNotCutASeriesShort() throws {
        let folder = scratch.appendingPathComponent("mixed")
        let written = try DICOMFixtures.writeSeries(folder, ["--size", "6,5,20"])
        let fm = FileManager.default
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("IM_dangling").path, withDestinationPath: "/nonexistent/file")
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("IM_loop_a").path, withDestinationPath: folder.appendingPathComponent("IM_loop_b").path)
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("IM_loop_b").path, withDestinationPath: folder.appendingPathComponent("IM_loop_a").path)
        try fm.createSymbolicLink(atPath: folder.appendingPathComponent("IM_null").path, withDestinationPath: "/dev/null")
        XCTAssertEqual(mkfifo(folder.appendingPathComponent("IM_fifo").path, 0o644), 0)
        try fm.createDirectory(at: folder.appendingPathComponent("IM_folder"), withIntermediateDirectories: true)
        let image = try ImageIO.read(folder)
        XCTAssertEqual(image.size, [6, 5, 20], "all 20 slices")
        XCTAssertEqual(image.voxels.count, written.values.count)
    }
}
