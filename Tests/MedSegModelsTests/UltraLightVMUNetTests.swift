import XCTest
import Torch
import TestSupport
@testable import MedSegModels

/// UltraLight VM-UNet and Sophia-G against the PyTorch references of
/// scripts/fixtures/make_ultralight_fixtures.py (Fixtures/ultralight*.json).
final class UltraLightVMUNetTests: XCTestCase {
    func testParameterCountAndStateDictMatchThePublishedModel() throws {
        let model = try UltraLightVMUNet()
        XCTAssertEqual(model.parameterCount(), 49_457)
        let names = model.namedStateTensors().map(\.name)
        XCTAssertEqual(names.count, 129)
        let fx = try fixtures.json("ultralight_state.json")
        XCTAssertEqual(names, fx["state_order"] as! [String])
        XCTAssertEqual(fx["param_count"] as? Int, 49_457)
        XCTAssertEqual(try XCTUnwrap(model.scab).parameterCount(), 16_614)
        let state = fx["state"] as! [String: Any]
        for (name, t) in model.namedStateTensors() {
            XCTAssertEqual(t.shape, try FixtureSupport.tensor(state[name]).shape, name)
        }
    }

    func testPublishedInitialization() throws {
        let model = try UltraLightVMUNet()
        let p = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        let aLog = try XCTUnwrap(p["encoder4.0.mamba.A_log"])
        XCTAssertEqual(aLog.shape, [12, 16])
        XCTAssertEqual(try aLog.select(dim: 0, index: 5).floats(), (1...16).map { Float(Foundation.log(Double($0))) })
        XCTAssertEqual(try XCTUnwrap(p["decoder1.0.mamba.D"]).floats(), Array(repeating: 1, count: 32))
        XCTAssertEqual(try XCTUnwrap(p["encoder5.0.skip_scale"]).floats(), [1])
        XCTAssertEqual(try XCTUnwrap(p["encoder6.0.mamba.dt_proj.bias"]).abs().max().item(), 0)
        XCTAssertEqual(try XCTUnwrap(p["encoder1.0.bias"]).abs().max().item(), 0)
        // trunc_normal(std 0.02) within +-2 (the absolute bounds of timm/PyTorch's trunc_normal_).
        let w = try XCTUnwrap(p["decoder1.0.mamba.in_proj.weight"])
        XCTAssertEqual(try w.std().item(), 0.02, accuracy: 0.003)
        // Conv2d normal(0, sqrt(2 / fan_out)): encoder2 fan_out 3 * 3 * 16.
        XCTAssertEqual(try XCTUnwrap(p["encoder2.0.weight"]).std().item(), (2.0 / 144).squareRoot(), accuracy: 0.01)
        // Conv1d normal(0, sqrt(2 / (k * out))): decoder1's depthwise conv, k 4, out 32.
        XCTAssertEqual(try XCTUnwrap(p["decoder1.0.mamba.conv1d.weight"]).std().item(), (2.0 / 128).squareRoot(), accuracy: 0.03)
    }

