import Foundation
import XCTest
import TestSupport
@testable import MedSegData

final class DatasetDescriptionTests: XCTestCase {
    private func text(_ labels: String, _ extra: String = "") -> String {
        #"{"channel_names": {"0": "T1", "1": "T2"}, "numTraining": 2, "file_ending": ".nii.gz", "labels": "# + labels + extra + "}"
    }

    func testRegionsKeepTheFileOrderAndTheIgnoreLabelIsSeparate() throws {
        let d = try DatasetDescription.decode(Data(text(#"{"background": 0, "whole": [1, 2, 3], "core": [2, 3], "active": 3, "ignore": 4}"#,
                                                        #", "regions_class_order": [1, 2, 3]"#).utf8))
        XCTAssertTrue(d.hasRegions)
        XCTAssertEqual(d.regions, [[1, 2, 3], [2, 3], [3]])
        XCTAssertEqual(d.ignoreLabel, 4)
        XCTAssertEqual(d.labelValues, [0, 1, 2, 3, 4])
        XCTAssertEqual(d.foregroundLabels, [1, 2, 3])
        XCTAssertEqual(d.labelNames, [0: "background", 3: "active", 4: "ignore"])
    }

    func testBadLabelLayoutsNameTheFileAndTheProblem() throws {
        let dir = try makeTemporaryFolder("dd")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("dataset.json")
        for (labels, message) in [(#"{"background": 0, "a": 2, "ignore": 1}"#, "must be higher"),
                                  (#"{"background": 0, "a": [1, 2]}"#, "regions_class_order"),
                                  (#"{"a": 1}"#, "background = 0"),
                                  (#"{"background": 0, "a": "x"}"#, "labels")] {
            try Data(text(labels).utf8).write(to: url)
            XCTAssertThrowsError(try DatasetDescription.load(url)) {
                XCTAssertTrue("\($0)".contains(url.path) && "\($0)".contains(message), "\($0)")
            }
        }
    }

    func testPlainLabelsRoundTrip() throws {
        let d = DatasetDescription(channelNames: ["CT"], labels: ["background": 0, "liver": 1], numTraining: 3, fileEnding: ".nii.gz")
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dd-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try d.write(to: dir.appendingPathComponent("dataset.json"))
        XCTAssertEqual(try DatasetDescription.load(dir.appendingPathComponent("dataset.json")), d)
    }
}
