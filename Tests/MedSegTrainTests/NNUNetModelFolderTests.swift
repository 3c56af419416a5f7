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
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("nnunet-model-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// Writes the model folder and, for `image` (values z, y, x at the plans' spacing and patch),
    /// the probabilities nnU-Net's inference gives: CT normalization with the plans' intensities,
    /// logits averaged over the checkpoint's mirroring axes (here y and x) and over the folds, then softmax.
    private func nnUNetModel(_ image: [Float]) throws -> (folder: URL, probabilities: [Float]) {
        let folder = temp.appendingPathComponent("Dataset999_Fixture/nnUNetTrainer__nnUNetPlans__3d_fullres")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: fixtures.root.appendingPathComponent("nnunet_plans.json"), to: folder.appendingPathComponent("plans.json"))
        let raw = temp.appendingPathComponent("image.f32"), reference = temp.appendingPathComponent("reference.f32")
        try image.withUnsafeBufferPointer { Data(buffer: $0) }.write(to: raw)
        _ = try Python.run("""
        import json, os, pydoc, sys, numpy as np, torch
        folder, raw, out = sys.argv[1:4]
        plans = json.load(open(os.path.join(folder, "plans.json")))
        dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2}, "numTraining": 8, "file_ending": ".nii.gz"}
        json.dump(dataset, open(os.path.join(folder, "dataset.json"), "w"))
        props = plans["foreground_intensity_properties_per_channel"]
        json.dump({"spacings": [[2.0, 1.0, 1.0]] * 8, "shapes_after_crop": [[16, 40, 36]] * 8, "foreground_intensity_properties_per_channel": props,
                   "median_relative_size_after_cropping": 1.0}, open(os.path.join(folder, "dataset_fingerprint.json"), "w"))
        arch = plans["configurations"]["3d_fullres"]["architecture"]
        kwargs = dict(arch["arch_kwargs"])
        for key in arch["_kw_requires_import"]:
            if kwargs[key] is not None:
                kwargs[key] = pydoc.locate(kwargs[key])
        p = props["0"]
        x = np.fromfile(raw, dtype="<f4").reshape(1, 1, 16, 40, 40).astype(np.float64)
        x = torch.from_numpy(((np.clip(x, p["percentile_00_5"], p["percentile_99_5"]) - p["mean"]) / max(p["std"], 1e-8)).astype(np.float32))
        total = 0
        for fold in (0, 1):
            torch.manual_seed(11 + fold)
            net = pydoc.locate(arch["network_class_name"])(input_channels=1, num_classes=3, deep_supervision=True, **kwargs)
            with torch.no_grad():
                for _, t in net.named_parameters():
                    t.uniform_(-0.2, 0.2)
            net.eval()
            os.makedirs(os.path.join(folder, f"fold_{fold}"))
            torch.save({"network_weights": net.state_dict(), "optimizer_state": None, "grad_scaler_state": None,
                        "logging": {"mean_fg_dice": [0.5], "ema_fg_dice": [0.5]}, "_best_ema": 0.5, "current_epoch": 1000,
                        "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": fold, "dataset_json": dataset, "device": torch.device("cpu")},
                        "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (1, 2)},
                       os.path.join(folder, f"fold_{fold}", "checkpoint_final.pth"))
            with torch.no_grad():
                logits = 0
                for flips in ([], [3], [4], [3, 4]):
                    y = net(torch.flip(x, flips) if flips else x)[0]
                    logits = logits + (torch.flip(y, flips) if flips else y)
                total = total + logits / 4
        torch.softmax(total / 2, 1)[0].numpy().astype("<f4").tofile(out)
        """, [folder.path, raw.path, reference.path], interpreter: "/usr/bin/python3")
        let probabilities = try Data(contentsOf: reference).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return (folder, probabilities)
    }

    func testPredictsFromAnNNUNetModelFolderAsNNUNetDoes() throws {
        // A CT-like volume at the plans' spacing (2 x 1 x 1 mm) and patch (16 x 40 x 40): one window,
        // no cropping (no zeros), no resampling.
        var generator = SystemRandomNumberGenerator()
        let values = (0..<(16 * 40 * 40)).map { _ in Float.random(in: 1...350, using: &generator) * (Bool.random(using: &generator) ? 1 : -0.4) }
        let (folder, reference) = try nnUNetModel(values)
        let input = temp.appendingPathComponent("input"), out = temp.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: input, withIntermediateDirectories: true)
        try ImageIO.write(MedicalImage(size: [40, 40, 16], voxels: values, geometry: ImageGeometry(spacing: [1, 1, 2])),
                          to: input.appendingPathComponent("case_0000.nii.gz"))

        let log = try Executables.runMedSeg(["predict", "--run", folder.path, "--input", input.path, "--out", out.path, "--save-probabilities"]).output
        XCTAssertTrue(log.contains("nnU-Net fold_0/checkpoint_final.pth, epoch 1000; nnU-Net fold_1/checkpoint_final.pth, epoch 1000; logits averaged"), log)
        let probabilities = try ProbabilityFile.read(ProbabilityFile.url(for: "case", in: out))
        XCTAssertEqual(probabilities.shape, [3, 16, 40, 40])
        let got = try probabilities.floats()
        let worst = zip(got, reference).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThan(worst, 1e-4, "largest difference from nnU-Net's probabilities")
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
}
