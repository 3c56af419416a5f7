import XCTest
@testable import Torch
import TestSupport

/// The same small networks as scripts/fixtures/make_torch_fixtures.py, built from the Swift API.
private final class Net2d: Module {
    let enc = Sequential(try! Conv2d(2, 6, kernelSize: 3, padding: 1), try! BatchNorm2d(6), ReLU())
    let down = try! Conv2d(6, 8, kernelSize: 3, stride: 2, padding: 1)
    let gn = try! GroupNorm(2, 8)
    let up = try! ConvTranspose2d(8, 6, kernelSize: 2, stride: 2)
    let inorm = try! InstanceNorm2d(6, affine: true)
    let side = try! Conv2d(6, 6, kernelSize: 3, padding: 2, dilation: 2, groups: 2, bias: false)
    let head = try! Conv2d(18, 3, kernelSize: 1)
    let norm = try! LayerNorm(3)
    let fc = try! Linear(3, 3)

    override init() {
        super.init()
        for (name, m) in [("enc", enc), ("down", down), ("gn", gn), ("up", up), ("inorm", inorm), ("side", side),
                          ("head", head), ("norm", norm), ("fc", fc)] as [(String, Module)] {
            registerModule(name, m)
        }
    }

    override func forward(_ x: Tensor) throws -> Tensor {
        let a = try enc(x)
        let b = try F.gelu(gn(down(a)))
        let c = try F.leakyRelu(inorm(up(b)), negativeSlope: 0.01)
        let d = try F.interpolate(F.maxPool2d(side(a).sigmoid(), kernel: 2), scaleFactor: [2], mode: .bilinear)
        let y = try head(Tensor.cat([a, c, d], dim: 1))
        return try fc(F.silu(norm(y.permute([0, 2, 3, 1])))).permute([0, 3, 1, 2])
    }
}

private final class Net3d: Module {
    let conv = try! Conv3d(1, 4, kernelSize: 3, padding: 1)
    let bn = try! BatchNorm3d(4)
    let down = try! Conv3d(4, 4, kernelSize: 3, stride: 2, padding: 1, bias: false)
    let inorm = try! InstanceNorm3d(4, affine: true)
    let up = try! ConvTranspose3d(4, 4, kernelSize: 2, stride: 2)
    let head = try! Conv3d(8, 2, kernelSize: 1)

    override init() {
        super.init()
        for (name, m) in [("conv", conv), ("bn", bn), ("down", down), ("inorm", inorm), ("up", up), ("head", head)] as [(String, Module)] {
            registerModule(name, m)
        }
    }

    override func forward(_ x: Tensor) throws -> Tensor {
        let a = try bn(conv(x)).relu()
        let b = try F.leakyRelu(inorm(down(a)), negativeSlope: 0.01)
        let u = try up(b) + F.interpolate(b, scaleFactor: [2], mode: .trilinear, alignCorners: true)
        return try head(Tensor.cat([a, F.avgPool3d(F.maxPool3d(u, kernel: 1), kernel: 1)], dim: 1))
    }
}

final class ParityTests: XCTestCase {
    private func check(_ fixtureName: String, _ net: Module, loss: (Tensor, Tensor) throws -> Tensor) throws {
        let fx = try fixtures.json("torch/\(fixtureName).json")
        let order = fx["state_order"] as! [String]
        XCTAssertEqual(net.namedStateTensors().map(\.name), order, "state_dict keys and order match PyTorch's")
        XCTAssertEqual(net.parameterCount(), fx["param_count"] as! Int)

        let state = fx["state"] as! [String: Any]
        let weights = try order.map { ($0, try FixtureSupport.tensor(state[$0])) }
        let report = try net.loadState(weights)
        XCTAssertTrue(report.isExact)
        net.train()

        let x = try FixtureSupport.tensor(fx["input"]).requiresGrad(true)
        let y = try net(x)
        try FixtureSupport.assertClose(y, try FixtureSupport.tensor(fx["output"]), "output")
        let l = try loss(y, try FixtureSupport.tensor(fx["target"]))
        XCTAssertEqual(try l.item(), fx["loss"] as! Double, accuracy: 1e-5 * abs(fx["loss"] as! Double))
        try l.backward()
        try FixtureSupport.assertClose(try XCTUnwrap(x.grad), try FixtureSupport.tensor(fx["input_grad"]), "input gradient")
        let grads = fx["grads"] as! [String: Any]
        for (name, p) in net.namedParameters() {
            try FixtureSupport.assertClose(try XCTUnwrap(p.grad, name), try FixtureSupport.tensor(grads[name]), "gradient of \(name)")
        }
        let after = fx["state_after"] as! [String: Any]
        let mine = Dictionary(uniqueKeysWithValues: net.namedStateTensors().map { ($0.name, $0.tensor) })
        for (name, value) in after {
            try FixtureSupport.assertClose(mine[name]!, try FixtureSupport.tensor(value), "buffer \(name) after one training step")
        }
    }

    func testConvNet2dForwardAndGradientsMatchPyTorch() throws {
        try check("convnet2d", Net2d()) { try F.crossEntropy($0, target: $1) }
    }

    func testConvNet3dForwardAndGradientsMatchPyTorch() throws {
        try check("convnet3d", Net3d()) { try F.binaryCrossEntropyWithLogits($0, target: $1) }
    }
}
