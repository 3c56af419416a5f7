import Foundation
import XCTest
import TestSupport
import MedSegData
import MedSegModels
import Torch
@testable import MedSegTrain

/// ONNX export checked by PyPI's onnx (its checker, with shape inference) and onnxruntime, run by
/// the tests: each exported network gives MedSeg's logits within 1e-4 for an input of another batch
/// and size than any fixed one; an exported model folder carries its plans as metadata.
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
        import sys, numpy as np, onnx, onnxruntime as ort
        folder, shape = sys.argv[1], [int(s) for s in sys.argv[2].split(",")]
        onnx.checker.check_model(folder + "/net.onnx", full_check=True)
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

    /// `medseg export` of a model folder nnU-Net trained (3d_fullres of the fixture plans, one fold
    /// mirroring y and x, deep supervision on): the metadata reads back with the plans' values, the
    /// checker passes, and onnxruntime gives the full-resolution output of nnU-Net's own network
    /// (dynamic_network_architectures) within 1e-4, its deep-supervision heads dropped.
    func testNNUNetModelFolderExportsWithItsPlansAsMetadata() throws {
        let temp = try makeTemporaryFolder("onnx-nnunet")
        defer { try? FileManager.default.removeItem(at: temp) }
        let folder = temp.appendingPathComponent("Dataset999_Fixture/nnUNetTrainer__nnUNetPlans__3d_fullres")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("fold_0"), withIntermediateDirectories: true)
        _ = try Python.run("""
        import json, os, pydoc, sys, numpy as np, torch
        fixture, folder = sys.argv[1:3]
        plans = json.load(open(fixture))
        arch = plans["configurations"]["3d_fullres"]["architecture"]
        json.dump(plans, open(os.path.join(folder, "plans.json"), "w"))
        dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2}, "numTraining": 8, "file_ending": ".nii.gz"}
        json.dump(dataset, open(os.path.join(folder, "dataset.json"), "w"))
        json.dump({"spacings": [[2.0, 1.0, 1.0]] * 8, "shapes_after_crop": [[16, 40, 36]] * 8,
                   "foreground_intensity_properties_per_channel": plans["foreground_intensity_properties_per_channel"],
                   "median_relative_size_after_cropping": 1.0}, open(os.path.join(folder, "dataset_fingerprint.json"), "w"))
        kwargs = dict(arch["arch_kwargs"])
        for key in arch["_kw_requires_import"]:
            if kwargs[key] is not None:
                kwargs[key] = pydoc.locate(kwargs[key])
        torch.manual_seed(3)
        net = pydoc.locate(arch["network_class_name"])(input_channels=1, num_classes=3, deep_supervision=True, **kwargs)
        with torch.no_grad():
            for _, t in net.named_parameters():
                t.uniform_(-0.2, 0.2)
        net.eval()
        torch.save({"network_weights": net.state_dict(), "optimizer_state": None, "current_epoch": 1000,
                    "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0, "dataset_json": dataset, "device": torch.device("cpu")},
                    "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (1, 2)},
                   os.path.join(folder, "fold_0", "checkpoint_final.pth"))
        x = torch.randn(2, 1, 16, 48, 32)
        x.numpy().tofile(os.path.join(folder, "x.f32"))
        with torch.no_grad():
            net(x)[0].numpy().tofile(os.path.join(folder, "y.f32"))
        """, [fixtures.root.appendingPathComponent("nnunet_plans.json").path, folder.path], interpreter: "/usr/bin/python3")

        let model = temp.appendingPathComponent("net.onnx")
        let log = try Executables.runMedSeg(["export", folder.path, model.path]).output
        XCTAssertTrue(log.contains("ONNX opset \(ONNXModel.opset)") && log.contains("nnU-Net fold_0/checkpoint_final.pth"), log)
        let version = try Executables.runMedSeg(["--version"]).output.trimmingCharacters(in: .whitespacesAndNewlines)
        let printed = try Python.run("""
        import json, sys, numpy as np, onnx, onnxruntime as ort
        model, folder = sys.argv[1:3]
        onnx.checker.check_model(model, full_check=True)
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        plans = json.load(open(folder + "/plans.json"))
        c = plans["configurations"]["3d_fullres"]
        names = {"CTNormalization": "ct", "ZScoreNormalization": "zscore", "NoNormalization": "none", "RGBTo01Normalization": "rgb"}
        expected = {"patch_size": c["patch_size"], "target_spacing": c["spacing"], "normalization": [names[n] for n in c["normalization_schemes"]],
                    "use_mask_for_norm": c["use_mask_for_norm"], "intensity_statistics": [plans["foreground_intensity_properties_per_channel"]["0"]],
                    "labels": [0, 1, 2], "mirror_axes": [1, 2], "step_size": 0.5, "dims": 3, "input_channels": 1}
        wrong = [f"{k}: {meta.get(k)} != {v}" for k, v in expected.items() if k not in meta or json.loads(meta[k]) != v]
        for k, v in {"network": "plainunet", "configuration": "3d_fullres", "output_activation": "softmax", "medseg_version": sys.argv[3]}.items():
            if meta.get(k) != v:
                wrong.append(f"{k}: {meta.get(k)} != {v}")
        x = np.fromfile(folder + "/x.f32", dtype=np.float32).reshape(2, 1, 16, 48, 32)
        y = session.run(None, {"image": x})
        reference = np.fromfile(folder + "/y.f32", dtype=np.float32).reshape(2, 3, 16, 48, 32)
        print(json.dumps({"wrong": wrong, "outputs": len(y), "shape": list(y[0].shape), "difference": float(np.abs(y[0] - reference).max())}))
        """, [model.path, folder.path, version], interpreter: "/usr/bin/python3")
        let result = try JSONSerialization.jsonObject(with: Data(printed.utf8)) as! [String: Any]
        XCTAssertEqual(result["wrong"] as? [String], [], printed)
        XCTAssertEqual(result["outputs"] as? Int, 1, "one output: the deep-supervision heads are not exported")
        XCTAssertEqual(result["shape"] as? [Int], [2, 3, 16, 48, 32])
        XCTAssertLessThan(try XCTUnwrap(result["difference"] as? Double), 1e-4, "largest difference from nnU-Net's network")
    }

    /// A run trained on raw images (no plan) with regions: its checkpoint's normalization and CT
    /// statistics per channel, the regions and the order they are painted, sigmoid outputs, the
    /// step and mirroring it predicts with.
    func testMetadataOfARegionRunWithoutPlan() throws {
        let targets = LabelTargets(regions: [[1, 2], [2]], usesRegions: true, regionsClassOrder: [1, 2], ignoreLabel: 3, labelValues: [0, 1, 2])
        let statistics = try JSONDecoder().decode([IntensityStatistics].self, from: Data(#"""
            [{"mean": 10, "std": 2, "percentile00_5": -1, "percentile99_5": 30}, {"mean": 5, "std": 1, "percentile00_5": 0, "percentile99_5": 9}]
            """#.utf8))
        let spec = ModelSpecRecord(network: .init(name: "unet", dims: 2, inChannels: 2, outChannels: 2, features: 4, depth: 2), patchSize: [64, 48],
                                   normalization: "ct", intensityStatistics: statistics,
                                   labels: [0, 1, 2, 3], binary: false, configuration: nil, labelTargets: targets)
        var predictor = Predictor(model: try SegResNet(.init(dims: 2)), spec: spec, window: .init(stepSize: 0.25))
        predictor.mirrorAxes = [1]
        let metadata = ONNXMetadata(try CaseInference(predictors: [predictor], preprocessor: nil), version: "9.9")
        XCTAssertEqual(metadata["normalization"], #"["ct","ct"]"#)
        XCTAssertEqual(metadata["intensity_statistics"], #"[{"mean":10,"percentile_00_5":-1,"percentile_99_5":30,"std":2},"#
                       + #"{"mean":5,"percentile_00_5":0,"percentile_99_5":9,"std":1}]"#)
        XCTAssertEqual(metadata["regions"], "[[1,2],[2]]")
        XCTAssertEqual(metadata["regions_class_order"], "[1,2]")
        XCTAssertEqual(metadata["ignore_label"], "3")
        XCTAssertEqual(metadata["output_activation"], "sigmoid")
        XCTAssertEqual(metadata["step_size"], "0.25")
        XCTAssertEqual(metadata["mirror_axes"], "[1]")
        XCTAssertEqual(metadata["patch_size"], "[64,48]")
        XCTAssertEqual(metadata["medseg_version"], "9.9")
        XCTAssertNil(metadata["labels"])
        XCTAssertNil(metadata["target_spacing"], "no plan, no resampling")
        predictor.mirror = false
        XCTAssertEqual(ONNXMetadata(try CaseInference(predictors: [predictor], preprocessor: nil), version: "9.9")["mirror_axes"], "[]")
    }
}
