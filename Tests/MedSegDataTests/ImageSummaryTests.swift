import Foundation
import XCTest
import TestSupport
@testable import MedSegData

/// `ImageIO.inspect` (NIfTI and TIFF streamed chunk by chunk, other formats read) against the
/// summary of the whole image read, for every reference file of the readers' fixtures; errors of
/// truncated streams; and `MemoryBudget`'s refusal of an image too large to hold.
final class ImageSummaryTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeTemporaryFolder("medseg-summary")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    private func assertSameSummary(_ streamed: ImageSummary, _ whole: ImageSummary, _ name: String) {
        XCTAssertEqual(streamed.size, whole.size, name)
        XCTAssertEqual(streamed.channels, whole.channels, name)
        XCTAssertEqual(streamed.pixelType, whole.pixelType, name)
        XCTAssertEqual(streamed.geometry, whole.geometry, name)
        let (s, w) = (streamed.statistics, whole.statistics)
        XCTAssertEqual(s.minimum, w.minimum, name)
        XCTAssertEqual(s.maximum, w.maximum, name)
        XCTAssertEqual(s.finiteCount, w.finiteCount, name)
        XCTAssertEqual(s.nonFiniteCount, w.nonFiniteCount, name)
        XCTAssertEqual(s.mean ?? 0, w.mean ?? 0, accuracy: 1e-9 * max(1, abs(w.mean ?? 0)), name)
        XCTAssertEqual(s.valueCounts?.map(\.value), w.valueCounts?.map(\.value), name)
        XCTAssertEqual(s.valueCounts?.map(\.count), w.valueCounts?.map(\.count), name)
    }

    func testStreamedSummariesEqualThoseOfTheWholeImage() throws {
        let expected = try fixtures.json("io/expected.json")
        var streamed = 0
        for name in expected.keys.sorted() {
            let url = fixtures.root.appendingPathComponent("io/" + name)
            if [".nii", ".nii.gz", ".hdr", ".tif", ".tiff"].contains(ImageIO.fileEnding(of: url)) { streamed += 1 }
            assertSameSummary(try ImageIO.inspect(url), ImageSummary(try ImageIO.read(url)), name)
        }
        XCTAssertGreaterThanOrEqual(streamed, 8, "the fixtures hold NIfTI and TIFF files of several kinds")
    }

    func testScaledAndNonFiniteVoxelsAreCountedAsAWholeReadGivesThem() throws {
        // int16 stored, scl_slope 0.5 and scl_inter -1024 patched into the header: a CT as scanners store it.
        let stored = (0..<(17 * 9 * 5)).map { Float(($0 * 37) % 4000) }
        let plain = scratch.appendingPathComponent("ct.nii")
        try NIfTI.write(MedicalImage(size: [17, 9, 5], voxels: stored, pixelType: .int16), to: plain)
        var bytes = try Data(contentsOf: plain)
        withUnsafeBytes(of: Float(0.5).bitPattern.littleEndian) { bytes.replaceSubrange(112..<116, with: $0) }
        withUnsafeBytes(of: Float(-1024).bitPattern.littleEndian) { bytes.replaceSubrange(116..<120, with: $0) }
        try bytes.write(to: plain)
        let summary = try ImageIO.inspect(plain)
        XCTAssertEqual(summary.statistics.minimum, -1024)
        XCTAssertEqual(summary.statistics.maximum, stored.max()! * 0.5 - 1024)
        assertSameSummary(summary, ImageSummary(try ImageIO.read(plain)), "scaled int16")

        let floats = scratch.appendingPathComponent("nan.nii.gz")
        try NIfTI.write(MedicalImage(size: [4, 3], voxels: [1, .nan, 3, .infinity, -2, 0, 0, 0, 1, 1, 1, 5]), to: floats)
        let withNaN = try ImageIO.inspect(floats)
        XCTAssertEqual(withNaN.statistics.nonFiniteCount, 2)
        XCTAssertEqual(withNaN.statistics.finiteCount, 10)
        XCTAssertEqual(withNaN.statistics.mean, 10.0 / 10)
        assertSameSummary(withNaN, ImageSummary(try ImageIO.read(floats)), "float32 with NaN")
    }

    func testTooManyDistinctValuesIsNoLabelMap() {
        let few = ImageStatistics((0..<1000).map { Float($0 % 32) })
        XCTAssertEqual(few.valueCounts?.count, 32)
        XCTAssertEqual(few.valueCounts?.first?.count, 32)
        XCTAssertNil(ImageStatistics((0..<1000).map { Float($0 % 33) }).valueCounts)
    }

    func testATruncatedStreamNamesTheFile() throws {
        let url = scratch.appendingPathComponent("cut.nii.gz")
        try NIfTI.write(MedicalImage(size: [64, 64, 16], voxels: [Float](repeating: 3, count: 64 * 64 * 16), pixelType: .int16), to: url)
        let cut = try inflated(url).prefix(352 + 1000)
        let plain = scratch.appendingPathComponent("cut.nii")
        try cut.write(to: plain)
        XCTAssertThrowsError(try ImageIO.inspect(plain)) { error in
            XCTAssertEqual((error as? DataError)?.file, plain.path)
            XCTAssertTrue("\(error)".contains("truncated: header says 131072 voxel bytes, file has 1000"), "\(error)")
        }
        let tiff = scratch.appendingPathComponent("cut.tif")
        let noise: [Float] = (0..<(64 * 64 * 3)).map { (i: Int) -> Float in
            let hashed: Int = (i &* 1_103_515_245 &+ 12345) >> 16
            return Float(hashed & 255)
        }
        try PlanarImages.writeTIFF(MedicalImage(size: [64, 64, 3], voxels: noise, pixelType: .uint8), to: tiff)
        let whole = try Data(contentsOf: tiff)
        try Data(whole.prefix(whole.count / 2)).write(to: tiff)
        XCTAssertThrowsError(try ImageIO.read(tiff))
        XCTAssertThrowsError(try ImageIO.inspect(tiff)) { error in
            XCTAssertEqual((error as? DataError)?.file, tiff.path)
        }
    }

    func testAnImageTooLargeForMemoryIsRefusedSayingHowMuchItNeeds() throws {
        let available = try XCTUnwrap(MemoryBudget.available(), "Linux tells the free memory")
        XCTAssertGreaterThan(available, 0)
        let file = scratch.appendingPathComponent("huge.nii.gz")
        XCTAssertNoThrow(try MemoryBudget.require(1 << 20, for: "a megabyte", file: file))
        XCTAssertThrowsError(try MemoryBudget.require(available + (1 << 40), for: "reading it whole", file: file)) { error in
            XCTAssertEqual((error as? DataError)?.file, file.path)
            XCTAssertTrue("\(error)".contains("reading it whole needs \(MemoryBudget.gigabytes(available + (1 << 40))) of memory"), "\(error)")
        }
    }

    private func inflated(_ url: URL) throws -> Data { try readFileInflating(url) }
}
