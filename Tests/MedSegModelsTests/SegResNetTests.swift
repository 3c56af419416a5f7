import Foundation
import XCTest
import TestSupport
@testable import MedSegModels
import Torch

/// Parity with MONAI's SegResNet (scripts/fixtures/make_segresnet_fixtures.py): parameter names
/// and count, outputs and gradients in 2D and 3D, MONAI's default size, and its torch.save'd
/// state dict loading tensor for tensor.
final class SegResNetTests: XCTestCase {
    private func config(_ fx: [String: Any]) -> SegResNet.Config {
        let c = fx["config"] as! [String: Any]
        return .init(dims: c["dims"] as! Int, inChannels: c["in"] as! Int, classes: c["classes"] as! Int, initFilters: c["init_filters"] as! Int,
                     blocksDown: c["blocks_down"] as! [Int], blocksUp: c["blocks_up"] as! [Int], groups: c["groups"] as! Int)
    }

    private func checkParity(_ file: String) throws {
        let fx = try fixtures.json(file)
        let net = try SegResNet(config(fx))
        try FixtureSupport.assertParity(net, fixture: fx, stateKeys: net.namedStateTensors().map(\.name), file) { [try net($0)] }
        // GroupNorm keeps no running statistics: evaluation mode computes the same.
        net.eval()
        try FixtureSupport.assertClose(try net(FixtureSupport.tensor(fx["input"])), try FixtureSupport.tensor((fx["outputs"] as! [Any])[0]),
                                       rtol: 1e-5, atol: 1e-5, "\(file) in eval mode")
    }

    func testMatchesMONAIIn2D() throws { try checkParity("segresnet_2d.json") }

    func testMatchesMONAIIn3D() throws { try checkParity("segresnet_3d.json") }

    func testMONAIsDefaultSizeAndItsCheckpointLoadWhole() throws {
        let fx = try fixtures.json("segresnet_3d.json")
        XCTAssertEqual(try SegResNet(.init(dims: 3, inChannels: 4, classes: 3)).parameterCount(), fx["default_param_count"] as! Int)
        // `--model segresnet` at its default width and depth is MONAI's default network.
        let made = try ModelFactory.make(.init(name: "segresnet", dims: 3, inChannels: 4, outChannels: 3, features: ModelName.segresnet.defaultFeatures,
                                               depth: ModelName.segresnet.defaultDepth))
        XCTAssertEqual(made.parameterCount(), fx["default_param_count"] as! Int)
        let folder = try makeTemporaryFolder("segresnet")
        defer { try? FileManager.default.removeItem(at: folder) }
        let pth = folder.appendingPathComponent("segresnet.pth")
        try Data(base64Encoded: fx["pth_b64"] as! String)!.write(to: pth)
        let net = try SegResNet(config(fx))
        let report = try net.load(try WeightsFile.read(pth).tensors)
        XCTAssertTrue(report.isExact, "\(report)")
        XCTAssertEqual(report.loadedCount, (fx["state_keys"] as! [String]).count)
        let x = try FixtureSupport.tensor(fx["input"])
        try FixtureSupport.assertClose(try net(x), try FixtureSupport.tensor((fx["outputs"] as! [Any])[0]), rtol: 1e-5, atol: 1e-5, "from the .pth")
    }

    func testInputsItCannotHalveAreRefused() throws {
        let net = try SegResNet(.init(dims: 2, inChannels: 1, classes: 2, blocksDown: [1, 1, 1], blocksUp: [1, 1]))
        XCTAssertThrowsError(try net(Tensor.zeros([1, 1, 10, 12]))) { XCTAssertTrue("\($0)".contains("divisible by 4"), "\($0)") }
        XCTAssertThrowsError(try SegResNet(.init(dims: 3, initFilters: 12, groups: 8)))
        XCTAssertThrowsError(try SegResNet(.init(blocksDown: [1, 2], blocksUp: [1, 1])))
    }
}
