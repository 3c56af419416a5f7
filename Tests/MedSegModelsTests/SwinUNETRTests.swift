import Foundation
import XCTest
import TestSupport
@testable import MedSegModels
import Torch

/// Parity with MONAI's own SwinUNETR (Debian's torch 1.13 with MONAI 1.3.2, run by the test):
/// MONAI builds the network with its random weights and torch.saves its state dict, an input and
/// its output; MedSeg loads that .pth (every tensor, the relative position index buffers too) and
/// must give the same output within 1e-4, with the same parameter count and names.
final class SwinUNETRTests: XCTestCase {
    private func checkAgainstMONAI(dims: Int, inChannels: Int, classes: Int, size: Int, useV2: Bool = false) throws {
        let folder = try makeTemporaryFolder("swinunetr")
        defer { try? FileManager.default.removeItem(at: folder) }
        let script = """
        import sys, torch, warnings
        warnings.simplefilter("ignore")
        from monai.networks.nets import SwinUNETR
        dims, cin, classes, size, v2, folder = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1", sys.argv[6]
        torch.manual_seed(0)
        m = SwinUNETR(img_size=(size,) * dims, in_channels=cin, out_channels=classes, feature_size=12, spatial_dims=dims, use_v2=v2)
        with torch.no_grad():
            for p in m.parameters():
                if p.dim() == 1:
                    p.uniform_(-0.3, 0.3)  # biases and the norms' weights away from their zeros and ones
        m.eval()
        x = torch.randn(1, cin, *([size] * dims))
        with torch.no_grad():
            y = m(x)
        torch.save(m.state_dict(), folder + "/weights.pth")
        torch.save({"input": x, "output": y}, folder + "/io.pth")
        print(sum(p.numel() for p in m.parameters()), " ".join(k for k, _ in m.named_parameters()))
        """
        let output = try Python.run(script, ["\(dims)", "\(inChannels)", "\(classes)", "\(size)", useV2 ? "1" : "0", folder.path],
                                    interpreter: "/usr/bin/python3").split(separator: " ").map(String.init)
        let net = try SwinUNETR(.init(dims: dims, inChannels: inChannels, classes: classes, featureSize: 12, useV2: useV2))
        XCTAssertEqual(net.parameterCount(), Int(output[0].trimmingCharacters(in: .whitespacesAndNewlines)))
        XCTAssertEqual(net.namedParameters().map(\.name), output.dropFirst().map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })
        let report = try net.load(try WeightsFile.read(folder.appendingPathComponent("weights.pth")).tensors)
        XCTAssertTrue(report.isExact, "\(report)")
        let io = try PyTorchCheckpoint.stateDict(from: folder.appendingPathComponent("io.pth"))
        net.eval()
        try FixtureSupport.assertClose(try net(try XCTUnwrap(io["input"])), try XCTUnwrap(io["output"]), rtol: 1e-4, atol: 1e-4,
                                       "SwinUNETR \(dims)D\(useV2 ? " v2" : "")")
    }

    func testMatchesMONAIIn3D() throws { try checkAgainstMONAI(dims: 3, inChannels: 1, classes: 2, size: 64) }

    func testMatchesMONAIIn2D() throws { try checkAgainstMONAI(dims: 2, inChannels: 2, classes: 3, size: 64) }

    func testMatchesMONAIsV2() throws { try checkAgainstMONAI(dims: 3, inChannels: 1, classes: 2, size: 64, useV2: true) }

    /// `--model swinunetr` / `swinunetr_v2` at the default width are the paper's BTCV networks
    /// (MONAI: SwinUNETR(in_channels=1, out_channels=14, feature_size=48), 62.2 M / 72.8 M parameters).
    func testTheModelNamesBuildThePapersNetworks() throws {
        for (name, count) in [("swinunetr", 62_187_296), ("swinunetr_v2", 72_762_656)] {
            let net = try ModelFactory.make(.init(name: name, dims: 3, inChannels: 1, outChannels: 14,
                                                  features: ModelName(rawValue: name)!.defaultFeatures, depth: 4))
            XCTAssertEqual(net.parameterCount(), count, name)
        }
        XCTAssertEqual(ModelFactory.sizeDivisors(.init(name: "swinunetr", dims: 3, inChannels: 1, outChannels: 2, features: 48, depth: 4)), [32, 32, 32])
    }

    func testSizesItCannotMergeAreRefused() throws {
        let net = try SwinUNETR(.init(dims: 2, featureSize: 12))
        XCTAssertThrowsError(try net(Tensor.zeros([1, 1, 48, 64]))) { XCTAssertTrue("\($0)".contains("divisible by 32"), "\($0)") }
        XCTAssertThrowsError(try SwinUNETR(.init(featureSize: 20)))
    }
}
