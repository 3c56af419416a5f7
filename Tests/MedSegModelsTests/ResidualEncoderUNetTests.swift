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
        try FixtureSupport.assertParity(net, fixture: fx, file) { try net.outputs($0) }
    }

    func testMatches2DDynamicNetworkArchitectures() throws { try checkParity("resencunet_2d.json") }

    func testMatches3DDynamicNetworkArchitectures() throws { try checkParity("resencunet_3d.json") }
}

final class ResidualEncoderUNetFactoryTests: XCTestCase {
    func testFactoryBuildsThePlannedTopology() throws {
        let topology = ModelFactory.Topology(featuresPerStage: [4, 8, 16], kernelSizes: [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                                             strides: [[1, 1, 1], [1, 2, 2], [2, 2, 2]], blocksPerStage: [1, 3, 4], convsPerDecoderStage: 1)
        let spec = ModelFactory.Spec(name: "resencunet", dims: 3, inChannels: 2, outChannels: 3, features: 4, depth: 3,
                                     deepSupervision: true, topology: topology)
        let net = try XCTUnwrap(try ModelFactory.make(spec) as? ResidualEncoderUNet)
        XCTAssertEqual(net.config.blocksPerStage, [1, 3, 4])
        XCTAssertEqual(ModelFactory.sizeDivisors(spec), [2, 4, 4])
        let outs = try net.outputs(try Tensor.randn([1, 2, 4, 8, 8]))
        XCTAssertEqual(outs.map(\.shape), [[1, 3, 4, 8, 8], [1, 3, 4, 4, 4]])
    }
}
