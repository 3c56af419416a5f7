import Foundation
import XCTest
import TestSupport
import MedSegData
import Torch
@testable import MedSegTrain

/// `medseg predict --run` on a model folder nnU-Net trained: its plans (nnunetv2's planner, the
/// fixture), dataset.json and fingerprint as nnU-Net writes them, and two folds' checkpoints of a
/// network dynamic_network_architectures builds from those plans, saved as nnU-Net saves them.
final class NNUNetModelFolderTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("nnunet-model")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// Writes the model folder and, for `image` (values z, y, x at the plans' spacing), the
    /// probabilities nnU-Net's inference gives: CT normalization with the plans' intensities,
    /// logits averaged over the checkpoint's mirroring axes (`mirror`, spatial, or nil for none)
    /// and over the folds, then softmax; a 2d configuration slice by slice. `residual` turns the
    /// plans' network into nnU-Net's ResidualEncoderUNet (the ResEnc planners' class and blocks).
    /// An image whose slices are `zSpacing` apart (not the plans' 2 mm) is resampled to the plans'
    /// spacing (cubic, clipped to its range) and the logits back (linear), with scipy's zoom on
    /// skimage's grid (`grid_mode`, edge values): nnU-Net's resample_data_or_seg_to_shape.
    /// `trainer` nnUNet_Primus_S_Trainer: the network is Primus-S on the plans' patch, as that trainer builds it.
    private func nnUNetModel(_ image: [Float], slices: Int, configuration: String = "3d_fullres", folds: Int = 2, mirror: [Int]?,
                             residual: Bool = false, zSpacing: Double = 2, trainer: String = "nnUNetTrainer") throws -> (folder: URL, probabilities: [Float]) {
        let plansName = residual ? "nnUNetResEncUNetMPlans" : "nnUNetPlans"
        let folder = temp.appendingPathComponent("Dataset999_Fixture/\(trainer)__\(plansName)__\(configuration)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let raw = temp.appendingPathComponent("image.f32"), reference = temp.appendingPathComponent("reference.f32")
        try image.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: raw)
        let mirrorText = mirror.map { "(" + $0.map(String.init).joined(separator: ", ") + ",)" } ?? "None"
        _ = try Python.run("""
        import itertools, json, os, pydoc, sys, numpy as np, torch
        from scipy.ndimage import zoom
        fixture, folder, raw, out, configuration, folds, slices, residual, z_spacing, trainer = sys.argv[1:11]
        folds, slices, mirror = int(folds), int(slices), \(mirrorText)
        resampled = int(round(slices * float(z_spacing) / 2.0))
        plans = json.load(open(fixture))
        arch = plans["configurations"][configuration]["architecture"]
        if residual == "1":
            arch["network_class_name"] = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"
            n = arch["arch_kwargs"].pop("n_conv_per_stage")
            arch["arch_kwargs"]["n_blocks_per_stage"] = [1, 3, 4, 6, 6, 6][:len(n)]
            arch["arch_kwargs"]["n_conv_per_stage_decoder"] = [1] * (len(n) - 1)
        json.dump(plans, open(os.path.join(folder, "plans.json"), "w"))
        dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2}, "numTraining": 8, "file_ending": ".nii.gz"}
        json.dump(dataset, open(os.path.join(folder, "dataset.json"), "w"))
        props = plans["foreground_intensity_properties_per_channel"]
        json.dump({"spacings": [[2.0, 1.0, 1.0]] * 8, "shapes_after_crop": [[16, 40, 36]] * 8, "foreground_intensity_properties_per_channel": props,
                   "median_relative_size_after_cropping": 1.0}, open(os.path.join(folder, "dataset_fingerprint.json"), "w"))
        kwargs = dict(arch["arch_kwargs"])
        for key in arch["_kw_requires_import"]:
            if kwargs[key] is not None:
                kwargs[key] = pydoc.locate(kwargs[key])
        p = props["0"]
        x = np.fromfile(raw, dtype="<f4").reshape(slices, 40, 40).astype(np.float64)
        x = (np.clip(x, p["percentile_00_5"], p["percentile_99_5"]) - p["mean"]) / max(p["std"], 1e-8)
        if resampled != slices:
            x = np.clip(zoom(x, (resampled / slices, 1, 1), order=3, mode="nearest", grid_mode=True), x.min(), x.max())
        x = torch.from_numpy(x.astype(np.float32))
        inputs = [x[z][None, None] for z in range(slices)] if configuration == "2d" else [x[None, None]]
        flips = [[a + 2 for a in c] for r in range(len(mirror or ()) + 1) for c in itertools.combinations(mirror or (), r)]
        total = [0] * len(inputs)
        for fold in range(folds):
            torch.manual_seed(11 + fold)
            if trainer == "nnUNet_Primus_S_Trainer":
                from dynamic_network_architectures.architectures.primus import PrimusS
                net = PrimusS(1, 3, (8, 8, 8), tuple(plans["configurations"][configuration]["patch_size"]), drop_path_rate=0.2)
            else:
                net = pydoc.locate(arch["network_class_name"])(input_channels=1, num_classes=3, deep_supervision=True, **kwargs)
            with torch.no_grad():
                for _, t in net.named_parameters():
                    t.uniform_(-0.2, 0.2)
            net.eval()
            os.makedirs(os.path.join(folder, f"fold_{fold}"))
            torch.save({"network_weights": net.state_dict(), "optimizer_state": None, "grad_scaler_state": None,
                        "logging": {"mean_fg_dice": [0.5], "ema_fg_dice": [0.5]}, "_best_ema": 0.5, "current_epoch": 1000,
                        "init_args": {"plans": plans, "configuration": configuration, "fold": fold, "dataset_json": dataset, "device": torch.device("cpu")},
                        "trainer_name": trainer, "inference_allowed_mirroring_axes": mirror},
                       os.path.join(folder, f"fold_{fold}", "checkpoint_final.pth"))
            def full(o):  # the full-resolution output of a deep-supervised network, or the only one
                return o[0] if isinstance(o, (list, tuple)) else o
            with torch.no_grad():
                for i, s in enumerate(inputs):
                    logits = sum(torch.flip(full(net(torch.flip(s, f))), f) if f else full(net(s)) for f in flips)
                    total[i] = total[i] + logits / len(flips)
        if resampled != slices:
            total = [torch.from_numpy(zoom((t / folds).double().numpy(), (1, 1, slices / resampled, 1, 1), order=1, mode="nearest", grid_mode=True)) * folds
                     for t in total]
        probabilities = [torch.softmax(t / folds, 1)[0] for t in total]
        (torch.stack(probabilities, 1) if configuration == "2d" else probabilities[0]).numpy().astype("<f4").tofile(out)
        """, [fixtures.root.appendingPathComponent("nnunet_plans.json").path, folder.path, raw.path, reference.path, configuration,
              String(folds), String(slices), residual ? "1" : "0", String(zSpacing), trainer], interpreter: "/usr/bin/python3")
        let probabilities = try Data(contentsOf: reference).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (folder, probabilities)
    }

    /// A CT-like volume of `slices` x 40 x 40 at the plans' spacing (2 x 1 x 1 mm), written as the
    /// input folder's one case: no zeros (no cropping), no resampling.
    private func ctVolume(slices: Int, zSpacing: Double = 2) throws -> (values: [Float], input: URL) {
        var generator = SystemRandomNumberGenerator()
        let values = (0..<(slices * 40 * 40)).map { _ in Float.random(in: 1...350, using: &generator) * (Bool.random(using: &generator) ? 1 : -0.4) }
        let input = temp.appendingPathComponent("input")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try ImageIO.write(MedicalImage(size: [40, 40, slices], voxels: values, geometry: ImageGeometry(spacing: [1, 1, zSpacing])),
                          to: input.appendingPathComponent("case_0000.nii.gz"))
        return (values, input)
    }

    private func assertProbabilities(in out: URL, match reference: [Float], shape: [Int], file: StaticString = #filePath, line: UInt = #line) throws {
        let probabilities = try ProbabilityFile.read(ProbabilityFile.url(for: "case", in: out))
        XCTAssertEqual(probabilities.shape, shape, file: file, line: line)
        let worst = zip(try probabilities.floats(), reference).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-4, "largest difference from nnU-Net's probabilities", file: file, line: line)
    }

    /// 3d_fullres, two folds, mirroring over y and x only (the 16-slice volume is the patch: one window).
    func testPredictsFromAnNNUNetModelFolderAsNNUNetDoes() throws {
        let (values, input) = try ctVolume(slices: 16)
        let (folder, reference) = try nnUNetModel(values, slices: 16, mirror: [1, 2])
        let out = temp.appendingPathComponent("out")
        let log = try Executables.runMedSeg(["predict", "--run", folder.path, "--input", input.path, "--out", out.path, "--save-probabilities"]).output
        XCTAssertTrue(log.contains("nnU-Net fold_0/checkpoint_final.pth, epoch 1000; nnU-Net fold_1/checkpoint_final.pth, epoch 1000; logits averaged"), log)
        try assertProbabilities(in: out, match: reference, shape: [3, 16, 40, 40])
        let mask = try ImageIO.read(out.appendingPathComponent("case.nii.gz"))
        XCTAssertEqual(mask.geometry.spacing, [1, 1, 2])
        XCTAssertEqual(Set(mask.voxels.map(Int.init)).isSubset(of: [0, 1, 2]), true)

        // Packed as one model file, it predicts the same mask.
        let model = temp.appendingPathComponent("model.zip"), fromFile = temp.appendingPathComponent("from-file")
        let exported = try Executables.runMedSeg(["export", folder.path, model.path]).output
        XCTAssertTrue(exported.contains("folds 0, 1, checkpoint final, configuration 3d_fullres"), exported)
        try Executables.runMedSeg(["predict", "--model", model.path, "--input", input.path, "--out", fromFile.path])
        XCTAssertEqual(try ImageIO.read(fromFile.appendingPathComponent("case.nii.gz")).voxels, mask.voxels)

        // One fold by name; a checkpoint no fold has is refused naming the folder.
        try Executables.runMedSeg(["predict", "--run", folder.path, "--folds", "1", "--input", input.path, "--out", temp.appendingPathComponent("one").path])
        let missing = try Executables.runMedSeg(["predict", "--run", folder.path, "--checkpoint", "best", "--input", input.path,
                                                 "--out", temp.appendingPathComponent("none").path], expectSuccess: false)
        XCTAssertTrue(missing.output.contains("\(folder.path): no fold_N/checkpoint_best.pth in this nnU-Net model folder"), missing.output)
    }

    /// A folder nnU-Net's Primus trainer wrote: its plans name a U-Net, its checkpoint holds Primus-S
    /// (made for the plans' 16 x 40 x 40 patch), which MedSeg recognises by its weights.
    func testPredictsFromAPrimusModelFolder() throws {
        let (values, input) = try ctVolume(slices: 16)
        let (folder, reference) = try nnUNetModel(values, slices: 16, folds: 1, mirror: [1, 2], trainer: "nnUNet_Primus_S_Trainer")
        let out = temp.appendingPathComponent("out")
        let log = try Executables.runMedSeg(["predict", "--run", folder.path, "--input", input.path, "--out", out.path, "--save-probabilities"]).output
        XCTAssertTrue(log.contains("nnU-Net fold_0/checkpoint_final.pth, epoch 1000"), log)
        try assertProbabilities(in: out, match: reference, shape: [3, 16, 40, 40])
    }

    /// A folder whose checkpoint, dataset.json or plans say what no nnU-Net run writes is refused
    /// in one line naming the file, before any case is predicted: mirroring the channel axis, a
    /// head for another label count, NaN weights, a spacing of 1e300 mm, and plans whose 5,000
    /// configurations inherit from one another (once a hang).
    func testBrokenModelFoldersAreRefusedNamingTheFile() throws {
        let (_, input) = try ctVolume(slices: 16)
        let (folder, _) = try nnUNetModel(try ctVolume(slices: 16).values, slices: 16, folds: 1, mirror: [1, 2])
        func refused(_ change: String, _ expected: String, line: UInt = #line) throws {
            let copy = temp.appendingPathComponent("copy-\(UUID().uuidString)/\(folder.lastPathComponent)")
            try FileManager.default.createDirectory(at: copy.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: folder, to: copy)
            _ = try Python.run("""
            import json, os, sys, torch
            folder = sys.argv[1]
            ckpt_path = os.path.join(folder, "fold_0", "checkpoint_final.pth")
            ckpt = torch.load(ckpt_path, weights_only=False)
            plans = json.load(open(os.path.join(folder, "plans.json")))
            dataset = json.load(open(os.path.join(folder, "dataset.json")))
            \(change)
            torch.save(ckpt, ckpt_path)
            json.dump(plans, open(os.path.join(folder, "plans.json"), "w"))
            json.dump(dataset, open(os.path.join(folder, "dataset.json"), "w"))
            """, [copy.path], interpreter: "/usr/bin/python3")
            let started = Date()
            let r = try Executables.runMedSeg(["predict", "--run", copy.path, "--input", input.path, "--out", temp.appendingPathComponent("out-\(UUID().uuidString)").path],
                                              expectSuccess: false)
            XCTAssertNotEqual(r.status, 0, line: line)
            XCTAssertLessThan(Date().timeIntervalSince(started), 60, line: line)
            let errors = r.output.split(separator: "\n").filter { $0.hasPrefix("Error:") }
            XCTAssertEqual(errors.count, 1, r.output, line: line)
            XCTAssertTrue(errors.first?.contains(copy.path) == true && errors.first?.contains(expected) == true, r.output, line: line)
        }
        try refused("ckpt['inference_allowed_mirroring_axes'] = (-1,)", "inference_allowed_mirroring_axes")
        try refused("ckpt['inference_allowed_mirroring_axes'] = (0, 0)", "each once")
        try refused("dataset['labels'] = {'background': 0, 'a': 1, 'b': 2, 'c': 3}", "its head has 3 outputs, but dataset.json beside it gives 4 labels")
        try refused("w = ckpt['network_weights']; k = [n for n in sorted(w) if n.startswith('encoder.') and n.endswith('conv.weight')][1]; w[k] = w[k] * float('nan')", "holds NaN or infinite values")
        try refused("plans['configurations']['3d_fullres']['spacing'] = [1e300, 1.0, 1.0]", "spacing must be positive numbers")
        try refused("""
        c = plans['configurations']
        for i in range(5000): c[f'chain_{i}'] = {'inherits_from': f'chain_{i + 1}' if i < 4999 else '3d_fullres'}
        """, "configurations")
    }

    /// nnU-Net's 2d configuration of a ResEnc planner on a volume: slice by slice, no mirroring
    /// (the checkpoint allows none).
    func testResidualEncoder2DModelPredictsAVolumeSliceBySlice() throws {
        let (values, input) = try ctVolume(slices: 5)
        let (folder, reference) = try nnUNetModel(values, slices: 5, configuration: "2d", folds: 1, mirror: nil, residual: true)
        let out = temp.appendingPathComponent("out")
        try Executables.runMedSeg(["predict", "--run", folder.path, "--input", input.path, "--out", out.path, "--save-probabilities"])
        try assertProbabilities(in: out, match: reference, shape: [3, 5, 40, 40])
    }

    /// A case at another slice spacing (2.4 mm, 13 slices) is resampled to the plans' 2 mm (16
    /// slices, the patch) and its logits back to 13 slices before the softmax, as nnU-Net does.
    func testACaseAtAnotherSpacingIsResampledBothWaysAsNNUNetDoes() throws {
        let (values, input) = try ctVolume(slices: 13, zSpacing: 2.4)
        let (folder, reference) = try nnUNetModel(values, slices: 13, folds: 1, mirror: nil, zSpacing: 2.4)
        let out = temp.appendingPathComponent("out")
        try Executables.runMedSeg(["predict", "--run", folder.path, "--input", input.path, "--out", out.path, "--save-probabilities"])
        try assertProbabilities(in: out, match: reference, shape: [3, 13, 40, 40])
        let spacing = try ImageIO.read(out.appendingPathComponent("case.nii.gz")).geometry.spacing
        XCTAssertEqual(spacing[2], 2.4, accuracy: 1e-6, "the mask in the case's own grid")
    }

    /// nnU-Net's cascade: its 3d_lowres folder predicts first, and the 3d_cascade_fullres folder
    /// (a configuration that inherits 3d_fullres) takes that segmentation, one-hot, as two more
    /// input channels. Both stages at the same spacing, so the reference needs no resampling.
    func testCascadeStagePredictsBehindItsLowResolutionFolder() throws {
        let (values, input) = try ctVolume(slices: 16)
        let root = temp.appendingPathComponent("Dataset999_Fixture")
        let raw = temp.appendingPathComponent("image.f32"), reference = temp.appendingPathComponent("reference.f32")
        try values.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: raw)
        _ = try Python.run("""
        import copy, json, os, pydoc, sys, numpy as np, torch
        fixture, root, raw, out = sys.argv[1:5]
        plans = json.load(open(fixture))
        configurations = plans["configurations"]
        configurations["3d_lowres"] = dict(copy.deepcopy(configurations["3d_fullres"]), next_stage="3d_cascade_fullres")
        configurations["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
        arch = configurations["3d_fullres"]["architecture"]
        kwargs = dict(arch["arch_kwargs"])
        for key in arch["_kw_requires_import"]:
            if kwargs[key] is not None:
                kwargs[key] = pydoc.locate(kwargs[key])
        dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2}, "numTraining": 8, "file_ending": ".nii.gz"}
        props = plans["foreground_intensity_properties_per_channel"]
        nets = {}
        for seed, (configuration, channels) in enumerate([("3d_lowres", 1), ("3d_cascade_fullres", 3)]):
            folder = os.path.join(root, "nnUNetTrainer__nnUNetPlans__" + configuration)
            os.makedirs(os.path.join(folder, "fold_0"))
            json.dump(plans, open(os.path.join(folder, "plans.json"), "w"))
            json.dump(dataset, open(os.path.join(folder, "dataset.json"), "w"))
            json.dump({"spacings": [[2.0, 1.0, 1.0]] * 8, "shapes_after_crop": [[16, 40, 36]] * 8,
                       "foreground_intensity_properties_per_channel": props, "median_relative_size_after_cropping": 1.0},
                      open(os.path.join(folder, "dataset_fingerprint.json"), "w"))
            torch.manual_seed(21 + seed)
            net = pydoc.locate(arch["network_class_name"])(input_channels=channels, num_classes=3, deep_supervision=True, **kwargs)
            with torch.no_grad():
                for _, t in net.named_parameters():
                    t.uniform_(-0.2, 0.2)
            net.eval()
            torch.save({"network_weights": net.state_dict(), "init_args": {"configuration": configuration}, "current_epoch": 1000,
                        "inference_allowed_mirroring_axes": None}, os.path.join(folder, "fold_0", "checkpoint_final.pth"))
            nets[configuration] = net
        p = props["0"]
        x = np.fromfile(raw, dtype="<f4").reshape(1, 1, 16, 40, 40).astype(np.float64)
        x = torch.from_numpy(((np.clip(x, p["percentile_00_5"], p["percentile_99_5"]) - p["mean"]) / p["std"]).astype(np.float32))
        with torch.no_grad():
            low = torch.softmax(nets["3d_lowres"](x)[0], 1).argmax(1, keepdim=True)
            onehot = torch.cat([(low == label).float() for label in (1, 2)], 1)
            assert all(0 < onehot[0, c].sum() < onehot[0, c].numel() for c in (0, 1)), "the first stage paints some of each label"
            torch.softmax(nets["3d_cascade_fullres"](torch.cat([x, onehot], 1))[0], 1)[0].numpy().astype("<f4").tofile(out)
            # The stage's network alone, on image and one-hot, for its ONNX export.
            torch.cat([x, onehot], 1).numpy().astype("<f4").tofile(os.path.join(root, "stage_input.f32"))
            nets["3d_cascade_fullres"](torch.cat([x, onehot], 1))[0].numpy().astype("<f4").tofile(os.path.join(root, "stage_logits.f32"))
        """, [fixtures.root.appendingPathComponent("nnunet_plans.json").path, root.path, raw.path, reference.path], interpreter: "/usr/bin/python3")
        let expected = try Data(contentsOf: reference).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        let cascade = root.appendingPathComponent("nnUNetTrainer__nnUNetPlans__3d_cascade_fullres")
        let out = temp.appendingPathComponent("out")
        let log = try Executables.runMedSeg(["predict", "--run", cascade.path, "--previous-stage", root.appendingPathComponent("nnUNetTrainer__nnUNetPlans__3d_lowres").path,
                                             "--input", input.path, "--out", out.path, "--save-probabilities"]).output
        XCTAssertTrue(log.contains("3d_lowres nnU-Net fold_0/checkpoint_final.pth, epoch 1000; nnU-Net fold_0/checkpoint_final.pth"), log)
        try assertProbabilities(in: out, match: expected, shape: [3, 16, 40, 40])
        let alone = try Executables.runMedSeg(["predict", "--run", cascade.path, "--input", input.path, "--out", temp.appendingPathComponent("alone").path],
                                              expectSuccess: false)
        XCTAssertTrue(alone.output.contains("is nnU-Net's cascade stage behind 3d_lowres: give that model folder as --previous-stage FOLDER"), alone.output)

        // Exported to ONNX, the stage's network takes image and one-hot channels, and says so.
        let model = temp.appendingPathComponent("stage.onnx")
        XCTAssertTrue(try Executables.runMedSeg(["export", cascade.path, model.path]).output.contains("input 'image' [batch, 3, spatial...]"))
        let printed = try Python.run("""
        import json, sys, numpy as np, onnxruntime as ort
        model, root = sys.argv[1:3]
        session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
        meta = session.get_modelmeta().custom_metadata_map
        x = np.fromfile(root + "/stage_input.f32", dtype="<f4").reshape(1, 3, 16, 40, 40)
        reference = np.fromfile(root + "/stage_logits.f32", dtype="<f4").reshape(1, 3, 16, 40, 40)
        y = session.run(None, {"image": x})[0]
        print(json.dumps({"difference": float(np.abs(y - reference).max()),
                          "meta": {k: meta.get(k) for k in ("previous_stage", "image_channels", "previous_stage_labels", "input_channels", "normalization")}}))
        """, [model.path, root.path], interpreter: "/usr/bin/python3")
        let result = try JSONSerialization.jsonObject(with: Data(printed.utf8)) as! [String: Any]
        XCTAssertLessThan(try XCTUnwrap(result["difference"] as? Double), 1e-4, printed)
        XCTAssertEqual(result["meta"] as? [String: String], ["previous_stage": "3d_lowres", "image_channels": "1", "previous_stage_labels": "[1,2]",
                                                           "input_channels": "3", "normalization": "[\"ct\"]"], printed)
    }
}