    func testMatchesThePyTorchReference() throws {
        let st = try fixtures.json("ultralight_state.json")
        let fx = try fixtures.json("ultralight.json")
        let model = try UltraLightVMUNet()
        let order = st["state_order"] as! [String]
        let state = st["state"] as! [String: Any]
        try model.loadState(order.map { ($0, try FixtureSupport.tensor(state[$0])) })

        let x = try FixtureSupport.tensor(fx["input"])
        XCTAssertEqual(x.shape, [1, 3, 64, 64])
        let y = try model(x)
        let expected = try FixtureSupport.tensor(fx["output"])
        try FixtureSupport.assertClose(y, expected, rtol: 1e-4, atol: 1e-5, "UltraLight VM-UNet output")
        print("UltraLight VM-UNet parity: max |output difference| \(try (y - expected).abs().max().item())")
        let loss = try (y * FixtureSupport.tensor(fx["target"])).mean()
        XCTAssertEqual(try loss.item(), fx["loss"] as! Double, accuracy: 1e-5)
        try loss.backward()
        let params = Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.tensor) })
        let grads = fx["grads"] as! [String: Any]
        XCTAssertEqual(grads.count, 14)
        var worst = 0.0
        for (name, g) in grads {
            let mine = try XCTUnwrap(params[name]?.grad, name), ref = try FixtureSupport.tensor(g)
            // Within 1e-4 of the parameter's largest gradient element (gradient scales differ by
            // orders of magnitude between parameters).
            let scale = try ref.abs().max().item()
            try FixtureSupport.assertClose(mine, ref, rtol: 1e-4, atol: 1e-4 * scale, "grad \(name)")
            worst = max(worst, try (mine - ref).abs().max().item() / scale)
        }
        print("UltraLight VM-UNet parity: max gradient difference relative to the gradient's largest element \(worst)")
    }

    func testShapesLogitsAndErrors() throws {
        let model = try UltraLightVMUNet(.init(inChannels: 1, classes: 2, sigmoidOutput: false))
        let y = try model(Tensor.randn([2, 1, 32, 64]))
        XCTAssertEqual(y.shape, [2, 2, 32, 64])
        XCTAssertLessThan(try y.min().item(), 0)   // logits, not probabilities
        XCTAssertThrowsError(try model(Tensor.randn([1, 1, 48, 48]))) { XCTAssertTrue("\($0)".contains("divisible by 32"), "\($0)") }
        XCTAssertThrowsError(try UltraLightVMUNet(.init(channels: [8, 16, 24, 32, 48, 66])))
        let noBridge = try UltraLightVMUNet(.init(bridge: false))
        XCTAssertEqual(noBridge.parameterCount(), 49_457 - 16_614)
    }

    func testSophiaGMatchesThePyTorchReference() throws {
        let fx = try fixtures.json("ultralight_sophiag.json")
        let inits = try (fx["init"] as! [Any]).map { try FixtureSupport.tensor($0).requiresGrad(true) }
        let betas = fx["betas"] as! [Double]
        let opt = SophiaG(inits, lr: fx["lr"] as! Double, betas: (betas[0], betas[1]), rho: fx["rho"] as! Double,
                          weightDecay: fx["weight_decay"] as! Double, hessianBatchSize: fx["bs"] as! Double)
        let steps = fx["steps"] as! [[String: Any]]
        XCTAssertEqual(steps.count, 5)
        for (k, s) in steps.enumerated() {
            for (p, g) in zip(inits, s["grads"] as! [Any]) { p.grad = try FixtureSupport.tensor(g) }
            try opt.step()
            if let hg = s["hessian_grads"] as? [Any] {
                for (p, g) in zip(inits, hg) { p.grad = try FixtureSupport.tensor(g) }
                try opt.updateHessian()
            }
            for (i, (p, e)) in zip(inits, s["params"] as! [Any]).enumerated() {
                try FixtureSupport.assertClose(p, try FixtureSupport.tensor(e), rtol: 1e-5, atol: 1e-6, "step \(k + 1) param \(i)")
            }
            for (i, e) in (s["hessian"] as! [Any]).enumerated() {
                try FixtureSupport.assertClose(try XCTUnwrap(opt.state[i]?["hessian"]), try FixtureSupport.tensor(e), rtol: 1e-5, atol: 1e-7,
                                               "step \(k + 1) hessian \(i)")
            }
        }
        XCTAssertEqual(opt.state[0]?.step, 5)
        // The state round-trips through the state dict.
        let saved = opt.stateDict()
        let other = SophiaG(inits, lr: 0.05)
        try other.loadStateDict(saved)
        XCTAssertEqual(other.state[1]?.step, 5)
        XCTAssertThrowsError(try SophiaG(inits, rho: -1).step())
    }
}
