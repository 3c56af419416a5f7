import Foundation
import XCTest
import TestSupport
@testable import MedSegData

final class CrossValidationSplitsTests: XCTestCase {
    /// The folds equal KFold(5, shuffle=True, random_state=12345) as nnU-Net computes them, with
    /// numpy's RandomState as the reference.
    func testFoldsMatchNumpyKFold() throws {
        let ids = (0..<23).map { String(format: "case_%03d", $0) }.shuffled()
        let script = """
        import json, numpy as np
        keys = sorted('case_%03d' % i for i in range(23))
        idx = np.arange(len(keys)); np.random.RandomState(12345).shuffle(idx)
        folds, start = [], 0
        for f in range(5):
            size = len(keys) // 5 + (1 if f < len(keys) % 5 else 0)
            val = idx[start:start + size]; start += size
            train = [k for i, k in enumerate(keys) if i not in set(val.tolist())]
            folds.append({"train": train, "val": [keys[i] for i in val]})
        print(json.dumps(folds))
        """
        let expected = try JSONDecoder().decode([CrossValidationSplits.Fold].self, from: Data(try Python.run(script).utf8))
        let splits = try CrossValidationSplits(identifiers: ids)
        XCTAssertEqual(splits.folds, expected)
        XCTAssertEqual(Set(splits.folds.flatMap(\.val)), Set(ids), "every case is validated exactly once")
        XCTAssertEqual(splits.folds.map(\.val.count), [5, 5, 5, 4, 4])
    }

    func testLoadOrCreateKeepsUserEdits() throws {
        let dir = try makeTemporaryFolder("splits")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("splits_final.json")
        let ids = (0..<6).map { "c\($0)" }
        let created = try CrossValidationSplits.loadOrCreate(url, identifiers: ids)
        XCTAssertEqual(created.folds.count, 5)
        let edited = CrossValidationSplits(folds: [.init(train: ["c0", "c1"], val: ["c2"])])
        try JSONEncoder().encode(edited).write(to: url)
        XCTAssertEqual(try CrossValidationSplits.loadOrCreate(url, identifiers: ids), edited)
        try JSONEncoder().encode(CrossValidationSplits(folds: [.init(train: ["zz"], val: ["c2"])])).write(to: url)
        XCTAssertThrowsError(try CrossValidationSplits.loadOrCreate(url, identifiers: ids)) {
            XCTAssertTrue("\($0)".contains("splits_final.json") && "\($0)".contains("zz"), "\($0)")
        }
        XCTAssertThrowsError(try CrossValidationSplits(identifiers: ["a", "b"], folds: 5))
    }
}
