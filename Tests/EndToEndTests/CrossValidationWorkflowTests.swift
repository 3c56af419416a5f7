import Foundation
import XCTest
import TestSupport
import MedSegData
import Torch
@testable import MedSegTrain

/// nnU-Net's self-configuring pipeline through the `medseg` executable on synthetic 3D data:
/// plan, an edited plan honoured by training, five folds, cross-validation with find-best and
/// post-processing, and the fold ensemble predicting new cases in their own grid.
final class CrossValidationWorkflowTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("cv")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// A planned 3D data set with a CPU-sized network: plans.json edited as a user would.
    private func plannedDataset(batch: Int) throws -> (data: String, planned: PlannedConfiguration) {
        let data = temp.appendingPathComponent("data").path
        try medseg(["data", "synth", "--dim", "3", "--cases", "10", "--test-cases", "2", "--size", "32,32,16", "--out", data])
        try medseg(["plan", data])
        let url = URL(fileURLWithPath: data + "/plans.json")
        var plans = try ExperimentPlans.load(url)
        var c = try XCTUnwrap(plans.configurations["3d_fullres"])
        XCTAssertEqual(c.batch_size, 2, "the planner's batch for 10 small cases")
        c.features_per_stage = c.features_per_stage.indices.map { 4 << $0 }
        c.batch_size = batch
        plans.configurations["3d_fullres"] = c
        try plans.write(to: url)
        return (data, c)
    }

    private func train(_ data: String, _ exp: String, fold: String, _ extra: [String] = []) throws -> String {
        try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", fold, "--out", exp,
                    "--epochs", "1", "--iterations", "2", "--val-every", "1", "--save-probabilities"] + extra).output
    }

    func testFiveFoldCrossValidationFindBestAndEnsemblePrediction() throws {
        let (data, planned) = try plannedDataset(batch: 3)
        let exp = temp.appendingPathComponent("exp").path
        for fold in 0..<5 {
            let log = try train(data, exp, fold: String(fold))
            // The edited plan decides the batch, the patch and the network.
            XCTAssertTrue(log.contains("fold \(fold): 8 training, 2 validation cases; batch 3, patch \(planned.patch_size)"), log)
            XCTAssertTrue(log.contains("plainunet 3D"), log)
            let validation = URL(fileURLWithPath: "\(exp)/fold_\(fold)/validation")
            XCTAssertEqual(try ProbabilityFile.identifiers(in: validation).count, 2)
        }
        let splits = try JSONDecoder().decode(CrossValidationSplits.self, from: Data(contentsOf: URL(fileURLWithPath: data + "/splits_final.json")))
        XCTAssertEqual(splits.folds.count, 5)
        XCTAssertEqual(splits.folds.flatMap(\.val).sorted(), (0..<10).map { String(format: "synth_%03d", $0) }, "each case validated once")

        // --continue picks up fold 0 where it stopped.
        let continued = try train(data, exp, fold: "0", ["--continue", "--epochs", "2"])
        XCTAssertTrue(continued.contains("resuming \(exp)/fold_0 after epoch 1"), continued)
        XCTAssertTrue(continued.contains("epoch 2:"), continued)
        // --validation-only rebuilds a fold's validation from its final checkpoint.
        try FileManager.default.removeItem(atPath: "\(exp)/fold_1/validation")
        let validated = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "1", "--out", exp, "--validation-only",
                                    "--save-probabilities"]).output
        XCTAssertTrue(validated.contains("validation of fold 1 (2 cases"), validated)
        XCTAssertFalse(validated.contains("epoch 1:"), "validation only: no training\n\(validated)")
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(exp)/fold_1/validation/summary.json"))

        // Cross-validation pools every case once, from the fold that held it out.
        let best = try medseg(["find-best", "--dataset", data, exp]).output
        XCTAssertTrue(best.contains("best: exp"), best)
        let cvFolder = URL(fileURLWithPath: exp + "/crossval_results_folds_0_1_2_3_4")
        let cv = try JSONDecoder().decode(EvaluationSummary.self, from: Data(contentsOf: cvFolder.appendingPathComponent("summary.json")))
        XCTAssertEqual(Set(cv.metric_per_case.map(\.prediction_file)), Set((0..<10).map { String(format: "synth_%03d.nii.gz", $0) }))
        for fold in 0..<5 {
            for id in splits.folds[fold].val {
                let pooled = try Data(contentsOf: cvFolder.appendingPathComponent(id + ".nii.gz"))
                XCTAssertEqual(pooled, try Data(contentsOf: URL(fileURLWithPath: "\(exp)/fold_\(fold)/validation/\(id).nii.gz")), id)
            }
        }
        let postURL = temp.appendingPathComponent(Postprocessing.fileName)
        XCTAssertNoThrow(try Postprocessing.load(postURL))
        let instructions = try String(contentsOf: temp.appendingPathComponent("inference_instructions.txt"), encoding: .utf8)
        XCTAssertTrue(instructions.contains("medseg predict --run \(exp) --folds 0 1 2 3 4 --checkpoint final"), instructions)

        // The five folds predict new cases together, in the cases' own grid and geometry.
        let preds = temp.appendingPathComponent("preds").path
        let predicted = try medseg(["predict", "--run", exp, "--folds", "0", "1", "2", "3", "4", "--checkpoint", "final",
                                    "--input", data + "/imagesTs", "--out", preds, "--postprocessing", postURL.path, "--save-probabilities"]).output
        XCTAssertTrue(predicted.contains("fold_4/checkpoint_final.safetensors, epoch 1; logits averaged"), predicted)
        for id in ["synth_010", "synth_011"] {
            let prediction = try ImageIO.read(URL(fileURLWithPath: "\(preds)/\(id).nii.gz"))
            let reference = try ImageIO.read(URL(fileURLWithPath: "\(data)/labelsTs/\(id).nii.gz"))
            XCTAssertEqual(prediction.size, reference.size)
            XCTAssertEqual(prediction.geometry.spacing, reference.geometry.spacing)
            XCTAssertEqual(prediction.geometry.origin, reference.geometry.origin)
            let p = try ProbabilityFile.read(URL(fileURLWithPath: "\(preds)/\(id)\(ProbabilityFile.suffix)"))
            XCTAssertEqual(p.shape, [3] + reference.size.reversed())
            // The softmax of the folds' mean logits sums to one in every voxel.
            XCTAssertTrue(try p.sum(dim: 0).allClose(Tensor.ones(Array(reference.size.reversed())), rtol: 1e-4, atol: 1e-4))
        }
        try medseg(["evaluate", "--pred", preds, "--ref", data + "/labelsTs"])
    }

    func testFoldAllTrainsAndValidatesOnEveryCase() throws {
        let (data, _) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("exp").path
        let log = try train(data, exp, fold: "all")
        XCTAssertTrue(log.contains("fold all: 10 training, 10 validation cases; batch 2"), log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(exp)/fold_all/checkpoint_final.safetensors"))
        XCTAssertTrue(FileManager.default.fileExists(atPath: "\(exp)/fold_all/plans.json"), "predict needs the run's own copy of the plans")
        let bad = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "7", "--out", exp], expectSuccess: false)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("fold"), bad.output)
        let missing = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "2", "--out", exp, "--continue"],
                                 expectSuccess: false)
        XCTAssertTrue(missing.output.contains("fold_2 holds no checkpoint to continue from"), missing.output)
        // predict --run on the experiment folder (as nnU-Net's) uses the folds it holds.
        let preds = temp.appendingPathComponent("preds").path
        let predicted = try medseg(["predict", "--run", exp, "--checkpoint", "final", "--input", data + "/imagesTs", "--out", preds, "--no-mirror"])
        XCTAssertTrue(predicted.output.contains("fold_all/checkpoint_final.safetensors"), predicted.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: preds + "/synth_010.nii.gz"), predicted.output)
        let unfinished = temp.appendingPathComponent("unfinished")
        try FileManager.default.createDirectory(at: unfinished.appendingPathComponent("fold_3"), withIntermediateDirectories: true)
        let untrained = try medseg(["predict", "--run", unfinished.path, "--input", data + "/imagesTs", "--out", preds + "2"], expectSuccess: false)
        XCTAssertTrue(untrained.output.contains("none of its folds (fold_3) has checkpoint_best.safetensors"), untrained.output)
        let nothing = try medseg(["predict", "--run", data, "--input", data + "/imagesTs", "--out", preds + "3"], expectSuccess: false)
        XCTAssertTrue(nothing.output.contains("no checkpoint_best.safetensors here and no fold_N folders"), nothing.output)
    }

    /// Images too large for the full-resolution patch get a 3d_lowres stage; the cascade's full
    /// resolution stage trains on the low-resolution cross-validation and predicts behind it.
    func testCascadeTrainsOnTheLowResolutionCrossValidation() throws {
        let data = temp.appendingPathComponent("data").path
        try medseg(["data", "synth", "--dim", "3", "--cases", "6", "--test-cases", "1", "--size", "48,48,24", "--out", data])
        let plan = try medseg(["plan", data, "--gpu-memory", "0.02"]).output
        let plans = try ExperimentPlans.load(URL(fileURLWithPath: data + "/plans.json"))
        let low = try XCTUnwrap(plans.configurations["3d_lowres"], plan)
        let cascade = try XCTUnwrap(plans.configurations["3d_cascade_fullres"])
        XCTAssertEqual(cascade.previous_stage, "3d_lowres")
        XCTAssertEqual(low.next_stage, "3d_cascade_fullres")
        XCTAssertGreaterThan(low.spacing[1], cascade.spacing[1])

        let lowExp = temp.appendingPathComponent("low").path, cascadeExp = temp.appendingPathComponent("cascade").path
        for fold in 0..<5 {
            try medseg(["train", "--dataset", data, "--config", "3d_lowres", "--fold", String(fold), "--out", lowExp,
                        "--epochs", "1", "--iterations", "1", "--features", "4", "--no-mirror"])
        }
        let without = try medseg(["train", "--dataset", data, "--config", "3d_cascade_fullres", "--fold", "0", "--out", cascadeExp,
                                  "--epochs", "1", "--iterations", "1"], expectSuccess: false)
        XCTAssertTrue(without.output.contains("--previous-stage"), without.output)
        let log = try medseg(["train", "--dataset", data, "--config", "3d_cascade_fullres", "--fold", "0", "--out", cascadeExp,
                              "--epochs", "1", "--iterations", "1", "--features", "4", "--no-mirror", "--previous-stage", lowExp]).output
        XCTAssertTrue(log.contains("validation of fold 0 (2 cases):"), "no mirroring asked for\n\(log)")
        // One image channel plus one channel per foreground class of the low-resolution segmentation.
        XCTAssertTrue(log.contains("\(1 + 2) input channel(s), 2 classes"), log)

        let preds = temp.appendingPathComponent("preds").path
        let predictArgs = ["predict", "--run", cascadeExp, "--folds", "0", "--checkpoint", "final", "--input", data + "/imagesTs", "--out", preds, "--no-mirror"]
        let missing = try medseg(predictArgs, expectSuccess: false)
        XCTAssertTrue(missing.output.contains("--previous-stage"), missing.output)
        // The previous stage is ensembled over the same folds: fold 0 of each here.
        let predicted = try medseg(predictArgs + ["--previous-stage", lowExp]).output
        XCTAssertTrue(predicted.contains("3d_lowres fold_0/checkpoint_final.safetensors"), predicted)
        let prediction = try ImageIO.read(URL(fileURLWithPath: preds + "/synth_006.nii.gz"))
        XCTAssertEqual(prediction.size, [48, 48, 24])
    }

    /// A planned configuration trains with nnU-Net's recipe (SGD 0.01 Nesterov 0.99, weight decay
    /// 3e-5, poly, Dice + CE on a softmax over background and classes, the plan's batch Dice),
    /// and plans.json carries what nnU-Net's plans carry for it.
    func testPlannedConfigurationTrainsWithNNUNetsRecipe() throws {
        let (data, planned) = try plannedDataset(batch: 2)
        XCTAssertEqual(planned.batch_dice, false, "3d_fullres without a 3d_lowres stage: per-sample Dice, as nnU-Net")
        XCTAssertEqual(planned.use_mask_for_norm?.count, 1)
        XCTAssertEqual(planned.resampling_fn_data_kwargs, .data)
        XCTAssertEqual(planned.resampling_fn_seg_kwargs, .seg)
        let plans = try ExperimentPlans.load(URL(fileURLWithPath: data + "/plans.json"))
        XCTAssertEqual(plans.configurations["2d"]?.batch_dice, true)
        let exp = temp.appendingPathComponent("exp").path
        _ = try train(data, exp, fold: "0")
        let run = RunFolder(ExperimentFolder(URL(fileURLWithPath: exp)).fold(0).url)
        let c = try TrainingConfig().merging(yaml: String(contentsOf: run.config, encoding: .utf8), source: "config.yaml")
        XCTAssertEqual(c.optimizer, .sgd)
        XCTAssertEqual(c.lr, 0.01)
        XCTAssertEqual(c.momentum, 0.99)
        XCTAssertTrue(c.nesterov)
        XCTAssertEqual(c.weight_decay, 3e-5)
        XCTAssertEqual(c.scheduler, .poly)
        XCTAssertEqual(c.loss, .dice_ce)
        XCTAssertFalse(c.batch_dice)
        XCTAssertEqual(c.epochs, 1, "options still win over the recipe")
        let spec = try Checkpoint.load(run.checkpoint(.final)).state.model
        XCTAssertFalse(spec.binary)
        XCTAssertEqual(spec.network.outChannels, 3, "a softmax over background and the 2 classes")
        // A binary data set too: softmax over background and foreground, not one sigmoid.
        let binary = temp.appendingPathComponent("binary").path
        try medseg(["data", "synth", "--dim", "3", "--cases", "4", "--test-cases", "0", "--classes", "1", "--size", "32,32,16", "--out", binary])
        try medseg(["plan", binary])
        let binaryExp = temp.appendingPathComponent("binary-exp")
        try medseg(["train", "--dataset", binary, "--config", "3d_fullres", "--fold", "all", "--out", binaryExp.path, "--epochs", "1",
                    "--iterations", "1", "--features", "4", "--no-mirror"])
        let binarySpec = try Checkpoint.load(ExperimentFolder(binaryExp).fold(-1).checkpoint(.final)).state.model
        XCTAssertFalse(binarySpec.binary)
        XCTAssertEqual(binarySpec.network.outChannels, 2)
    }

    /// seed 001's `--preset liver-unetpp-3d --config 3d_fullres`: UNet++ on the plan's patch,
    /// stages and strides, the preset's recipe; the log says where each disputed value came from.
    func testPresetOnAPlanTrainsItsModelOnThePlannedTopology() throws {
        let (data, planned) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("unetpp").path
        let log = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--preset", "liver-unetpp-3d", "--fold", "0", "--out", exp,
                              "--epochs", "1", "--iterations", "1", "--features", "4", "--no-mirror"]).output
        XCTAssertTrue(log.contains("model: unetpp from preset liver-unetpp-3d (the plan's network: plainunet)"), log)
        XCTAssertTrue(log.contains("patch_size: \(planned.patch_size) from plan 3d_fullres (preset liver-unetpp-3d says [128, 128, 128])"), log)
        XCTAssertTrue(log.contains("normalization: none from plan 3d_fullres (preset liver-unetpp-3d says ct)"), log)
        XCTAssertTrue(log.contains("unetpp is built on plan 3d_fullres's \(planned.strides.count) stages"), log)
        let run = RunFolder(ExperimentFolder(URL(fileURLWithPath: exp)).fold(0).url)
        let runLog = try String(contentsOf: run.url.appendingPathComponent("log.txt"), encoding: .utf8)
        XCTAssertTrue(runLog.contains("model: unetpp from preset"), "the run's own log keeps the provenance")
        let state = try Checkpoint.load(run.checkpoint(.final)).state
        XCTAssertEqual(state.model.network.name, "unetpp")
        XCTAssertEqual(state.model.network.topology?.strides, planned.strides)
        XCTAssertEqual(state.model.network.topology?.featuresPerStage.count, planned.features_per_stage.count)
        XCTAssertEqual(state.model.patchSize, planned.patch_size)
        XCTAssertEqual(state.config.save_every, 50, "the preset's own keys apply")
        XCTAssertEqual(state.config.optimizer, .sgd)
    }

    /// Primus on a plan (`--config 3d_fullres --preset primus-3d --model-size S`): the plan's patch
    /// rounded up to the patch embedding's 8, nnU-Net's Primus recipe, trained, validated and predicted.
    func testPrimusTrainsOnAPlannedConfiguration() throws {
        let (data, planned) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("primus").path
        let log = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--preset", "primus-3d", "--model-size", "S", "--fold", "0",
                              "--out", exp, "--epochs", "1", "--iterations", "1", "--no-mirror"]).output
        let rounded = planned.patch_size.map { ($0 + 7) / 8 * 8 }
        XCTAssertTrue(log.contains("model: primus from preset primus-3d"), log)
        if rounded != planned.patch_size { XCTAssertTrue(log.contains("patch_size: \(rounded), plan 3d_fullres's \(planned.patch_size) rounded up"), log) }
        let state = try Checkpoint.load(ExperimentFolder(URL(fileURLWithPath: exp)).fold(0).checkpoint(.final)).state
        XCTAssertEqual(state.model.network.name, "primus")
        XCTAssertEqual(state.model.network.inputShape, rounded)
        XCTAssertEqual([state.config.beta2, state.config.grad_clip, state.config.weight_decay], [0.98, 1, 0.05])
        let out = temp.appendingPathComponent("primus-pred").path
        let predicted = try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", data + "/imagesTs", "--out", out]).output
        XCTAssertTrue(predicted.contains("wrote 2 prediction(s)"), predicted)
    }

    /// Seed 003 on an MSD Task01-style data set (4D images: four MRI modalities per case):
    /// imported, planned, nnU-Net's 2d configuration trained on the volumes slice by slice with
    /// the brats-nnunet-2d recipe, validated and predicted slice by slice into each volume's own
    /// grid, and ensembled with 3d_fullres by find-best.
    func testBraTSStyle2DConfigurationTrainsSliceBySlice() throws {
        let source = temp.appendingPathComponent("Task01_BrainTumour")
        _ = try Python.run("""
        import json, os, sys, numpy as np, nibabel as nib
        root = sys.argv[1]
        for d in ("imagesTr", "labelsTr", "imagesTs"): os.makedirs(os.path.join(root, d))
        rng = np.random.default_rng(1)
        affine = np.diag([1.0, 1.0, 1.5, 1.0]); affine[:3, 3] = [-20, 10, 3]
        def case(i):
            shape = (32, 32, 6 + i % 3)
            label = np.zeros(shape, np.uint8)
            c = rng.integers(9, 23, 2)
            label[c[0]-6:c[0]+6, c[1]-6:c[1]+6, 1:-1] = 1
            label[c[0]-3:c[0]+3, c[1]-3:c[1]+3, 2:-2] = 2
            label[c[0]-1:c[0]+1, c[1]-1:c[1]+1, 2:-2] = 3
            image = np.stack([label * (20.0 + 5 * m) + rng.normal(100 + 10 * m, 5, shape) for m in range(4)], -1).astype(np.float32)
            return image, label
        training = []
        for i in range(6):
            image, label = case(i)
            nib.save(nib.Nifti1Image(image, affine), os.path.join(root, "imagesTr", "BRATS_%03d.nii.gz" % i))
            nib.save(nib.Nifti1Image(label, affine), os.path.join(root, "labelsTr", "BRATS_%03d.nii.gz" % i))
            training.append({"image": "./imagesTr/BRATS_%03d.nii.gz" % i, "label": "./labelsTr/BRATS_%03d.nii.gz" % i})
        nib.save(nib.Nifti1Image(case(7)[0], affine), os.path.join(root, "imagesTs", "BRATS_900.nii.gz"))
        json.dump({"name": "BRATS", "tensorImageSize": "4D", "modality": {"0": "FLAIR", "1": "T1w", "2": "t1gd", "3": "T2w"},
                   "labels": {"0": "background", "1": "edema", "2": "non-enhancing tumor", "3": "enhancing tumour"},
                   "numTraining": 6, "numTest": 1, "training": training, "test": ["./imagesTs/BRATS_900.nii.gz"]},
                  open(os.path.join(root, "dataset.json"), "w"))
        """, [source.path])
        let data = temp.appendingPathComponent("Dataset001_BrainTumour").path
        try medseg(["data", "import", "msd", source.path, "--out", data])
        try medseg(["plan", data])
        let plans = try ExperimentPlans.load(URL(fileURLWithPath: data + "/plans.json"))
        let twoD = try XCTUnwrap(plans.configurations["2d"])
        XCTAssertEqual(twoD.patch_size.count, 2)

        let exp2d = temp.appendingPathComponent("2d").path, exp3d = temp.appendingPathComponent("3d").path
        let log = try medseg(["train", "--dataset", data, "--config", "2d", "--preset", "brats-nnunet-2d", "--fold", "0", "--out", exp2d,
                              "--epochs", "1", "--iterations", "2", "--batch-size", "8", "--features", "4", "--save-probabilities"]).output
        XCTAssertTrue(log.contains("plainunet 2D (volumes slice by slice)"), log)
        XCTAssertTrue(log.contains("4 input channel(s)"), log)
        let run = RunFolder(ExperimentFolder(URL(fileURLWithPath: exp2d)).fold(0).url)
        let state = try Checkpoint.load(run.checkpoint(.final)).state
        XCTAssertEqual(state.config.precision, .bf16, "the recipe's bf16")
        XCTAssertEqual(state.config.optimizer, .adamw, "the recipe's optimizer, over nnU-Net's SGD")
        XCTAssertTrue(state.config.deep_supervision)
        XCTAssertEqual(state.model.network.dims, 2)
        XCTAssertEqual(state.model.network.outChannels, 4)
        // Validation: every validation case predicted whole, in its own grid.
        let summary = try JSONSerialization.jsonObject(with: Data(contentsOf: run.validation.appendingPathComponent("summary.json"))) as? [String: Any]
        let perCase = try XCTUnwrap(summary?["metric_per_case"] as? [[String: Any]])
        XCTAssertFalse(perCase.isEmpty)
        for entry in perCase {
            let file = try XCTUnwrap(entry["prediction_file"] as? String)
            let prediction = try ImageIO.read(run.validation.appendingPathComponent(file))
            let reference = try ImageIO.read(URL(fileURLWithPath: data + "/labelsTr/" + file))
            XCTAssertEqual(prediction.size, reference.size, file)
            XCTAssertEqual(prediction.geometry.spacing, reference.geometry.spacing, file)
        }

        try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "0", "--out", exp3d, "--epochs", "1", "--iterations", "1",
                    "--features", "4", "--no-mirror", "--save-probabilities"])
        let best = try medseg(["find-best", "--dataset", data, exp2d, exp3d, "--folds", "0"]).output
        XCTAssertTrue(best.contains("ensemble(2d, 3d)"), "the 2d and 3d_fullres probabilities, in one grid, average: \(best)")

        let preds = temp.appendingPathComponent("preds").path
        try medseg(["predict", "--run", exp2d, "--checkpoint", "final", "--input", data + "/imagesTs", "--out", preds])
        let prediction = try ImageIO.read(URL(fileURLWithPath: preds + "/BRATS_900.nii.gz"))
        let image = try ImageIO.read(URL(fileURLWithPath: data + "/imagesTs/BRATS_900_0000.nii.gz"))
        XCTAssertEqual(prediction.size, image.size)
        XCTAssertEqual(prediction.geometry.spacing, image.geometry.spacing)
        XCTAssertEqual(prediction.geometry.origin, image.geometry.origin)
    }

    /// nnU-Net's -pretrained_weights: a checkpoint_final.pth saved by PyTorch from
    /// dynamic_network_architectures' PlainConvUNet (another label count) loads into the planned
    /// network bit-exactly, head aside, and fine-tunes.
    func testFineTunesFromAnNNUNetCheckpoint() throws {
        let (data, _) = try plannedDataset(batch: 2)
        let pth = temp.appendingPathComponent("checkpoint_final.pth"), raw = temp.appendingPathComponent("weights.f32")
        let names = try Python.run("""
        import json, sys, numpy as np, torch
        from torch import nn
        from dynamic_network_architectures.architectures.unet import PlainConvUNet
        p = json.load(open(sys.argv[1]))["configurations"]["3d_fullres"]
        n = len(p["features_per_stage"])
        torch.manual_seed(3)
        net = PlainConvUNet(1, n, p["features_per_stage"], nn.Conv3d, p["kernel_sizes"], p["strides"], [2] * n, 5, [2] * (n - 1),
                            conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
                            nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True)
        with torch.no_grad():  # bounded away from 0, where a learning rate of 1e-30 still shows
            for name, t in net.named_parameters():
                t.copy_(torch.empty_like(t).uniform_(0.1, 0.5) * torch.where(torch.rand_like(t) < 0.5, -1.0, 1.0))
        torch.save({"network_weights": net.state_dict(), "optimizer_state": None, "grad_scaler_state": None, "current_epoch": 1000,
                    "trainer_name": "nnUNetTrainer", "init_args": {"configuration": "3d_fullres", "fold": 0}}, sys.argv[2])
        keep = [k for k, _ in net.named_parameters() if ".seg_layers." not in k]
        np.concatenate([net.state_dict()[k].numpy().ravel() for k in keep]).astype("<f4").tofile(sys.argv[3])
        print(json.dumps(keep))
        """, [data + "/plans.json", pth.path, raw.path], interpreter: "/usr/bin/python3")
        let keep = try JSONDecoder().decode([String].self, from: Data(names.split(separator: "\n").last!.utf8))
        let reference = try Data(contentsOf: raw).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }

        // A learning rate far below every weight's last bit: the run's weights are the loaded ones.
        let exp = temp.appendingPathComponent("tuned").path
        let log = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "0", "--out", exp, "--epochs", "1", "--iterations", "1",
                              "--lr", "1e-30", "--pretrained-weights", pth.path, "--no-mirror"]).output
        XCTAssertTrue(log.contains("pretrained weights \(pth.path): loaded \(keep.count) of the network's"), log)
        XCTAssertTrue(log.contains("skipped, another shape") && log.contains("decoder.seg_layers.0.weight [5,"), log)
        let run = RunFolder(ExperimentFolder(URL(fileURLWithPath: exp)).fold(0).url)
        let loaded = try Checkpoint.load(run.checkpoint(.final))
        let tensors = Dictionary(uniqueKeysWithValues: loaded.model.map { ($0.name, $0.tensor) })
        var offset = 0
        for name in keep {
            let values = try XCTUnwrap(tensors[name], name).floats()
            XCTAssertEqual(values, Array(reference[offset..<offset + values.count]), name)
            offset += values.count
        }
        XCTAssertEqual(offset, reference.count)

        // And it fine-tunes: a real learning rate moves the loaded weights.
        let tuned = temp.appendingPathComponent("tuned2").path
        try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "0", "--out", tuned, "--epochs", "1", "--iterations", "2",
                    "--pretrained-weights", pth.path, "--no-mirror"])
        let moved = try Checkpoint.load(RunFolder(ExperimentFolder(URL(fileURLWithPath: tuned)).fold(0).url).checkpoint(.final))
        let first = try XCTUnwrap(moved.model.first { $0.name == keep[0] }).tensor.floats()
        XCTAssertNotEqual(first, Array(reference[0..<first.count]))

        let wrong = temp.appendingPathComponent("other.safetensors")
        try Safetensors.save(StateDict([("classifier.weight", try Tensor.zeros([2, 2]))]), to: wrong)
        let refused = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "1", "--out", temp.appendingPathComponent("x").path,
                                  "--pretrained-weights", wrong.path], expectSuccess: false)
        XCTAssertTrue(refused.output.contains("none of its 1 tensors matches the network"), refused.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("x/fold_1").path), "nothing written")
        let missing = try medseg(["train", "--dataset", data, "--config", "3d_fullres", "--fold", "1", "--out", temp.appendingPathComponent("x").path,
                                  "--pretrained-weights", temp.appendingPathComponent("none.pth").path], expectSuccess: false)
        XCTAssertTrue(missing.output.contains("none.pth: no such weights file"), missing.output)
    }

    /// One deployable model file: `medseg export` packs two folds, their plans and the
    /// post-processing; `predict --model` gives the masks that predicting from the run folders
    /// gives, bit for bit, in each image's own grid.
    func testExportedModelPredictsAsTheRunFolders() throws {
        let (data, _) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("exp").path
        for fold in ["0", "1"] { _ = try train(data, exp, fold: fold) }
        try medseg(["find-best", "--dataset", data, exp, "--folds", "0", "1"])
        let post = temp.appendingPathComponent("postprocessing.json").path
        XCTAssertTrue(FileManager.default.fileExists(atPath: post))
        let model = temp.appendingPathComponent("model.zip").path
        let exported = try medseg(["export", exp, model, "--folds", "0", "1", "--postprocessing", post]).output
        XCTAssertTrue(exported.contains("folds 0, 1, checkpoint final, configuration 3d_fullres, post-processing"), exported)
        let again = try medseg(["export", exp, model], expectSuccess: false)
        XCTAssertTrue(again.output.contains("\(model) already exists"), again.output)

        let fromRuns = temp.appendingPathComponent("from-runs").path, fromModel = temp.appendingPathComponent("from-model").path
        try medseg(["predict", "--run", exp, "--folds", "0", "1", "--checkpoint", "final", "--postprocessing", post,
                    "--input", data + "/imagesTs", "--out", fromRuns])
        let log = try medseg(["predict", "--model", model, "--input", data + "/imagesTs", "--out", fromModel]).output
        XCTAssertTrue(log.contains("fold_1/checkpoint_final.safetensors") && log.contains("logits averaged"), log)
        for id in ["synth_010", "synth_011"] {
            let a = try ImageIO.read(URL(fileURLWithPath: "\(fromRuns)/\(id).nii.gz"))
            let b = try ImageIO.read(URL(fileURLWithPath: "\(fromModel)/\(id).nii.gz"))
            XCTAssertEqual(a.voxels, b.voxels, id)
            XCTAssertEqual(a.geometry, b.geometry, id)
            XCTAssertEqual(a.size, try ImageIO.read(URL(fileURLWithPath: "\(data)/imagesTs/\(id)_0000.nii.gz")).size)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: FileManager.default.temporaryDirectory.path).filter { $0.hasPrefix("medseg-model-") }
        XCTAssertTrue(leftovers.isEmpty, "the unpacked model is removed: \(leftovers)")

        let notZip = temp.appendingPathComponent("bad.zip")
        try Data("not a zip".utf8).write(to: notZip)
        let bad = try medseg(["predict", "--model", notZip.path, "--input", data + "/imagesTs", "--out", temp.appendingPathComponent("bad").path],
                             expectSuccess: false)
        XCTAssertTrue(bad.output.contains("\(notZip.path): not a readable zip archive"), bad.output)
        let both = try medseg(["predict", "--model", model, "--run", exp, "--input", data + "/imagesTs", "--out", fromModel], expectSuccess: false)
        XCTAssertTrue(both.output.contains("--run RUN or --model MODEL.zip"), both.output)
    }
}

