import XCTest
@testable import Torch

private final class Block: Module {
    let conv = try! Conv2d(2, 4, kernelSize: 3, padding: 1)
    let bn = try! BatchNorm2d(4)
    override init() {
        super.init()
        registerModule("conv", conv)
        registerModule("bn", bn)
    }
    override func forward(_ x: Tensor) throws -> Tensor { try bn(conv(x)).relu() }
}

final class ModuleTests: XCTestCase {
    func testStateDictNamesFollowPyTorch() throws {
        let net = Sequential(Block(), try Dropout(p: 0.1), try Linear(4, 2))
        XCTAssertEqual(net.namedStateTensors().map(\.name), [
            "0.conv.weight", "0.conv.bias", "0.bn.weight", "0.bn.bias",
            "0.bn.running_mean", "0.bn.running_var", "0.bn.num_batches_tracked",
            "2.weight", "2.bias",
        ])
        XCTAssertEqual(net.namedParameters().count, 6)
        XCTAssertEqual(net.parameterCount(), 4 * 2 * 9 + 4 + 4 + 4 + 8 + 2)
    }

    func testDefaultInitializationBounds() throws {
        Torch.manualSeed(0)
        let conv = try Conv2d(16, 8, kernelSize: 3)
        let bound = 1 / Double(16 * 9).squareRoot()
        XCTAssertLessThanOrEqual(try conv.weight.abs().max().item(), bound)
        XCTAssertGreaterThan(try conv.weight.abs().max().item(), bound * 0.9, "kaiming_uniform(a=sqrt(5)) fills the range")
        XCTAssertLessThanOrEqual(try XCTUnwrap(conv.bias).abs().max().item(), bound)
        let t = try ConvTranspose2d(8, 4, kernelSize: 2, stride: 2)
        XCTAssertEqual(t.weight.shape, [8, 4, 2, 2], "transposed weights are [in, out/groups, k...]")
        XCTAssertLessThanOrEqual(try t.weight.abs().max().item(), 1 / Double(4 * 4).squareRoot())
        let bn = try BatchNorm2d(3)
        XCTAssertEqual(try XCTUnwrap(bn.weight).floats(), [1, 1, 1])
        XCTAssertEqual(try XCTUnwrap(bn.runningVar).floats(), [1, 1, 1])
    }

    func testTrainEvalControlsBatchNormStatistics() throws {
        let block = Block()
        let x = try Tensor.randn([4, 2, 5, 5]) * 3 + 1
        _ = try block(x)
        XCTAssertEqual(try XCTUnwrap(block.bn.numBatchesTracked).itemInt(), 1)
        let meanAfterTrain = try XCTUnwrap(block.bn.runningMean).floats()
        XCTAssertNotEqual(meanAfterTrain, [0, 0, 0, 0])
        block.eval()
        XCTAssertFalse(block.bn.isTraining)
        _ = try block(x)
        XCTAssertEqual(try XCTUnwrap(block.bn.numBatchesTracked).itemInt(), 1, "eval does not track")
        XCTAssertEqual(try XCTUnwrap(block.bn.runningMean).floats(), meanAfterTrain)
    }

    func testFreezingExcludesParametersFromTraining() throws {
        let net = Sequential(try Linear(3, 3), try Linear(3, 1))
        net[0].requiresGrad(false)
        XCTAssertEqual(net.trainableParameters().count, 2)
        XCTAssertEqual(net.parameterCount(trainableOnly: true), 4)
        let x = try Tensor.randn([2, 3])
        try net(x).sum().backward()
        XCTAssertNil((net[0] as! Linear).weight.grad)
        XCTAssertNotNil((net[1] as! Linear).weight.grad)
    }

    func testLoadStateReportsMismatches() throws {
        let a = Block(), b = Block()
        let weights = a.namedStateTensors()
        try b.loadState(weights)
        XCTAssertTrue(try a.conv.weight.equal(b.conv.weight))

        // DDP prefix is stripped.
        let c = Block()
        try c.loadState(weights.map { ("module.\($0.name)", $0.tensor) })
        XCTAssertTrue(try a.conv.weight.equal(c.conv.weight))

        var partial = Array(weights.dropFirst())
        partial.append(("extra.weight", try Tensor.zeros([1])))
        partial[0] = ("conv.bias", try Tensor.zeros([5]))
        let d = Block()
        XCTAssertThrowsError(try d.loadState(partial)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("conv.weight") && text.contains("extra.weight") && text.contains("[4]") && text.contains("[5]"), text)
        }
        let before = try d.bn.weight!.floats()
        let report = try d.loadState(partial, strict: false)
        XCTAssertEqual(report.missingKeys, ["conv.weight"])
        XCTAssertEqual(report.unexpectedKeys, ["extra.weight"])
        XCTAssertEqual(report.shapeMismatches.map(\.key), ["conv.bias"])
        XCTAssertEqual(report.loadedCount, weights.count - 2)
        XCTAssertEqual(try d.bn.weight!.floats(), before)
    }

    func testMovingToAnotherDTypeKeepsIdentity() throws {
        let lin = try Linear(2, 2)
        let weight = lin.weight
        try lin.to(dtype: .float64)
        XCTAssertEqual(weight.dtype, .float64)
        XCTAssertTrue(weight.requiresGrad)
        XCTAssertEqual(try lin(Tensor.ones([1, 2], dtype: .float64)).dtype, .float64)
    }

    func testModuleErrorsAreClear() throws {
        XCTAssertThrowsError(try GroupNorm(3, 8))
        XCTAssertThrowsError(try BatchNorm2d(3)(Tensor.zeros([3, 4]))) { XCTAssertTrue("\($0)".contains("4-D")) }
        XCTAssertThrowsError(try Module().forward(Tensor.zeros([1])))
    }
}
