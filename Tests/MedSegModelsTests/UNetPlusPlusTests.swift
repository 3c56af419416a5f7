import XCTest
import Torch
import TestSupport
@testable import MedSegModels

/// Parity with the PyTorch UNet++ of scripts/fixtures/make_zoo_fixtures_unet.py.
final class UNetPlusPlusTests: XCTestCase {
    private func config(_ fx: [String: Any], deepSupervision: Bool = true) -> UNetPlusPlus.Config {
        let c = fx["config"] as! [String: Any]
        if let features = c["features"] as? [Int] {
            return .init(dims: c["dims"] as! Int, inChannels: c["in"] as! Int, classes: c["classes"] as! Int, featuresPerStage: features,
                         kernelSizes: c["kernels"] as! [[Int]], strides: c["strides"] as! [[Int]], deepSupervision: deepSupervision)
        }
        return .init(dims: c["dims"] as! Int, inChannels: c["in"] as! Int, classes: c["classes"] as! Int,
                     baseFeatures: c["base"] as! Int, depth: c["depth"] as! Int, deepSupervision: deepSupervision,
                     maxFeatures: c["max_features"] as? Int)
    }

    private func checkParity(_ file: String) throws {
        let fx = try fixtures.json(file)
        let net = try UNetPlusPlus(config(fx))
        try FixtureSupport.assertParity(net, fixture: fx, stateKeys: net.namedStateTensors().map(\.name), file) { try net.headOutputs($0) }
    }

    func testMatches2DPyTorchReference() throws { try checkParity("unetpp_2d.json") }

    func testMatches3DPyTorchReference() throws { try checkParity("unetpp_3d.json") }

    /// On a plan's stages: anisotropic kernels and strides (no pooling along z at first).
    func testMatchesPyTorchOnAPlannedAnisotropicTopology() throws {
        try checkParity("unetpp_3d_planned.json")
        let net = try UNetPlusPlus(config(try fixtures.json("unetpp_3d_planned.json")))
        XCTAssertEqual(net.config.divisor, [2, 4, 4])
        XCTAssertThrowsError(try net(Tensor.zeros([1, 1, 4, 8, 6]))) { XCTAssertTrue("\($0)".contains("[2, 4, 4]"), "\($0)") }
    }

    func testDefaultParameterCounts() throws {
        let fx = try fixtures.json("unetpp_2d.json")
        let counts = fx["default_param_counts"] as! [String: Int]
        XCTAssertEqual(try UNetPlusPlus(.init(dims: 3, inChannels: 1, classes: 3)).parameterCount(), counts["3d"])
        XCTAssertEqual(try UNetPlusPlus(.init(dims: 2, inChannels: 4, classes: 4)).parameterCount(), counts["2d"])
    }

    func testDeepSupervisionSwitch() throws {
        let fx = try fixtures.json("unetpp_3d.json")
        let ds = try UNetPlusPlus(config(fx))
        let single = try UNetPlusPlus(config(fx, deepSupervision: false))
        try single.load(ds.stateDict())
        let x = try Tensor.randn([1, 1, 8, 8, 8])
        let heads = try ds.headOutputs(x)
        XCTAssertEqual(heads.count, 2)
        XCTAssertTrue(heads.allSatisfy { $0.shape == [1, 2, 8, 8, 8] })
        let outs = try ds.outputs(x)
        try FixtureSupport.assertClose(outs[0], heads[1], rtol: 0, atol: 0, "outputs() puts the final head first")
        try FixtureSupport.assertClose(try ds(x), heads[1], rtol: 0, atol: 0, "forward = final head")
        let one = try single.headOutputs(x)
        XCTAssertEqual(one.count, 1)
        try FixtureSupport.assertClose(one[0], heads[1], rtol: 1e-5, atol: 1e-6, "final head without deep supervision")
        XCTAssertEqual(ds.outputWeights, [0.5, 0.5])
        XCTAssertEqual(single.outputWeights, [1])
    }

    func testBadInputIsAClearError() throws {
        let net = try UNetPlusPlus(.init(dims: 2, baseFeatures: 2, depth: 3))
        XCTAssertThrowsError(try net(Tensor.randn([1, 1, 10, 10]))) { XCTAssertTrue("\($0)".contains("divisible by [4, 4]"), "\($0)") }
        XCTAssertThrowsError(try UNetPlusPlus(.init(dims: 4)))
        XCTAssertThrowsError(try UNetPlusPlus(.init(depth: 1)))
    }
}
