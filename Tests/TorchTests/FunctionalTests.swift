import XCTest
@testable import Torch
import TestSupport

/// Single functions against PyTorch's outputs (Fixtures/torch/functional.json).
final class FunctionalTests: XCTestCase {
    private var cases: [String: Any] = [:]

    override func setUpWithError() throws {
        cases = try fixtures.json("torch/functional.json")
    }

    private func check(_ name: String, file: StaticString = #filePath, line: UInt = #line, _ op: (Tensor) throws -> Tensor) throws {
        let c = try XCTUnwrap(cases[name] as? [String: Any], name)
        let out = try op(try FixtureSupport.tensor(c["input"]))
        try FixtureSupport.assertClose(out, try FixtureSupport.tensor(c["output"]), name, file: file, line: line)
    }

    func testInterpolation() throws {
        try check("nearest_up") { try F.interpolate($0, size: [7, 9], mode: .nearest) }
        try check("bilinear_up") { try F.interpolate($0, size: [7, 9], mode: .bilinear) }
        try check("bilinear_up_ac") { try F.interpolate($0, size: [7, 9], mode: .bilinear, alignCorners: true) }
        try check("trilinear_down") { try F.interpolate($0, size: [2, 3, 3], mode: .trilinear) }
    }

    func testAffineGridAndGridSample() throws {
        try check("grid_sample_2d") { x in
            let theta = try Tensor([0.9, -0.2, 0.1, 0.3, 1.1, -0.2] as [Float], shape: [1, 2, 3])
            return try F.gridSample(x[0..<1], grid: F.affineGrid(theta, size: [1, 3, 5, 6]))
        }
        try check("grid_sample_3d_nearest_border") { x in
            let theta = try Tensor([1.0, 0.1, 0.0, 0.05, 0.0, 0.9, 0.2, 0.0, -0.1, 0.0, 1.1, 0.1] as [Float], shape: [1, 3, 4])
            return try F.gridSample(x, grid: F.affineGrid(theta, size: [1, 2, 3, 4, 5], alignCorners: true),
                                    mode: .nearest, paddingMode: .border, alignCorners: true)
        }
    }

    func testPadding() throws {
        try check("pad_reflect") { try $0.pad([1, 2, 2, 1], mode: .reflect) }
        try check("pad_replicate_3d") { try $0.pad([1, 1, 0, 2, 1, 0], mode: .replicate) }
        try check("pad_constant") { try $0.pad([0, 1, 1, 0], value: 0.5) }
    }

    func testPoolingActivationsAndNorms() throws {
        try check("softmax") { try $0.softmax(dim: 1) }
        try check("log_softmax") { try $0.logSoftmax(dim: -1) }
        try check("adaptive_avg") { try F.adaptiveAvgPool($0, outputSize: [2, 3]) }
        try check("adaptive_max_3d") { try F.adaptiveMaxPool($0, outputSize: [1, 2, 2]) }
        try check("avg_pool_pad") { try F.avgPool($0, kernel: [3], stride: [2], padding: [1]) }
        try check("max_pool_ceil") { try F.maxPool($0, kernel: [2], ceilMode: true) }
        try check("softplus") { try F.softplus($0, beta: 2, threshold: 1) }
        try check("elu") { try F.elu($0, alpha: 0.7) }
        try check("gelu_tanh") { try F.gelu($0, approximateTanh: true) }
        try check("layer_norm") { try F.layerNorm($0, normalizedShape: [5, 6]) }
        try check("group_norm") { try F.groupNorm($0, groups: 3) }
    }

    func testLosses() throws {
        let ce = try XCTUnwrap(cases["cross_entropy_weighted_ignore_smooth"] as? [String: Any])
        let loss = try F.crossEntropy(FixtureSupport.tensor(ce["input"]), target: FixtureSupport.tensor(ce["target"]),
                                      weight: FixtureSupport.tensor(ce["weight"]), labelSmoothing: 0.1)
        try FixtureSupport.assertClose(loss, try FixtureSupport.tensor(ce["output"]), "cross entropy")
        let bce = try XCTUnwrap(cases["bce_logits_pos_weight"] as? [String: Any])
        let b = try F.binaryCrossEntropyWithLogits(FixtureSupport.tensor(bce["input"]), target: FixtureSupport.tensor(bce["target"]),
                                                   posWeight: FixtureSupport.tensor(bce["pos_weight"]))
        try FixtureSupport.assertClose(b, try FixtureSupport.tensor(bce["output"]), "bce with logits")
    }

    func testOneHotTopkArgmax() throws {
        let labels = try Tensor([2, 0, 1] as [Int64])
        XCTAssertEqual(try F.oneHot(labels, numClasses: 3).toArray(Int64.self), [0, 0, 1, 1, 0, 0, 0, 1, 0])
        let v = try Tensor([3, 9, 1, 7] as [Float])
        let (values, indices) = try v.topk(2)
        XCTAssertEqual(try values.floats(), [9, 7])
        XCTAssertEqual(try indices.toArray(Int64.self), [1, 3])
        XCTAssertEqual(try v.argmax().itemInt(), 1)
        let m = try Tensor([1, 5, 2, 8, 0, 3] as [Float], shape: [2, 3])
        XCTAssertEqual(try m.argmax(dim: 1).toArray(Int64.self), [1, 0])
    }

    func testDropoutIsIdentityInEvalAndScalesInTraining() throws {
        let x = try Tensor.ones([1000])
        XCTAssertEqual(try F.dropout(x, p: 0.5, training: false).floats(), try x.floats())
        Torch.manualSeed(0)
        let kept = try F.dropout(x, p: 0.5, training: true).floats()
        XCTAssertTrue(kept.allSatisfy { $0 == 0 || $0 == 2 }, "kept elements are scaled by 1/(1-p)")
        let zeros = kept.filter { $0 == 0 }.count
        XCTAssertTrue(zeros > 400 && zeros < 600, "about half are dropped, got \(zeros)")
    }
}
