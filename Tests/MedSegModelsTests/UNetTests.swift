import XCTest
import Torch
import TestSupport
@testable import MedSegModels

final class UNetTests: XCTestCase {
    func testParameterCountAtDefaultsMatchesTheSeed() throws {
        let unet = try UNet()
        XCTAssertEqual(unet.parameterCount(), 31_042_369)
        let fx = try fixtures.json("unet_small.json")
        XCTAssertEqual(fx["default_param_count"] as? Int, 31_042_369)
    }

    func testMatchesThePyTorchReference() throws {
        let fx = try fixtures.json("unet_small.json")
        let unet = try UNet(.init(inChannels: 2, classes: 3, features: 2))
        let order = fx["state_order"] as! [String]
        XCTAssertEqual(unet.namedStateTensors().map(\.name), order)
        XCTAssertEqual(unet.parameterCount(), fx["param_count"] as! Int)
        let state = fx["state"] as! [String: Any]
        try unet.loadState(order.map { ($0, try FixtureSupport.tensor(state[$0])) })

        let y = try unet(FixtureSupport.tensor(fx["input"]))
        try FixtureSupport.assertClose(y, try FixtureSupport.tensor(fx["output"]), rtol: 1e-4, atol: 1e-5, "U-Net output")
        let loss = try F.crossEntropy(y, target: FixtureSupport.tensor(fx["target"]))
        XCTAssertEqual(try loss.item(), fx["loss"] as! Double, accuracy: 1e-5)
        try loss.backward()
        let grads = fx["grads"] as! [String: Any]
        let params = Dictionary(uniqueKeysWithValues: unet.namedParameters().map { ($0.name, $0.tensor) })
        // atol as FixtureSupport's parity check: PyTorch itself gives enc.0.0.weight's gradient
        // 2.5e-5 apart on two CPUs (AMD EPYC vs the fixture's machine), through BatchNorm in train mode.
        for (name, g) in grads {
            try FixtureSupport.assertClose(try XCTUnwrap(params[name]?.grad), try FixtureSupport.tensor(g), rtol: 1e-4, atol: 1e-4, "grad \(name)")
        }
    }

    func test3DVariantShapes() throws {
        let unet = try UNet(.init(inChannels: 1, classes: 2, features: 2, depth: 3, dims: 3))
        XCTAssertEqual(try unet(Tensor.randn([1, 1, 8, 8, 8])).shape, [1, 2, 8, 8, 8])
    }

    func testBadInputIsAClearError() throws {
        let unet = try UNet(.init(features: 2, depth: 3))
        XCTAssertThrowsError(try unet(Tensor.randn([1, 1, 10, 10]))) { XCTAssertTrue("\($0)".contains("divisible by 4"), "\($0)") }
        XCTAssertThrowsError(try UNet(.init(dims: 4)))
    }
}
