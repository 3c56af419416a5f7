import Foundation
import XCTest
import TestSupport
import MedSegModels
import Torch
@testable import MedSegTrain

/// ONNX export checked by onnxruntime (PyPI's, run by the test): the exported plain conv U-Net,
/// 2D and 3D, anisotropic kernels and strides, gives MedSeg's logits within 1e-4 for an input of
/// another batch and size than any fixed one.
final class ONNXModelTests: XCTestCase {
    private func checkWithONNXRuntime(_ config: PlainConvUNet.Config, input shape: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        try checkWithONNXRuntime(try PlainConvUNet(config), input: shape, file: file, line: line)
    }

    private func checkWithONNXRuntime(_ net: Module, input shape: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = try makeTemporaryFolder("onnx")
        defer { try? FileManager.default.removeItem(at: folder) }
        // Norm weights and biases away from their ones and zeros, so that every tensor counts.
        try withNoGrad {
            for (name, p) in net.namedParameters() where p.rank == 1 { try p.copy_(Tensor.rand(p.shape) - 0.5 + (name.hasSuffix("norm.weight") ? 1 : 0)) }
        }
        net.eval()
        let x = try Tensor.randn(shape)
        let expected = try net(x)
        let model = folder.appendingPathComponent("net.onnx")
        try ONNXModel.export(net).write(to: model)
        try x.contiguous().toArray(Float.self).withUnsafeBytes { try Data($0).write(to: folder.appendingPathComponent("x.bin")) }
        let script = """
        import sys, numpy as np, onnxruntime as ort
        folder, shape = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
        session = ort.InferenceSession(folder + "/net.onnx", providers=["CPUExecutionProvider"])
        x = np.fromfile(folder + "/x.bin", dtype=np.float32).reshape(shape)
        y = session.run(None, {"image": x})[0]
        y.astype(np.float32).tofile(folder + "/y.bin")
        print(",".join(map(str, y.shape)))
        """
        let printed = try Python.run(script, [folder.path, shape.map(String.init).joined(separator: ",")], interpreter: "/usr/bin/python3")
        XCTAssertEqual(printed.trimmingCharacters(in: .whitespacesAndNewlines), expected.shape.map(String.init).joined(separator: ","), file: file, line: line)
        let data = try Data(contentsOf: folder.appendingPathComponent("y.bin"))
        let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        try FixtureSupport.assertClose(try Tensor(values, shape: expected.shape), expected, rtol: 1e-4, atol: 1e-4, "onnxruntime", file: file, line: line)
    }

    func testPlainConvUNetRunsInONNXRuntimeIn2D() throws {
        try checkWithONNXRuntime(.init(dims: 2, inChannels: 2, classes: 3, featuresPerStage: [4, 8, 16], kernelSizes: [[3, 3], [3, 3], [3, 3]],
                                       strides: [[1, 1], [2, 2], [2, 2]]), input: [2, 2, 24, 32])
    }

    func testAnisotropicPlainConvUNetRunsInONNXRuntimeIn3D() throws {
        try checkWithONNXRuntime(.init(dims: 3, inChannels: 1, classes: 2, featuresPerStage: [4, 8, 12], kernelSizes: [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                                       strides: [[1, 1, 1], [1, 2, 2], [2, 2, 2]]), input: [1, 1, 6, 16, 12])
    }

    /// The residual-encoder U-Net: stem, BasicBlockD stages (strided blocks with an average-pooled,
    /// projected skip), nnU-Net's decoder.
    func testResidualEncoderUNetRunsInONNXRuntime() throws {
        let net = try ResidualEncoderUNet(.init(dims: 3, inChannels: 2, classes: 3, featuresPerStage: [4, 8, 12],
                                                kernelSizes: [[1, 3, 3], [3, 3, 3], [3, 3, 3]], strides: [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
                                                blocksPerStage: [1, 2, 2], nConvPerStageDecoder: 1))
        try checkWithONNXRuntime(net, input: [2, 2, 4, 16, 8])
    }

    /// MedNeXt: depthwise (transposed) convolutions, per-channel GroupNorm, exact GELU, the up
    /// blocks' padding, residual resampling.
    func testMedNeXtRunsInONNXRuntime() throws {
        try checkWithONNXRuntime(try MedNeXt(.init(size: .S, dims: 3, inChannels: 1, classes: 2, kernelSize: 3)), input: [1, 1, 16, 32, 16])
        try checkWithONNXRuntime(try MedNeXt(.init(size: .B, dims: 2, inChannels: 2, classes: 3, kernelSize: 5)), input: [2, 2, 32, 48])
    }

    func testOtherNetworksAreRefusedNamingWhatIsCovered() throws {
        XCTAssertThrowsError(try ONNXModel.export(try SegResNet(.init(dims: 2)))) { XCTAssertTrue("\($0)".contains("plain conv U-Net"), "\($0)") }
    }
}
