import XCTest
import Torch
import TestSupport
@testable import MedSegModels

/// Parity with a PyTorch re-creation of dynamic_network_architectures' PlainConvUNet
/// (scripts/fixtures/make_zoo_fixtures_unet.py).
final class PlainConvUNetTests: XCTestCase {
    private func config(_ fx: [String: Any], deepSupervision: Bool = true) -> PlainConvUNet.Config {
        let c = fx["config"] as! [String: Any]
        return .init(dims: c["dims"] as! Int, inChannels: c["in"] as! Int, classes: c["classes"] as! Int,
                     featuresPerStage: c["features"] as! [Int], kernelSizes: c["kernels"] as! [[Int]],
                     strides: c["strides"] as! [[Int]], deepSupervision: deepSupervision)
    }

    private func checkParity(_ file: String) throws {
        let fx = try fixtures.json(file)
        let net = try PlainConvUNet(config(fx))
        // Canonical keys = PyTorch's named_parameters(); the aliased layout = PyTorch's state_dict().
        try FixtureSupport.assertParity(net, fixture: fx, stateKeys: net.nnUNetStateDict().pairs.map(\.name), file) { try net.outputs($0) }
    }

    func testMatches2DPyTorchReference() throws { try checkParity("plainunet_2d.json") }

    func testMatches3DPyTorchReference() throws { try checkParity("plainunet_3d.json") }

    func testDeepSupervisionOutputsAndWeights() throws {
        let fx = try fixtures.json("plainunet_3d.json")
        let ds = try PlainConvUNet(config(fx))
        let plain = try PlainConvUNet(config(fx, deepSupervision: false))
        try plain.load(ds.stateDict())
        let x = try Tensor.randn([1, 1, 4, 8, 8])
        let outs = try ds.outputs(x)
        XCTAssertEqual(outs.map(\.shape), [[1, 2, 4, 8, 8], [1, 2, 4, 4, 4]])
        let single = try plain.outputs(x)
        XCTAssertEqual(single.count, 1)
        try FixtureSupport.assertClose(single[0], outs[0], rtol: 1e-5, atol: 1e-6, "final output without deep supervision")
        try FixtureSupport.assertClose(try ds(x), outs[0], rtol: 0, atol: 0, "forward = first output")
        XCTAssertEqual(plain.outputWeights, [1])
        let five = try PlainConvUNet(.regular(dims: 2, inChannels: 1, classes: 2, stages: 5, baseFeatures: 2))
        let w = five.outputWeights
        XCTAssertEqual(w.count, 4)
        XCTAssertEqual(w[3], 0)
        XCTAssertEqual(w[0] / w[1], 2, accuracy: 1e-12)
        XCTAssertEqual(w.reduce(0, +), 1, accuracy: 1e-12)
    }

    func testNNUNetCheckpointLayoutRoundTrips() throws {
        let fx = try fixtures.json("plainunet_2d.json")
        let a = try PlainConvUNet(config(fx)), b = try PlainConvUNet(config(fx))
        let aliased = a.nnUNetStateDict().pairs
        XCTAssertThrowsError(try b.loadState(aliased))  // plain strict load sees the aliases as unexpected
        let report = try b.loadNNUNetState(aliased)
        XCTAssertTrue(report.isExact)
        let x = try Tensor.randn([1, 2, 16, 16])
        try FixtureSupport.assertClose(try b(x), try a(x), rtol: 0, atol: 0, "after loading the aliased layout")
        XCTAssertTrue(PlainConvUNet.isAlias("decoder.encoder.stages.0.0.convs.0.conv.weight"))
        XCTAssertTrue(PlainConvUNet.isAlias("decoder.stages.0.convs.1.all_modules.1.bias"))
        XCTAssertFalse(PlainConvUNet.isAlias("decoder.stages.0.convs.1.norm.bias"))
    }

    /// The planner's topologies of an isotropic and an anisotropic 3D plan (made by nnU-Net's own
    /// planner in the fixture script) build networks of the same parameter count as PyTorch's.
    func testPlannedTopologiesHaveThePyTorchParameterCounts() throws {
        let fx = try fixtures.json("plainunet_2d.json")
        let plans = fx["plans"] as! [String: [String: Any]]
        let counts = fx["plan_param_counts"] as! [String: Int]
        for name in ["iso3d", "aniso3d"] {
            let plan = plans[name]!
            let config = PlainConvUNet.Config(dims: 3, inChannels: 1, classes: 2, featuresPerStage: plan["features"] as! [Int],
                                              kernelSizes: plan["kernels"] as! [[Int]], strides: plan["strides"] as! [[Int]])
            XCTAssertEqual(try PlainConvUNet(config).parameterCount(), counts[name], name)
        }
        let aniso = plans["aniso3d"]!
        let config = PlainConvUNet.Config(dims: 3, inChannels: 1, classes: 2, featuresPerStage: aniso["features"] as! [Int],
                                          kernelSizes: aniso["kernels"] as! [[Int]], strides: aniso["strides"] as! [[Int]])
        XCTAssertEqual(config.divisor, [8, 32, 32])
    }

    func testBadInputIsAClearError() throws {
        let net = try PlainConvUNet(.regular(dims: 2, inChannels: 1, classes: 2, stages: 3, baseFeatures: 2))
        XCTAssertThrowsError(try net(Tensor.randn([1, 1, 10, 10]))) { XCTAssertTrue("\($0)".contains("divisible by [4, 4]"), "\($0)") }
        XCTAssertThrowsError(try PlainConvUNet(.regular(dims: 4, inChannels: 1, classes: 2, stages: 3)))
        var bad = PlainConvUNet.Config.regular(dims: 3, inChannels: 1, classes: 2, stages: 3)
        bad.kernelSizes[1] = [3, 2, 3]
        XCTAssertThrowsError(try PlainConvUNet(bad))
    }
}
