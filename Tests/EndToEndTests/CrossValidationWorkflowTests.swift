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
        temp = FileManager.default.temporaryDirectory.appendingPathComponent("cv-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temp, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    @discardableResult
    private func medseg(_ args: [String], expectSuccess: Bool = true) throws -> (status: Int32, output: String) {
        try Executables.runMedSeg(args, expectSuccess: expectSuccess)
    }

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
        XCTAssertTrue(predicted.contains("fold_4/checkpoint_final.safetensors, epoch 1; probabilities averaged"), predicted)
        for id in ["synth_010", "synth_011"] {
            let prediction = try ImageIO.read(URL(fileURLWithPath: "\(preds)/\(id).nii.gz"))
            let reference = try ImageIO.read(URL(fileURLWithPath: "\(data)/labelsTs/\(id).nii.gz"))
            XCTAssertEqual(prediction.size, reference.size)
            XCTAssertEqual(prediction.geometry.spacing, reference.geometry.spacing)
            XCTAssertEqual(prediction.geometry.origin, reference.geometry.origin)
            let p = try ProbabilityFile.read(URL(fileURLWithPath: "\(preds)/\(id)\(ProbabilityFile.suffix)"))
            XCTAssertEqual(p.shape, [3] + reference.size.reversed())
            // Softmax averaged over folds still sums to one in every voxel.
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
}