extension CrossValidationWorkflowTests {
    /// DICOM series predict as their NIfTI conversions do, the masks in each series' geometry.
    /// A series on a PACS (Orthanc with its DICOMweb plugin, started for this test on ports of its
    /// own): `predict --input` takes its study's address, fetches the series with WADO-RS and
    /// predicts what the same series predicts from disk; an address nothing answers is one line.
    func testDICOMwebSeriesPredictsAsTheSameSeriesOnDisk() throws {
        let (data, _) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("exp").path
        _ = try train(data, exp, fold: "0")
        let orthanc = try OrthancServer()
        defer { orthanc.stop() }
        let series = temp.appendingPathComponent("pacs/patientA")
        let written = try DICOMFixtures.writeSeries(series, ["--size", "24,20,9", "--orientation", "oblique", "--shuffle"])
        let files = try FileManager.default.contentsOfDirectory(at: series, includingPropertiesForKeys: nil)
        let study = try XCTUnwrap(try DICOMWebClient(timeout: 10).store(files, to: orthanc.dicomWeb))
        let fromWeb = temp.appendingPathComponent("from-web"), fromDisk = temp.appendingPathComponent("from-disk")
        let log = try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", study.absoluteString, "--out", fromWeb.path]).output
        XCTAssertTrue(log.contains("fetched 9 instance(s) of series \(written.uid)") && log.contains("wrote 1 prediction(s)"), log)
        try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", series.path, "--out", fromDisk.path])
        let web = try ImageIO.read(fromWeb.appendingPathComponent("\(written.uid).nii.gz"))
        let disk = try ImageIO.read(fromDisk.appendingPathComponent("patientA.nii.gz"))
        XCTAssertEqual(web.voxels, disk.voxels)
        XCTAssertEqual(web.geometry, disk.geometry)

        // Back to the PACS: the SEG written for the fetched series is stored beside it (STOW-RS), and
        // what the server then returns for the SEG series is that prediction.
        let segOut = temp.appendingPathComponent("seg-out")
        let stored = try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", study.absoluteString, "--out", segOut.path,
                                 "--output-format", "dicom-seg", "--store", orthanc.dicomWeb.absoluteString]).output
        XCTAssertTrue(stored.contains("wrote 1 prediction(s)"), stored)
        let location = try DICOMWebLocation(parsing: study.absoluteString)
        let client = DICOMWebClient(timeout: 10)
        let listed = try client.series(of: location)
        XCTAssertEqual(Set(listed.map(\.modality)), ["CT", "SEG"], "\(listed)")
        let segSeries = try XCTUnwrap(listed.first { $0.modality == "SEG" })
        let fetched = try client.retrieve(location, series: segSeries.uid, into: temp.appendingPathComponent("fetched-seg"))
        XCTAssertEqual(fetched.count, 1)
        XCTAssertEqual(try Data(contentsOf: fetched[0]).count, try Data(contentsOf: segOut.appendingPathComponent("\(written.uid).dcm")).count)
        let back = try DICOMSegmentation.read(fetched[0], reference: DICOM.read(folder: series))
        XCTAssertEqual(back.voxels, web.voxels, "the stored SEG holds the prediction")
        // An RT Structure Set the same way: the study then holds the series, its SEG and its RTSTRUCT.
        try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", study.absoluteString,
                    "--out", temp.appendingPathComponent("rt-out").path, "--output-format", "rtstruct", "--store", orthanc.dicomWeb.absoluteString])
        XCTAssertEqual(Set(try client.series(of: location).map(\.modality)), ["CT", "SEG", "RTSTRUCT"])
        let refused = try medseg(["predict", "--run", exp, "--folds", "0", "--input", series.path, "--out", temp.appendingPathComponent("x").path,
                                  "--store", orthanc.dicomWeb.absoluteString], expectSuccess: false)
        XCTAssertTrue(refused.output.contains("--store sends DICOM results: give --output-format dicom-seg or rtstruct"), refused.output)
        orthanc.stop()
        let gone = try medseg(["predict", "--run", exp, "--folds", "0", "--input", study.absoluteString, "--out", temp.appendingPathComponent("gone").path,
                               "--web-timeout", "2"], expectSuccess: false)
        XCTAssertTrue(gone.output.contains("Error: \(study.absoluteString)/series: GET failed: cannot connect"), gone.output)
    }

    func testDICOMSeriesPredictAsTheirNIfTIConversions() throws {
        let (data, _) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("exp").path
        _ = try train(data, exp, fold: "0")
        let dicom = temp.appendingPathComponent("dicom"), nifti = temp.appendingPathComponent("nifti")
        try DICOMFixtures.writeSeries(dicom.appendingPathComponent("patientA"), ["--size", "24,20,9", "--shuffle"])
        try DICOMFixtures.writeSeries(dicom.appendingPathComponent("patientB"), ["--size", "20,24,8", "--orientation", "oblique", "--seed", "2"])
        for id in ["patientA", "patientB"] {
            try medseg(["data", "convert", dicom.appendingPathComponent(id).path, nifti.appendingPathComponent(id + ".nii.gz").path])
        }
        let fromDICOM = temp.appendingPathComponent("from-dicom").path, fromNIfTI = temp.appendingPathComponent("from-nifti").path
        let log = try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", dicom.path, "--out", fromDICOM]).output
        XCTAssertTrue(log.contains("wrote 2 prediction(s)"), log)
        try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", nifti.path, "--out", fromNIfTI])
        for id in ["patientA", "patientB"] {
            let a = try ImageIO.read(URL(fileURLWithPath: "\(fromDICOM)/\(id).nii.gz")), b = try ImageIO.read(URL(fileURLWithPath: "\(fromNIfTI)/\(id).nii.gz"))
            XCTAssertEqual(a.voxels, b.voxels, id)
            let series = try DICOM.read(folder: dicom.appendingPathComponent(id))
            XCTAssertEqual(a.size, series.size, id)
            for (x, y) in zip(a.geometry.origin + a.geometry.direction + a.geometry.spacing, series.geometry.origin + series.geometry.direction + series.geometry.spacing) {
                XCTAssertEqual(x, y, accuracy: 1e-4, id)
            }
        }
        // One series folder as the input; a folder of two series asks which.
        let single = temp.appendingPathComponent("single").path
        try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", dicom.appendingPathComponent("patientA").path, "--out", single])
        XCTAssertEqual(try ImageIO.read(URL(fileURLWithPath: single + "/patientA.nii.gz")).voxels, try ImageIO.read(URL(fileURLWithPath: fromDICOM + "/patientA.nii.gz")).voxels)
        let study = dicom.appendingPathComponent("patientA")
        try DICOMFixtures.writeSeries(study, ["--size", "24,20,9", "--series-number", "5", "--description", "contrast", "--prefix", "B"])
        let ask = try medseg(["predict", "--run", exp, "--folds", "0", "--input", study.path, "--out", temp.appendingPathComponent("ask").path], expectSuccess: false)
        XCTAssertTrue(ask.output.contains("\(study.path): holds 2 DICOM series; choose one with --series") && ask.output.contains("\"contrast\""), ask.output)
        let info = try medseg(["data", "info", study.path, "--series", "5"]).output
        XCTAssertTrue(info.contains("dicom      series 5  CT  \"contrast\"  9 file(s)") && info.contains("size       24 x 20 x 9"), info)
        try medseg(["predict", "--run", exp, "--folds", "0", "--input", study.path, "--series", "5", "--out", temp.appendingPathComponent("chosen").path])
        XCTAssertTrue(FileManager.default.fileExists(atPath: temp.appendingPathComponent("chosen/patientA.nii.gz").path))

        // A case whose series GDCM cannot even scan (a file cut short) is reported and skipped.
        for name in try FileManager.default.contentsOfDirectory(atPath: study.path) where name.hasPrefix("B") {
            try FileManager.default.removeItem(at: study.appendingPathComponent(name))
        }
        let broken = dicom.appendingPathComponent("patientC")
        try FileManager.default.createDirectory(at: broken, withIntermediateDirectories: true)
        let sample = try FileManager.default.contentsOfDirectory(at: dicom.appendingPathComponent("patientB"), includingPropertiesForKeys: nil)[0]
        try Data(try Data(contentsOf: sample).prefix(300)).write(to: broken.appendingPathComponent("IM0001.dcm"))
        let partly = try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", dicom.path,
                                 "--out", temp.appendingPathComponent("partly").path], expectSuccess: false)
        XCTAssertNotEqual(partly.status, 0)
        XCTAssertTrue(partly.output.contains("Error: case patientC: \(broken.path)"), partly.output)
        XCTAssertTrue(partly.output.contains("wrote 2 prediction(s)") && partly.output.contains("1 of 3 case(s) could not be predicted"), partly.output)
    }

    /// --output-format dicom-seg: a SEG per DICOM case, holding the NIfTI prediction voxel for
    /// voxel on the series' grid, segments named from the data set's labels.
    func testDICOMSeriesPredictAsDICOMSegmentations() throws {
        let (data, _) = try plannedDataset(batch: 2)
        let exp = temp.appendingPathComponent("exp").path
        _ = try train(data, exp, fold: "0")
        let dicom = temp.appendingPathComponent("dicom")
        try DICOMFixtures.writeSeries(dicom.appendingPathComponent("patientA"), ["--size", "24,20,9", "--shuffle"])
        try DICOMFixtures.writeSeries(dicom.appendingPathComponent("patientB"), ["--size", "20,24,8", "--orientation", "oblique", "--seed", "2"])
        let nifti = temp.appendingPathComponent("nifti").path, seg = temp.appendingPathComponent("seg").path
        let common = ["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", dicom.path]
        try medseg(common + ["--out", nifti])
        let log = try medseg(common + ["--out", seg, "--output-format", "dicom-seg"]).output
        let names = SegmentDescription.names(of: try DatasetDescription.load(URL(fileURLWithPath: data + "/dataset.json")))
        XCTAssertEqual(names.count, 2)
        var written = 0
        for id in ["patientA", "patientB"] {
            let mask = try ImageIO.read(URL(fileURLWithPath: "\(nifti)/\(id).nii.gz"))
            let url = URL(fileURLWithPath: "\(seg)/\(id).dcm")
            XCTAssertFalse(FileManager.default.fileExists(atPath: "\(seg)/\(id).nii.gz"))
            guard mask.voxels.contains(where: { $0 > 0 }) else {
                XCTAssertTrue(log.contains("warning: case \(id): nothing segmented"), log)
                XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
                continue
            }
            written += 1
            let back = try DICOMSegmentation.read(url, reference: DICOM.read(folder: dicom.appendingPathComponent(id)))
            XCTAssertEqual(back.voxels, mask.voxels, id)
            XCTAssertEqual(try DICOMSegmentation.segmentLabels(url), [names[1]!, names[2]!])
        }
        XCTAssertGreaterThan(written, 0, "the model segments something in at least one series")
        // Image files cannot become a SEG: refused before anything is predicted.
        let refused = try medseg(["predict", "--run", exp, "--folds", "0", "--checkpoint", "final", "--input", data + "/imagesTs",
                                  "--out", temp.appendingPathComponent("refused").path, "--output-format", "dicom-seg"], expectSuccess: false)
        XCTAssertTrue(refused.output.contains("--output-format dicom-seg writes Segmentations of DICOM series; case"), refused.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("refused").path))
    }
}
