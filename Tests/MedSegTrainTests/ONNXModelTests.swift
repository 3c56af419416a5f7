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
    private func checkWithONNXRuntime(_ config: PlainConvUNet.Config, inputs shapes: [[Int]], file: StaticString = #filePath, line: UInt = #line) throws {
        try checkWithONNXRuntime(try PlainConvUNet(config), inputs: shapes, file: file, line: line)
    }

    /// Exports `net` once and runs the file on an input of each shape: onnx's checker passes, the
    /// model has one output, and it is MedSeg's within 1e-4.
    /// `half`: the float16 export, fed float16 inputs, within 2e-2 of MedSeg's float32 logits.
    /// `tolerance`: of float32 exports (default 1e-4).
    private func checkWithONNXRuntime(_ net: Module, inputs shapes: [[Int]], half: Bool = false, tolerance: Double = 1e-4, inputSize: [Int]? = nil,
                                      file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = try makeTemporaryFolder("onnx")
        defer { try? FileManager.default.removeItem(at: folder) }
        // The same values whatever order the tests run in.
        Torch.manualSeed(7)
        // Norm weights and biases away from their ones and zeros, and BatchNorm's running
        // statistics away from theirs, so that every tensor counts.
        try withNoGrad {
            for (name, p) in net.namedParameters() where p.rank == 1 { try p.copy_(Tensor.rand(p.shape) - 0.5 + (name.hasSuffix("norm.weight") ? 1 : 0)) }
            for (name, b) in net.namedBuffers() {
                if name.hasSuffix("running_mean") { try b.copy_(Tensor.rand(b.shape) - 0.5) }
                if name.hasSuffix("running_var") { try b.copy_(Tensor.rand(b.shape) + 0.5) }
            }
        }
        net.eval()
        let model = folder.appendingPathComponent("net.onnx")
        try ONNXModel.export(net, half: half, inputSize: inputSize).write(to: model)
        var expected: [Tensor] = []
        for (i, shape) in shapes.enumerated() {
            let x = try Tensor.randn(shape)
            expected.append(try withNoGrad { try net(x) })
            try x.contiguous().toArray(Float.self).withUnsafeBytes { try Data($0).write(to: folder.appendingPathComponent("x\(i).bin")) }
        }
        let script = """
        import sys, numpy as np, onnx, onnxruntime as ort
        folder, half, shapes = sys.argv[1], sys.argv[2] == "1", [[int(s) for s in shape.split(",")] for shape in sys.argv[3:]]
        onnx.checker.check_model(folder + "/net.onnx", full_check=True)
        session = ort.InferenceSession(folder + "/net.onnx", providers=["CPUExecutionProvider"])
        assert len(session.get_outputs()) == 1, [o.name for o in session.get_outputs()]
        for i, shape in enumerate(shapes):
            x = np.fromfile(f"{folder}/x{i}.bin", dtype=np.float32).reshape(shape)
            y = session.run(None, {"image": x.astype(np.float16) if half else x})[0]
            assert y.dtype == (np.float16 if half else np.float32), y.dtype
            y.astype(np.float32).tofile(f"{folder}/y{i}.bin")
            print(",".join(map(str, y.shape)))
        """
        let printed = try Python.run(script, [folder.path, half ? "1" : "0"] + shapes.map { $0.map(String.init).joined(separator: ",") }, interpreter: "/usr/bin/python3")
        let lines = printed.split(separator: "\n").map(String.init)
        XCTAssertEqual(lines, expected.map { $0.shape.map(String.init).joined(separator: ",") }, file: file, line: line)
        for (i, e) in expected.enumerated() where i < lines.count {
            let data = try Data(contentsOf: folder.appendingPathComponent("y\(i).bin"))
            let values = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            // float16 keeps about 3 significant digits through every layer: 2e-2, as the model-folder test allows.
            try FixtureSupport.assertClose(try Tensor(values, shape: e.shape), e, rtol: half ? 2e-2 : tolerance, atol: half ? 2e-2 : tolerance,
                                           "onnxruntime, input \(shapes[i])", file: file, line: line)
        }
    }

    func testPlainConvUNetRunsInONNXRuntimeIn2D() throws {
        try checkWithONNXRuntime(.init(dims: 2, inChannels: 2, classes: 3, featuresPerStage: [4, 8, 16], kernelSizes: [[3, 3], [3, 3], [3, 3]],
                                       strides: [[1, 1], [2, 2], [2, 2]]), inputs: [[2, 2, 24, 32], [1, 2, 16, 12]])
    }

    func testAnisotropicPlainConvUNetRunsInONNXRuntimeIn3D() throws {
        try checkWithONNXRuntime(.init(dims: 3, inChannels: 1, classes: 2, featuresPerStage: [4, 8, 12], kernelSizes: [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                                       strides: [[1, 1, 1], [1, 2, 2], [2, 2, 2]]), inputs: [[1, 1, 6, 16, 12], [2, 1, 4, 8, 20]])
    }

    /// The residual-encoder U-Net: stem, BasicBlockD stages (strided blocks with an average-pooled,
    /// projected skip), nnU-Net's decoder.
    func testResidualEncoderUNetRunsInONNXRuntime() throws {
        let net = try ResidualEncoderUNet(.init(dims: 3, inChannels: 2, classes: 3, featuresPerStage: [4, 8, 12],
                                                kernelSizes: [[1, 3, 3], [3, 3, 3], [3, 3, 3]], strides: [[1, 1, 1], [1, 2, 2], [2, 2, 2]],
                                                blocksPerStage: [1, 2, 2], nConvPerStageDecoder: 1))
        try checkWithONNXRuntime(net, inputs: [[2, 2, 4, 16, 8], [1, 2, 6, 8, 12]])
    }

    /// MedNeXt: depthwise (transposed) convolutions, per-channel GroupNorm, exact GELU, the up
    /// blocks' padding, residual resampling.
    func testMedNeXtRunsInONNXRuntime() throws {
        try checkWithONNXRuntime(try MedNeXt(.init(size: .S, dims: 3, inChannels: 1, classes: 2, kernelSize: 3)), inputs: [[1, 1, 16, 32, 16], [1, 1, 32, 16, 16]])
        try checkWithONNXRuntime(try MedNeXt(.init(size: .B, dims: 2, inChannels: 2, classes: 3, kernelSize: 5)), inputs: [[2, 2, 32, 48], [1, 2, 16, 16]])
    }

    /// SegResNet (MONAI's defaults): GroupNorm of 8 groups, pre-activated residual blocks,
    /// 1x1 convolution and linear upsampling (Resize) before the summed skips; 3D and 2D.
    func testSegResNetRunsInONNXRuntime() throws {
        try checkWithONNXRuntime(try SegResNet(.monai(dims: 3, inChannels: 1, classes: 3)), inputs: [[1, 1, 16, 24, 16], [2, 1, 8, 8, 16]])
        try checkWithONNXRuntime(try SegResNet(.monai(dims: 2, inChannels: 2, classes: 2, initFilters: 16, levels: 3)), inputs: [[2, 2, 24, 32], [1, 2, 12, 8]])
    }

    /// The classic U-Net: BatchNorm with running statistics, max-pooling, transposed convolutions.
    func testUNetRunsInONNXRuntime() throws {
        try checkWithONNXRuntime(try UNet(.init(inChannels: 2, classes: 3, features: 4, depth: 3, dims: 2)), inputs: [[2, 2, 16, 24], [1, 2, 32, 12]])
        try checkWithONNXRuntime(try UNet(.init(inChannels: 1, classes: 1, features: 2, depth: 3, dims: 3)), inputs: [[1, 1, 8, 16, 12], [2, 1, 4, 8, 8]])
    }

    /// UNet++ with deep supervision on: nested skips, its final head the one output (the other
    /// heads are dropped); regular 3D and a plan's anisotropic 2D stages.
    func testUNetPlusPlusRunsInONNXRuntimeWithItsFinalHeadOnly() throws {
        try checkWithONNXRuntime(try UNetPlusPlus(.init(dims: 3, inChannels: 1, classes: 2, baseFeatures: 4, depth: 3, deepSupervision: true)),
                                 inputs: [[1, 1, 8, 16, 8], [2, 1, 16, 8, 12]])
        try checkWithONNXRuntime(try UNetPlusPlus(.init(dims: 2, inChannels: 2, classes: 3, featuresPerStage: [4, 8, 8], kernelSizes: [[1, 3], [3, 3], [3, 3]],
                                                        strides: [[1, 1], [1, 2], [2, 2]])), inputs: [[2, 2, 8, 16], [1, 2, 6, 12]])
    }

    /// SETR-MLA (a small ViT): attention, LayerNorm, exact GELU, the position embeddings
    /// resampled bicubically for a grid other than the pretraining one, the MLA decoder with its
    /// BatchNorms and upsampling; its main output only.
    func testSETRMLARunsInONNXRuntime() throws {
        let encoder = VisionTransformer.Config(imageSize: 32, patchSize: 8, inChannels: 2, hidden: 32, depth: 4, heads: 2, mlpDim: 48)
        let net = try SETRMLA(.init(encoder: encoder, classes: 3, mlaChannels: 16, headChannels: 8))
        try withNoGrad { for (name, p) in net.namedParameters() where name.contains("pos_embed") || name.contains("cls_token") { try p.copy_(Tensor.randn(p.shape)) } }
        // Its logits are small (about 0.2): a bound to match.
        try checkWithONNXRuntime(net, inputs: [[2, 2, 32, 32], [1, 2, 48, 64]], tolerance: 1e-5)
    }

    /// `--half`: float16 weights, input and output (Resize's scales stay float32), within 1e-2 of
    /// MedSeg's float32 logits, in about half the file.
    /// Primus (a small EVA: 2 blocks of 2 heads), PrimusV2 and PrimusV3 (residual embeddings, V3 with its scaled
    /// projections): the fixed input size, at two batch sizes.
    func testPrimusRunsInONNXRuntime() throws {
        for embedding in [Primus.Config.Embedding.patch, .residual, .residualWithSkips] {
            let net = try Primus(.init(inChannels: 2, classes: 3, embedDim: 48, depth: 2, heads: 2, inputShape: [16, 16, 24], embedding: embedding))
            try checkWithONNXRuntime(net, inputs: [[1, 2, 16, 16, 24], [2, 2, 16, 16, 24]])
        }
    }

    /// SwinUNETR for one input size: windows, shifts, paddings (a 2D axis that is not a multiple of
    /// the window) and the shifted windows' masks fixed; v1 and v2 in 3D, v1 in 2D.
    func testSwinUNETRRunsInONNXRuntimeAtItsPatchSize() throws {
        for (dims, v2, size) in [(3, false, [32, 64, 32]), (3, true, [32, 32, 32]), (2, false, [64, 96])] {
            let net = try SwinUNETR(.init(dims: dims, inChannels: 2, classes: 3, featureSize: 12, useV2: v2))
            try checkWithONNXRuntime(net, inputs: [[1, 2] + size, [2, 2] + size], inputSize: size)
        }
        XCTAssertThrowsError(try ONNXModel.export(try SwinUNETR(.init(dims: 2, featureSize: 12)))) {
            XCTAssertTrue("\($0)".contains("writes one input size"), "\($0)")
        }
    }

    /// UltraLight VM-UNet: its PVM layers' selective scan as an ONNX Scan over the tokens, the
    /// attention bridge, bilinear upsampling with aligned corners; logits and the published sigmoid.
    func testUltraLightVMUNetRunsInONNXRuntimeWithItsScan() throws {
        for sigmoid in [false, true] {
            let net = try UltraLightVMUNet(.init(inChannels: 3, classes: 2, sigmoidOutput: sigmoid))
            try checkWithONNXRuntime(net, inputs: [[1, 3, 64, 64], [2, 3, 32, 96]])
        }
    }

    /// Folds in one file: their logits averaged, as predict averages them; each fold's weights apart.
    func testFoldsInOneFileAverageTheirLogits() throws {
        let folder = try makeTemporaryFolder("onnx-folds")
        defer { try? FileManager.default.removeItem(at: folder) }
        let config = PlainConvUNet.Config(dims: 2, inChannels: 1, classes: 2, featuresPerStage: [4, 8], kernelSizes: [[3, 3], [3, 3]],
                                          strides: [[1, 1], [2, 2]])
        let folds = try (0..<3).map { _ in try PlainConvUNet(config) }
        folds.forEach { $0.eval() }
        let x = try Tensor.randn([2, 1, 16, 12])
        let mean = try withNoGrad { try folds.map { try $0(x) }.reduce(Tensor.zeros([2, 2, 16, 12])) { try $0 + $1 } * (1.0 / 3) }
        try ONNXModel.export(folds).write(to: folder.appendingPathComponent("net.onnx"))
        try x.contiguous().toArray(Float.self).withUnsafeBytes { try Data($0).write(to: folder.appendingPathComponent("x.bin")) }
        let printed = try Python.run("""
        import sys, numpy as np, onnx, onnxruntime as ort
        folder = sys.argv[1]
        model = onnx.load(folder + "/net.onnx")
        onnx.checker.check_model(model, full_check=True)
        names = [i.name for i in model.graph.initializer]
        assert len(names) == len(set(names)), "initializer names repeat"
        prefixes = sorted({n.split("/")[0] for n in names if "/" in n})
        x = np.fromfile(folder + "/x.bin", dtype=np.float32).reshape(2, 1, 16, 12)
        ort.InferenceSession(folder + "/net.onnx", providers=["CPUExecutionProvider"]).run(None, {"image": x})[0].tofile(folder + "/y.bin")
        print(",".join(prefixes))
        """, [folder.path], interpreter: "/usr/bin/python3")
        XCTAssertEqual(printed.trimmingCharacters(in: .whitespacesAndNewlines), "fold0,fold1,fold2")
        let y = try Data(contentsOf: folder.appendingPathComponent("y.bin")).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        try FixtureSupport.assertClose(try Tensor(y, shape: mean.shape), mean, rtol: 1e-4, atol: 1e-4, "the mean of three folds")
        XCTAssertThrowsError(try ONNXModel.export([try PlainConvUNet(config), try UNet(.init(inChannels: 1, classes: 3, features: 4, depth: 2, dims: 2))]), "folds of other outputs")
    }

    func testHalfExportHasFloat16WeightsAndIO() throws {
        let unet = try PlainConvUNet(.init(dims: 3, inChannels: 1, classes: 2, featuresPerStage: [4, 8, 16], kernelSizes: [[3, 3, 3], [3, 3, 3], [3, 3, 3]],
                                           strides: [[1, 1, 1], [2, 2, 2], [2, 2, 2]]))
        try checkWithONNXRuntime(unet, inputs: [[1, 1, 8, 16, 16], [2, 1, 16, 8, 8]], half: true)
        let full = try ONNXModel.export(unet).count, half = try ONNXModel.export(unet, half: true).count
        XCTAssertLessThan(Double(half), 0.55 * Double(full), "float16 weights take half the bytes")
        try checkWithONNXRuntime(try SegResNet(.monai(dims: 2, inChannels: 1, classes: 2, levels: 3)), inputs: [[1, 1, 16, 16], [2, 1, 8, 12]], half: true)
    }

    /// A network without an emitter is refused naming what is covered; a layer without operators
    /// is refused by its state_dict name.
    func testOtherNetworksAndLayersAreRefusedByName() throws {
        XCTAssertThrowsError(try ONNXModel.export(Sequential(try Linear(2, 2)))) {
            XCTAssertTrue("\($0)".contains("covers nnU-Net's plain conv U-Net") && "\($0)".contains("this network is Sequential"), "\($0)")
        }
        var graph = ONNXModel.Graph(dims: 2)
        let head = Sequential(try ConvNd(dims: 2, 2, 2, kernelSize: [1]), Upsample(scaleFactor: [2, 2], mode: .bicubic))
        XCTAssertThrowsError(try graph.layer(head, "x", prefix: "head")) { XCTAssertTrue("\($0)".contains("layer head.1 (bicubic Upsample)"), "\($0)") }
        XCTAssertThrowsError(try graph.layer(Sequential(Tanh()), "x", prefix: "act")) { XCTAssertTrue("\($0)".contains("layer act.0 (Tanh)"), "\($0)") }
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
        XCTAssertTrue(log.contains("ONNX opset \(ONNXModel.opset), float32") && log.contains("nnU-Net fold_0/checkpoint_final.pth"), log)
        let halfModel = temp.appendingPathComponent("net16.onnx")
        XCTAssertTrue(try Executables.runMedSeg(["export", folder.path, halfModel.path, "--half"]).output.contains("float16"))
        let zip = try Executables.runMedSeg(["export", folder.path, temp.appendingPathComponent("model.zip").path, "--half"], expectSuccess: false)
        XCTAssertTrue(zip.status != 0 && zip.output.contains("--half writes float16 ONNX"), zip.output)
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
        half = ort.InferenceSession(model.replace("net.onnx", "net16.onnx"), providers=["CPUExecutionProvider"])
        y16 = half.run(None, {"image": x.astype(np.float16)})[0]
        print(json.dumps({"wrong": wrong, "outputs": len(y), "half": [half.get_inputs()[0].type, half.get_outputs()[0].type],
                          "half_difference": float(np.abs(y16.astype(np.float32) - reference).max()), "shape": list(y[0].shape), "difference": float(np.abs(y[0] - reference).max())}))
        """, [model.path, folder.path, version], interpreter: "/usr/bin/python3")
        let result = try JSONSerialization.jsonObject(with: Data(printed.utf8)) as! [String: Any]
        XCTAssertEqual(result["wrong"] as? [String], [], printed)
        XCTAssertEqual(result["outputs"] as? Int, 1, "one output: the deep-supervision heads are not exported")
        XCTAssertEqual(result["shape"] as? [Int], [2, 3, 16, 48, 32])
        XCTAssertLessThan(try XCTUnwrap(result["difference"] as? Double), 1e-4, "largest difference from nnU-Net's network")
        XCTAssertEqual(result["half"] as? [String], ["tensor(float16)", "tensor(float16)"])
        XCTAssertLessThan(try XCTUnwrap(result["half_difference"] as? Double), 2e-2, "float16 export against nnU-Net's float32 network")
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
