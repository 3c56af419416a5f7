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

    /// A global batch is split over the ranks as nnU-Net splits it: the first global % world
    /// ranks take one more; without one, batch_size is per process.
    func testGlobalBatchSplitsOverTheRanks() throws {
        var c = TrainingConfig()
        c.batch_size = 3
        XCTAssertEqual(try c.batchPerProcess(rank: 1, world: 4), 3)
        c.global_batch_size = 16
        XCTAssertEqual(try (0..<8).map { try c.batchPerProcess(rank: $0, world: 8) }, Array(repeating: 2, count: 8))
        c.global_batch_size = 5
        XCTAssertEqual(try (0..<2).map { try c.batchPerProcess(rank: $0, world: 2) }, [3, 2])
        c.global_batch_size = 1
        XCTAssertThrowsError(try c.batchPerProcess(rank: 0, world: 2)) { XCTAssertTrue("\($0)".contains("cannot be split over 2"), "\($0)") }
        c.global_batch_size = -2
        XCTAssertThrowsError(try c.validate()) { XCTAssertTrue("\($0)".contains("global_batch_size"), "\($0)") }
    }
}
