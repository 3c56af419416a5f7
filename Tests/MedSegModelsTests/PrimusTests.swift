import Foundation
import XCTest
import TestSupport
@testable import MedSegModels
import Torch

/// Parity with `dynamic_network_architectures`' own Primus (0.4.4, with timm's EVA blocks and
/// rotary embedding, on Debian's torch 1.13, run by the test): the reference builds the network
/// with its initialisation, its LayerScale, norm and bias vectors randomised so that none is left
/// at a constant, and torch.saves its state dict, an input and its output; MedSeg loads that .pth
/// whole and must give the same output within 1e-4, with the same parameter names and count.
final class PrimusTests: XCTestCase {
    /// `variant` "" (Primus), "V2" or "V3": the class `Primus{variant}{size}`.
    private func checkAgainstReference(size: String, variant: String = "", inChannels: Int, classes: Int, shape: [Int]) throws {
        let folder = try makeTemporaryFolder("primus")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = """
        import sys, torch, warnings
        warnings.simplefilter("ignore")
        from dynamic_network_architectures.architectures import primus
        size, cin, classes, folder = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        shape = tuple(int(v) for v in sys.argv[5].split(","))
        torch.manual_seed(0)
        m = getattr(primus, "Primus" + sys.argv[6] + size)(cin, classes, (8, 8, 8), shape)
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 1:
                    p.uniform_(-0.3, 0.3)
        m.eval()
        x = torch.randn(2, cin, *shape)
        with torch.no_grad():
            y = m(x)
        torch.save(m.state_dict(), folder + "/weights.pth")
        torch.save({"input": x, "output": y}, folder + "/io.pth")
        print(sum(p.numel() for p in m.parameters()), " ".join(k for k, _ in m.named_parameters()))
        """
        let output = try Python.run(script, [size, "\(inChannels)", "\(classes)", folder.path, shape.map(String.init).joined(separator: ","), variant],
                                    interpreter: "/usr/bin/python3").split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        let embedding: Primus.Config.Embedding = variant == "" ? .patch : variant == "V2" ? .residual : .residualWithSkips
        let net = try Primus(.published(try XCTUnwrap(ModelSize(rawValue: size)), inChannels: inChannels, classes: classes, inputShape: shape,
                                        embedding: embedding))
        XCTAssertEqual(net.parameterCount(), Int(output[0]))
        XCTAssertEqual(net.namedParameters().map(\.name), Array(output.dropFirst()))
        // nnU-Net's conv blocks hold their layers twice (`all_modules.N` beside `conv`, `norm`): one copy loads.
        let weights = try WeightsFile.read(folder.appendingPathComponent("weights.pth")).tensors
        let report = try net.load(StateDict(weights.pairs.filter { !PlainConvUNet.isAlias($0.name) }))
        XCTAssertTrue(report.isExact, "\(report)")
        let io = try PyTorchCheckpoint.stateDict(from: folder.appendingPathComponent("io.pth"))
        net.eval()
        try FixtureSupport.assertClose(try net(try XCTUnwrap(io["input"])), try XCTUnwrap(io["output"]), rtol: 1e-4, atol: 1e-4,
                                       "Primus\(variant)-\(size) at \(shape)")
    }

    func testPrimusSMatchesTheReference() throws { try checkAgainstReference(size: "S", inChannels: 1, classes: 3, shape: [32, 32, 32]) }

    /// A box of three different sizes: the token order, the position embedding and each axis's
    /// rotary angles must line up with the reference's.
    func testAnisotropicInputMatchesTheReference() throws {
        try checkAgainstReference(size: "S", inChannels: 2, classes: 2, shape: [16, 32, 24])
    }

    /// PrimusV2: residual stages (ReLU) embed the patches.
    func testPrimusV2MatchesTheReference() throws {
        try checkAgainstReference(size: "S", variant: "V2", inChannels: 1, classes: 2, shape: [16, 32, 24])
    }

    /// PrimusV3: residual stages (LeakyReLU) whose earlier maps are added to the tokens.
    func testPrimusV3MatchesTheReference() throws {
        try checkAgainstReference(size: "S", variant: "V3", inChannels: 2, classes: 3, shape: [16, 32, 24])
    }

    /// `--model primus --model-size S|M` builds the published networks: the reference's parameter
    /// count, 1 -> 3 channels on a 64^3 patch (B and L, 92.4 M and 324.5 M parameters, differ only in
    /// their numbers and take half a minute to build in each tool; `medseg benchmark` reports them).
    func testPublishedSizesHaveTheReferencesParameterCounts() throws {
        let counts = try Python.run("""
        import warnings
        warnings.simplefilter("ignore")
        from dynamic_network_architectures.architectures import primus
        print(" ".join(str(sum(p.numel() for p in getattr(primus, "Primus" + s)(1, 3, (8, 8, 8), (64, 64, 64)).parameters())) for s in "SM"))
        """, [], interpreter: "/usr/bin/python3").split(separator: " ").map { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        for (size, expected) in zip([ModelSize.S, .M], counts) {
            var spec = ModelFactory.Spec(name: "primus", dims: 3, inChannels: 1, outChannels: 3, features: 8, depth: 4)
            (spec.modelSize, spec.inputShape) = (size, [64, 64, 64])
            XCTAssertEqual(try ModelFactory.make(spec).parameterCount(), expected, "Primus-\(size)")
        }
    }

    func testOtherSizesAndShapesAreRefused() throws {
        let net = try Primus(.init(inChannels: 1, classes: 2, embedDim: 48, depth: 1, heads: 1, inputShape: [16, 16, 16]))
        XCTAssertThrowsError(try net(Tensor.zeros([1, 1, 16, 16, 24]))) { XCTAssertTrue("\($0)".contains("made for that size"), "\($0)") }
        XCTAssertThrowsError(try Primus(.init(inChannels: 1, classes: 2, embedDim: 48, depth: 1, heads: 1, inputShape: [16, 16, 20])))
        XCTAssertThrowsError(try ModelFactory.make(.init(name: "primus", dims: 2, inChannels: 1, outChannels: 2, features: 8, depth: 4)))
        XCTAssertEqual(ModelFactory.sizeDivisors(.init(name: "primus", dims: 3, inChannels: 1, outChannels: 2, features: 8, depth: 4)), [8, 8, 8])
    }
}
