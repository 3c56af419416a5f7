import Foundation
import XCTest
import TestSupport
@testable import MedSegModels
import Torch

/// Parity with MONAI 1.6's MedNeXt (its `mednext.py` and `mednext_block.py`, fetched by
/// scripts/setup.sh into .deps/reference, run on Debian's torch by the test): `create_mednext`'s
/// networks with their random weights torch.saved, an input and the outputs (every deep-supervision
/// level in training mode); MedSeg loads the .pth whole and must agree within 1e-4. Parameter counts
/// of all four sizes, in 3D with kernel 3 and 5, equal MONAI's.
final class MedNeXtTests: XCTestCase {
    private func python(_ body: String, _ arguments: [String]) throws -> String { try MedNeXtReference.run(body, arguments) }

    private func checkAgainstMONAI(size: MedNeXt.Size, dims: Int, inChannels: Int, classes: Int, kernel: Int, spatial: Int) throws {
        let folder = try makeTemporaryFolder("mednext")
        defer { try? FileManager.default.removeItem(at: folder) }
        let output = try python("""
        size, dims, cin, classes, kernel, spatial, folder = sys.argv[2], *map(int, sys.argv[3:8]), sys.argv[8]
        torch.manual_seed(0)
        m = mednext.create_mednext(size, spatial_dims=dims, in_channels=cin, out_channels=classes, kernel_size=kernel, deep_supervision=True)
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 1:
                    p.uniform_(-0.3, 0.3)
        x = torch.randn(2, cin, *([spatial] * dims))
        m.train()
        with torch.no_grad():
            outs = m(x)
        m.eval()
        with torch.no_grad():
            evaluated = m(x)
        torch.save(m.state_dict(), folder + "/weights.pth")
        torch.save({"input": x, "eval": evaluated, **{f"out{i}": o for i, o in enumerate(outs)}}, folder + "/io.pth")
        print(sum(p.numel() for p in m.parameters()), len(outs))
        """, [size.rawValue, "\(dims)", "\(inChannels)", "\(classes)", "\(kernel)", "\(spatial)", folder.path])
        let fields = output.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        let net = try MedNeXt(.init(size: size, dims: dims, inChannels: inChannels, classes: classes, kernelSize: kernel, deepSupervision: true))
        XCTAssertEqual(net.parameterCount(), fields.first)
        let report = try net.load(try WeightsFile.read(folder.appendingPathComponent("weights.pth")).tensors)
        XCTAssertTrue(report.isExact, "\(report)")
        let io = try PyTorchCheckpoint.stateDict(from: folder.appendingPathComponent("io.pth"))
        let x = try XCTUnwrap(io["input"])
        let outs = try net.outputs(x)
        XCTAssertEqual(outs.count, fields.last)
        for (i, o) in outs.enumerated() {
            try FixtureSupport.assertClose(o, try XCTUnwrap(io["out\(i)"]), rtol: 1e-4, atol: 1e-4, "MedNeXt-\(size) \(dims)D k\(kernel) output \(i)")
        }
        net.eval()
        try FixtureSupport.assertClose(try net(x), try XCTUnwrap(io["eval"]), rtol: 1e-4, atol: 1e-4, "MedNeXt-\(size) in eval mode")
    }

    func testSmallMatchesMONAIIn3DWithDeepSupervision() throws {
        try checkAgainstMONAI(size: .S, dims: 3, inChannels: 1, classes: 2, kernel: 3, spatial: 32)
    }

    func testBaseWithKernel5MatchesMONAIIn2D() throws {
        try checkAgainstMONAI(size: .B, dims: 2, inChannels: 2, classes: 3, kernel: 5, spatial: 32)
    }

    func testEverySizesParameterCountIsMONAIs() throws {
        let output = try python("""
        print(" ".join(str(sum(p.numel() for p in mednext.create_mednext(s, in_channels=1, out_channels=3, kernel_size=k).parameters()))
                       for s in "SBML" for k in (3, 5)))
        """, [])
        let expected = output.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        var ours: [Int] = []
        for size in MedNeXt.Size.allCases {
            for kernel in [3, 5] { ours.append(try MedNeXt(.init(size: size, classes: 3, kernelSize: kernel)).parameterCount()) }
        }
        XCTAssertEqual(ours, expected)
        // `--model mednext --model-size M --kernel-size 5` builds the same network.
        var spec = ModelFactory.Spec(name: "mednext", dims: 3, inChannels: 1, outChannels: 3, features: 32, depth: 4)
        (spec.modelSize, spec.kernelSize) = (.M, 5)
        XCTAssertEqual(try ModelFactory.make(spec).parameterCount(), expected[5])
        XCTAssertEqual(ModelFactory.sizeDivisors(spec), [16, 16, 16])
    }
}
