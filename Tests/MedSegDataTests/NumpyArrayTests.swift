import Foundation
import XCTest
import TestSupport
@testable import MedSegData

/// `.npy` arrays as numpy writes them, in each float width, and what is refused.
final class NumpyArrayTests: XCTestCase {
    func testReadsNumpysFloatArraysAndRefusesTheRest() throws {
        let folder = try makeTemporaryFolder("npy")
        defer { try? FileManager.default.removeItem(at: folder) }
        _ = try Python.run("""
        import sys, numpy as np
        values = np.array([[0.5, -2.25, 3.0], [1e-3, 65504.0, -0.0]])
        for name in ("f2", "f4", "f8"):
            np.save(f"{sys.argv[1]}/{name}.npy", values.astype(name))
        np.save(f"{sys.argv[1]}/int.npy", np.arange(6, dtype=np.int32))
        np.save(f"{sys.argv[1]}/fortran.npy", np.asfortranarray(values.astype(np.float32)))
        """, [folder.path])
        for name in ["f2", "f4", "f8"] {
            let array = try NumpyArray(Data(contentsOf: folder.appendingPathComponent("\(name).npy")))
            XCTAssertEqual(array.shape, [2, 3], name)
            let expected: [Float] = [0.5, -2.25, 3, name == "f2" ? 0.0010004044 : 1e-3, 65504, -0]
            for (got, want) in zip(array.values, expected) { XCTAssertEqual(got, want, accuracy: abs(want) * 1e-6, name) }
        }
        XCTAssertThrowsError(try NumpyArray(Data(contentsOf: folder.appendingPathComponent("int.npy")))) {
            XCTAssertTrue("\($0)".contains("an array of type '<i4'"), "\($0)")
        }
        XCTAssertThrowsError(try NumpyArray(Data(contentsOf: folder.appendingPathComponent("fortran.npy")))) {
            XCTAssertTrue("\($0)".contains("Fortran-order"), "\($0)")
        }
        XCTAssertThrowsError(try NumpyArray(Data("not numpy".utf8))) { XCTAssertTrue("\($0)".contains("not a numpy .npy array"), "\($0)") }
    }
}
