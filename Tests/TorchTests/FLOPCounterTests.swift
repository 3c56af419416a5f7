import XCTest
@testable import Torch

/// FLOPCounter counts 2 FLOPs per multiply-add of convolutions and matrix products, from the
/// shapes, only inside `count`.
final class FLOPCounterTests: XCTestCase {
    func testConvolutionsAndProductsCountTheirMultiplyAdds() throws {
        let x = try Tensor.randn([2, 4, 10, 12])
        let conv = try Conv2d(4, 6, kernelSize: 3, padding: 1)
        // Output 2 x 6 x 10 x 12 elements, each 4 x 3 x 3 multiply-adds.
        XCTAssertEqual(try FLOPCounter.count { _ = try conv(x) }, 2 * (2 * 6 * 10 * 12) * (4 * 9))
        let grouped = try Conv2d(4, 6, kernelSize: 3, stride: 2, padding: 1, groups: 2)
        XCTAssertEqual(try FLOPCounter.count { _ = try grouped(x) }, 2 * (2 * 6 * 5 * 6) * (2 * 9))
        // Transposed: each input element scatters into out/groups x kernel outputs.
        let up = try ConvTranspose2d(4, 3, kernelSize: 2, stride: 2)
        XCTAssertEqual(try FLOPCounter.count { _ = try up(x) }, 2 * (2 * 4 * 10 * 12) * (3 * 4))
        let linear = try Linear(12, 5)
        XCTAssertEqual(try FLOPCounter.count { _ = try linear(x) }, 2 * (2 * 4 * 10 * 5) * 12)
        let a = try Tensor.randn([3, 7, 8]), b = try Tensor.randn([3, 8, 9])
        XCTAssertEqual(try FLOPCounter.count { _ = try a.matmul(b) }, 2 * (3 * 7 * 9) * 8)
        // Nested counts each see their own work; nothing is counted outside.
        var inner = 0
        let outer = try FLOPCounter.count {
            _ = try conv(x)
            inner = try FLOPCounter.count { _ = try a.matmul(b) }
        }
        XCTAssertEqual(inner, 2 * 3 * 7 * 9 * 8)
        XCTAssertEqual(outer, 2 * (2 * 6 * 10 * 12) * 36 + inner)
        XCTAssertFalse(FLOPCounter.isCounting)
        XCTAssertEqual(try FLOPCounter.count { _ = try x.relu() }, 0, "activations are not counted")
    }
}
