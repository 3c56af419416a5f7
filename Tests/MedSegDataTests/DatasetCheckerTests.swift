import Foundation
import XCTest
@testable import MedSegData

/// `medseg data check` finds each kind of problem and names the file.
final class DatasetCheckerTests: XCTestCase {
    private var root: URL!

    override func setUpWithError() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("check-\(UUID().uuidString)")
        try SyntheticCases(.init(dims: 2, size: [24, 20], classes: 2, seed: 5)).write(to: root, training: 3, test: 0, fileEnding: ".nii.gz")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: root) }

    private func file(_ path: String) -> URL { root.appendingPathComponent(path) }

    private func problems() -> [String] { DatasetChecker.check(root).map(\.description) }

    private func assertOneProblem(_ file: String, _ words: [String], line: UInt = #line) {
        let found = problems()
        XCTAssertEqual(found.count, 1, "\(found)", line: line)
        let text = found.first ?? ""
        XCTAssertTrue(text.contains(file), text, line: line)
        for w in words { XCTAssertTrue(text.contains(w), "'\(w)' in: \(text)", line: line) }
    }

    func testCleanDataSetHasNoProblems() {
        XCTAssertEqual(problems(), [])
    }

    /// Cases are checked on several threads (preprocess passes its workers): the same problems, in
    /// case order, as one thread finds.
    func testWorkersListTheSameProblemsInCaseOrder() throws {
        try FileManager.default.removeItem(at: file("imagesTr/synth_002_0000.nii.gz"))
        var label = try ImageIO.read(file("labelsTr/synth_000.nii.gz"))
        label.geometry = ImageGeometry(spacing: [0.5, 0.5], origin: [10, 0])
        try ImageIO.write(label, to: file("labelsTr/synth_000.nii.gz"))
        let one = DatasetChecker.check(root, workers: 1).map(\.description)
        XCTAssertEqual(one.count, 2, "\(one)")
        XCTAssertTrue(one[0].contains("synth_000_0000") && one[1].contains("synth_002_0000"), "\(one)")
        for workers in [2, 3, 8] { XCTAssertEqual(DatasetChecker.check(root, workers: workers).map(\.description), one) }
    }

    func testMissingImageOfALabel() throws {
        try FileManager.default.removeItem(at: file("imagesTr/synth_001_0000.nii.gz"))
        assertOneProblem("synth_001_0000.nii.gz", ["missing"])
    }

    func testImageWithoutLabel() throws {
        try FileManager.default.removeItem(at: file("labelsTr/synth_002.nii.gz"))
        var d = try DatasetDescription.load(file("dataset.json"))
        d.numTraining = 2
        try d.write(to: file("dataset.json"))
        assertOneProblem("synth_002_0000.nii.gz", ["no label"])
    }

    func testImageNameWithoutAChannelNumber() throws {
        try FileManager.default.copyItem(at: file("imagesTr/synth_001_0000.nii.gz"), to: file("imagesTr/synth_001.nii.gz"))
        assertOneProblem("imagesTr/synth_001.nii.gz", ["no channel number", "CASE_0000.nii.gz"])
    }

    func testShapeMismatch() throws {
        let label = try ImageIO.read(file("labelsTr/synth_000.nii.gz"))
        try ImageIO.write(MedicalImage(size: [20, 24], voxels: label.voxels, pixelType: .uint8, geometry: label.geometry),
                          to: file("labelsTr/synth_000.nii.gz"))
        assertOneProblem("synth_000_0000.nii.gz", ["size [24, 20]", "[20, 24]"])
    }

    func testGeometryMismatch() throws {
        var label = try ImageIO.read(file("labelsTr/synth_000.nii.gz"))
        label.geometry = ImageGeometry(spacing: [0.5, 0.5], origin: [10, 0])
        try ImageIO.write(label, to: file("labelsTr/synth_000.nii.gz"))
        assertOneProblem("synth_000_0000.nii.gz", ["geometry", "spacing"])
    }

    /// Only the direction differs: the message shows both matrices (spacing and origin alone look equal).
    func testDirectionMismatchShowsBothMatrices() throws {
        var label = try ImageIO.read(file("labelsTr/synth_000.nii.gz"))
        let image = try ImageIO.read(file("imagesTr/synth_000_0000.nii.gz"))
        label.geometry = ImageGeometry(spacing: image.geometry.spacing, origin: image.geometry.origin, direction: [0, 1, 1, 0])
        try ImageIO.write(label, to: file("labelsTr/synth_000.nii.gz"))
        let expectedImage = DatasetChecker.matrix(image.geometry.direction)
        let expectedLabel = DatasetChecker.matrix(try ImageIO.read(file("labelsTr/synth_000.nii.gz")).geometry.direction)
        XCTAssertNotEqual(expectedImage, expectedLabel)
        assertOneProblem("synth_000_0000.nii.gz", ["direction \(expectedImage)", "direction \(expectedLabel)"])
        XCTAssertEqual(DatasetChecker.matrix([1, 0, 0, 0, 0, -1, 0, 1, 0]), "[[1, 0, 0], [0, 0, -1], [0, 1, 0]]")
    }

    func testLabelValueNotInDatasetJSON() throws {
        var label = try ImageIO.read(file("labelsTr/synth_001.nii.gz"))
        label.voxels[0] = 7
        try ImageIO.write(label, to: file("labelsTr/synth_001.nii.gz"))
        assertOneProblem("synth_001.nii.gz", ["[7]", "not in dataset.json"])
    }

    func testConstantAndNaNImages() throws {
        var image = try ImageIO.read(file("imagesTr/synth_000_0000.nii.gz"))
        image.voxels = image.voxels.map { _ in 0 }
        try ImageIO.write(image, to: file("imagesTr/synth_000_0000.nii.gz"))
        var other = try ImageIO.read(file("imagesTr/synth_002_0000.nii.gz"))
        other.pixelType = .float32
        other.voxels[3] = .nan
        try ImageIO.write(other, to: file("imagesTr/synth_002_0000.nii.gz"))
        let found = problems()
        XCTAssertEqual(found.count, 2, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("synth_000_0000") && $0.contains("constant") }, "\(found)")
        XCTAssertTrue(found.contains { $0.contains("synth_002_0000") && $0.contains("NaN") }, "\(found)")
    }

    func testWrongChannelCount() throws {
        let image = try ImageIO.read(file("imagesTr/synth_000_0000.nii.gz"))
        try ImageIO.write(image, to: file("imagesTr/synth_000_0001.nii.gz"))
        assertOneProblem("synth_000_0001.nii.gz", ["channel 1", "1 channel"])
    }

    func testTruncatedFileIsReportedNotFatal() throws {
        let url = file("imagesTr/synth_001_0000.nii.gz")
        let data = try Data(contentsOf: url)
        try data.prefix(data.count / 2).write(to: url)
        assertOneProblem("synth_001_0000.nii.gz", [])
    }

    func testBrokenDatasetJSON() throws {
        try Data("{\"labels\": {}}".utf8).write(to: file("dataset.json"))
        let found = problems()
        XCTAssertEqual(found.count, 1)
        XCTAssertTrue(found[0].contains("dataset.json") && found[0].contains("channel_names"), "\(found)")
    }
}
