import XCTest
import Torch
import TestSupport
@testable import MedSegModels

/// Parity with dynamic_network_architectures' own ResidualEncoderUNet, same weights
/// (scripts/fixtures/make_resenc_fixtures.py): parameter names, outputs of every deep-supervision
/// level and the gradients of every parameter.
final class ResidualEncoderUNetTests: XCTestCase {
    private func checkParity(_ file: String) throws {
        let fx = try fixtures.json(file)
        let c = fx["config"] as! [String: Any]
        let config = ResidualEncoderUNet.Config(dims: c["dims"] as! Int, inChannels: c["in"] as! Int, classes: c["classes"] as! Int,
                                                featuresPerStage: c["features"] as! [Int], kernelSizes: c["kernels"] as! [[Int]],
                                                strides: c["strides"] as! [[Int]], blocksPerStage: c["blocks"] as! [Int],
                                                nConvPerStageDecoder: (c["decoder_convs"] as! [Int])[0])
        let net = try ResidualEncoderUNet(config)
        XCTAssertEqual(net.namedStateTensors().map(\.name), fx["param_names"] as! [String])
        XCTAssertEqual(net.parameterCount(), fx["param_count"] as! Int)
        let state = fx["state"] as! [String: Any]
        try net.loadState((fx["param_names"] as! [String]).map { ($0, try FixtureSupport.tensor(state[$0])) })
        let outs = try net.outputs(FixtureSupport.tensor(fx["input"]))
        try FixtureSupport.assertOutputsAndGradients(outs, of: net, fixture: fx, file)
    }

    func testMatches2DDynamicNetworkArchitectures() throws { try checkParity("resencunet_2d.json") }

    func testMatches3DDynamicNetworkArchitectures() throws { try checkParity("resencunet_3d.json") }
}
