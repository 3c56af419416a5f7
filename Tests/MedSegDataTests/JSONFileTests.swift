import Foundation
import XCTest
@testable import MedSegData

/// The JSON files users edit: what is wrong reads as one line with the line and column, or the key path.
final class JSONFileTests: XCTestCase {
    private struct Fold: Decodable { var train: [String]; var val: [String] }

    private func problem<T: Decodable>(_ type: T.Type, _ text: String) -> String {
        XCTAssertThrowsError(try JSONFile.decode(type, from: Data(text.utf8))) { _ in }
        do { _ = try JSONFile.decode(type, from: Data(text.utf8)) } catch let error as DataError { return error.problem } catch { return "\(error)" }
        return ""
    }

    func testProblemsNameTheLineAndColumnOrTheKey() throws {
        // A missing comma: the parser stops at the next key, line 2, column 29.
        let broken = "{\"channel_names\": {\"0\": \"MRI\"},\n \"labels\": {\"background\": 0 \"a\": 1},\n \"numTraining\": 6, \"file_ending\": \".png\"}"
        XCTAssertEqual(problem(DatasetDescription.self, broken), "not valid JSON at line 2, column 29 (invalid value)")
        XCTAssertEqual(problem(DatasetDescription.self, " \n"), "the file is empty")
        XCTAssertEqual(problem(DatasetDescription.self, #"{"channel_names": {"0": "MRI"}, "labels": {"background": 0}, "file_ending": ".png"}"#),
                       #"missing key "numTraining""#)
        XCTAssertEqual(problem([Fold].self, #"[{"train": ["a"], "val": ["b"]}, {"train": ["b"], "val": 5}]"#),
                       "wrong type at [1].val: expected a list")
        XCTAssertEqual(problem([Fold].self, #"[{"train": [1], "val": []}]"#), "wrong type at [0].train[0]: expected text in quotes")
        XCTAssertEqual(problem([Fold].self, #"[{"train": ["a"], "val": null}]"#), "[0].val is null where a value is needed")
        // Through dataset.json's loader: the file's name first.
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("json-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(broken.utf8).write(to: url)
        XCTAssertThrowsError(try DatasetDescription.load(url)) { error in
            XCTAssertEqual("\(error)", "\(url.path): not a valid dataset.json: not valid JSON at line 2, column 29 (invalid value)")
        }
    }
}
