import XCTest
@testable import Torch

final class TensorTests: XCTestCase {
    func testCreationAndReadBack() throws {
        let t = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(try t.floats(), [1, 2, 3, 4, 5, 6])
    }
}
