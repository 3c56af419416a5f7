import XCTest
@testable import MedSegTrain

final class TrainingConfigTests: XCTestCase {
    func testYAMLOverridesAndRoundTrip() throws {
        let c = try TrainingConfig().merging(yaml: "epochs: 3\nlr: 0.01\npatch_size: [64, 64]\noptimizer: sgd\n", source: "run.yaml")
        XCTAssertEqual(c.epochs, 3)
        XCTAssertEqual(c.lr, 0.01)
        XCTAssertEqual(c.patch_size, [64, 64])
        XCTAssertEqual(c.optimizer, .sgd)
        XCTAssertEqual(c.batch_size, TrainingConfig().batch_size, "keys not in the file keep their value")
        let again = try TrainingConfig().merging(yaml: try c.yaml(), source: "config.yaml")
        XCTAssertEqual(again, c, "the written config reloads to the same values")
    }

    func testUnknownKeyIsNamedWithASuggestion() {
        XCTAssertThrowsError(try TrainingConfig().merging(yaml: "epochz: 3\n", source: "run.yaml")) {
            XCTAssertEqual("\($0)", "run.yaml: unknown key 'epochz' (did you mean 'epochs'?)")
        }
    }

    func testWrongTypesAndBadValuesNameTheKey() {
        XCTAssertThrowsError(try TrainingConfig().merging(yaml: "batch_size: many\n", source: "a.yaml")) {
            XCTAssertTrue("\($0)".contains("'batch_size'"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig().merging(yaml: "optimizer: rmsprop\n", source: "a.yaml")) {
            XCTAssertTrue("\($0)".contains("'optimizer'") && "\($0)".contains("rmsprop"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig().merging(yaml: "dims: 3\n", source: "a.yaml")) {
            XCTAssertTrue("\($0)".contains("'patch_size'"), "\($0)")
        }
        XCTAssertThrowsError(try TrainingConfig().merging(yaml: "- 1\n- 2\n", source: "a.yaml"))
    }

    func testEditDistance() {
        XCTAssertEqual(editDistance("kitten", "sitting"), 3)
        XCTAssertEqual(editDistance("", "abc"), 3)
    }
}
