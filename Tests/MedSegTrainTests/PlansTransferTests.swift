import Foundation
import XCTest
import TestSupport
import MedSegData
import Torch
@testable import MedSegTrain

/// Another data set's plans for this one (`medseg plan --plans-from`, nnU-Net's
/// move_plans_between_datasets), and fine-tuning the network trained under them.
final class PlansTransferTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("transfer")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    /// A trained nnU-Net model's folder: its plans.json (nnU-Net's own planner's, the fixture),
    /// edited by `change`, and the source data set's dataset.json beside it.
    private func nnUNetModelFolder(_ change: (inout [String: Any]) -> Void = { _ in }) throws -> URL {
        let folder = temp.appendingPathComponent("nnUNet_results/Dataset999_Fixture/nnUNetTrainer__nnUNetPlans__3d_fullres")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        var plans = try fixtures.json("nnunet_plans.json")
        change(&plans)
        try JSONSerialization.data(withJSONObject: plans).write(to: folder.appendingPathComponent("plans.json"))
        let description: [String: Any] = ["channel_names": ["0": "CT"], "labels": ["background": 0, "liver": 1, "tumor": 2],
                                          "numTraining": 8, "file_ending": ".nii.gz"]
        try JSONSerialization.data(withJSONObject: description).write(to: folder.appendingPathComponent("dataset.json"))
        return folder
    }

    private func dataset(_ name: String, dims: Int = 3, classes: Int = 2, channels: Int = 1) throws -> URL {
        let root = temp.appendingPathComponent(name)
        let size = dims == 3 ? [40, 36, 20] : [40, 36]
        try SyntheticCases(.init(dims: dims, size: size, classes: classes, channels: channels, seed: 4)).write(to: root, training: 5, test: 0, fileEnding: ".nii.gz")
        return root
    }

    /// nnU-Net's plans and a network nnU-Net builds from them (dynamic_network_architectures, as
    /// get_network_from_plans does) move to another data set: the plans are taken whole, CT
    /// normalization keeps the source's intensities, and every weight loads bit for bit.
    func testFineTunesAnNNUNetModelOnAnotherDataSetThroughItsPlans() throws {
        let model = try nnUNetModelFolder()
        let data = try dataset("target")
        let planned = try medseg(["plan", data.path, "--plans-from", model.path]).output
        XCTAssertTrue(planned.contains("plans of \(model.appendingPathComponent("plans.json").path) for "), planned)
        XCTAssertTrue(planned.contains("note: channels differ: the source's are CT, this data set's MRI"), planned)
        XCTAssertFalse(planned.contains("labels"), "3 labels on both sides: \(planned)")
        let plans = try ExperimentPlans.load(data.appendingPathComponent("plans.json"))
        let source = try ExperimentPlans.load(model.appendingPathComponent("plans.json"))
        XCTAssertEqual(plans.configurations, source.configurations)
        XCTAssertEqual(plans.foreground_intensity_properties_per_channel, source.foreground_intensity_properties_per_channel)
        XCTAssertEqual(plans.dataset_name, try RawDataset(data).description.name)
        XCTAssertTrue(FileManager.default.fileExists(atPath: data.appendingPathComponent("dataset_fingerprint.json").path))

        try medseg(["preprocess", data.path, "--config", "3d_fullres"])
        let stored = try PreprocessedCase.load("synth_000", from: data.appendingPathComponent("preprocessed/3d_fullres"))
        let ct = try XCTUnwrap(stored.properties.ctStatistics)
        XCTAssertEqual(ct.map { [$0.mean, $0.std, $0.percentile00_5, $0.percentile99_5] }, [[82.5, 41.25, -48, 252]], "the source's intensities")
        XCTAssertEqual(stored.properties.spacing[0], 2, "the source's target spacing")

        let pth = temp.appendingPathComponent("checkpoint_final.pth"), raw = temp.appendingPathComponent("weights.f32")
        let printed = try Python.run("""
        import json, pydoc, sys, numpy as np, torch
        arch = json.load(open(sys.argv[1]))["configurations"]["3d_fullres"]["architecture"]
        kwargs = dict(arch["arch_kwargs"])
        for key in arch["_kw_requires_import"]:
            if kwargs[key] is not None:
                kwargs[key] = pydoc.locate(kwargs[key])
        torch.manual_seed(7)
        net = pydoc.locate(arch["network_class_name"])(input_channels=1, num_classes=3, deep_supervision=True, **kwargs)
        with torch.no_grad():  # bounded away from 0, where a learning rate of 1e-30 still shows
            for _, t in net.named_parameters():
                t.copy_(torch.empty_like(t).uniform_(0.1, 0.5) * torch.where(torch.rand_like(t) < 0.5, -1.0, 1.0))
        torch.save({"network_weights": net.state_dict(), "optimizer_state": None, "current_epoch": 1000,
                    "trainer_name": "nnUNetTrainer", "init_args": {"configuration": "3d_fullres", "fold": 0}}, sys.argv[2])
        names = [k for k, _ in net.named_parameters()]
        np.concatenate([net.state_dict()[k].numpy().ravel() for k in names]).astype("<f4").tofile(sys.argv[3])
        print(json.dumps(names))
        """, [model.appendingPathComponent("plans.json").path, pth.path, raw.path], interpreter: "/usr/bin/python3")
        let names = try JSONDecoder().decode([String].self, from: Data(printed.split(separator: "\n").last!.utf8))
        let reference = try Data(contentsOf: raw).withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }

        // A learning rate far below every weight's last bit: the run's weights are the loaded ones.
        let exp = temp.appendingPathComponent("tuned")
        let log = try medseg(["train", "--dataset", data.path, "--config", "3d_fullres", "--fold", "0", "--out", exp.path, "--epochs", "1",
                              "--iterations", "1", "--lr", "1e-30", "--pretrained-weights", pth.path, "--no-mirror"]).output
        XCTAssertTrue(log.contains("pretrained weights \(pth.path): loaded \(names.count) of the network's \(names.count) tensors"), log)
        let loaded = try Checkpoint.load(RunFolder(ExperimentFolder(exp).fold(0).url).checkpoint(.final))
        let tensors = Dictionary(uniqueKeysWithValues: loaded.model.map { ($0.name, $0.tensor) })
        var offset = 0
        for name in names {
            let values = try XCTUnwrap(tensors[name], name).floats()
            let expected = reference[offset..<min(offset + values.count, reference.count)]
            let differing = zip(values, expected).filter { $0 != $1 }
            XCTAssertTrue(values.count == expected.count && differing.isEmpty,
                          "\(name): \(differing.count) of \(values.count) values differ, e.g. \(differing.prefix(3))")
            offset += values.count
        }
        XCTAssertEqual(offset, reference.count)
    }

    /// MedSeg's own plans move the same way: configurations as planned on the source, and the
    /// source's intensities; a label count that differs is said.
    func testMedSegPlansMoveBetweenDataSets() throws {
        let source = try dataset("source", classes: 2)
        try medseg(["plan", source.path])
        let target = try dataset("target", classes: 1)
        let output = try medseg(["plan", target.path, "--plans-from", source.path]).output
        XCTAssertTrue(output.contains("note: the source has 3 labels, this data set 2: fine-tuning loads every tensor but the segmentation head"), output)
        let moved = try ExperimentPlans.load(target.appendingPathComponent("plans.json"))
        let original = try ExperimentPlans.load(source.appendingPathComponent("plans.json"))
        XCTAssertEqual(moved.configurations, original.configurations)
        XCTAssertEqual(moved.foreground_intensity_properties_per_channel,
                       try DatasetFingerprint.load(source.appendingPathComponent("dataset_fingerprint.json")).foregroundIntensityPropertiesPerChannel)
        XCTAssertNotEqual(try DatasetFingerprint.load(target.appendingPathComponent("dataset_fingerprint.json")).caseIdentifiers.count, 0)
    }

    /// 3D plans on 2D images leave the 3D configurations out; what cannot fit is refused before
    /// anything is written, in one line naming the file.
    func testRefusesPlansThatDoNotFitTheDataSet() throws {
        let flat = try dataset("flat", dims: 2)
        let output = try medseg(["plan", flat.path, "--plans-from", try nnUNetModelFolder().appendingPathComponent("plans.json").path]).output
        XCTAssertTrue(output.contains("note: 3d_fullres left out: it plans 3D patches, and this data set's images are 2D"), output)
        XCTAssertEqual(Set(try ExperimentPlans.load(flat.appendingPathComponent("plans.json")).configurations.keys), ["2d"])

        let twoChannels = try dataset("two", channels: 2)
        let plans = try nnUNetModelFolder()
        let refusals: [(URL, String)] = [
            (plans, "configuration '2d' takes 1 input channel(s) (CTNormalization), but \(twoChannels.path)/dataset.json has 2"),
            (temp.appendingPathComponent("nowhere"), "nowhere: no such plans file or folder"),
            (temp, "holds no plans.json"),
        ]
        for (source, message) in refusals {
            let r = try medseg(["plan", twoChannels.path, "--plans-from", source.path], expectSuccess: false)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.output.contains(message), "\(message): \(r.output)")
            XCTAssertEqual(r.output.split(separator: "\n").count, 1, r.output)
        }
        // nnU-Net's preprocessed folder: its one *Plans.json is taken; of several, none is guessed.
        let preprocessed = temp.appendingPathComponent("nnUNet_preprocessed/Dataset999_Fixture")
        try FileManager.default.createDirectory(at: preprocessed, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: plans.appendingPathComponent("plans.json"), to: preprocessed.appendingPathComponent("nnUNetPlans.json"))
        let single = try dataset("single")
        XCTAssertTrue(try medseg(["plan", single.path, "--plans-from", preprocessed.path]).output
                        .contains("plans of \(preprocessed.appendingPathComponent("nnUNetPlans.json").path)"))
        try FileManager.default.copyItem(at: plans.appendingPathComponent("plans.json"), to: preprocessed.appendingPathComponent("nnUNetResEncUNetMPlans.json"))
        let several = try medseg(["plan", single.path, "--plans-from", preprocessed.path], expectSuccess: false)
        XCTAssertTrue(several.output.contains("holds several plans (nnUNetPlans.json, nnUNetResEncUNetMPlans.json); give the one to take"), several.output)

        let noIntensities = try nnUNetModelFolder { $0["foreground_intensity_properties_per_channel"] = nil }
        let r = try medseg(["plan", try dataset("ct").path, "--plans-from", noIntensities.path], expectSuccess: false)
        XCTAssertTrue(r.output.contains("channel 0 is CT-normalized, but neither the plans (foreground_intensity_properties_per_channel) nor a dataset_fingerprint.json beside them"), r.output)
        for name in ["two", "ct"] {
            XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("\(name)/plans.json").path), "nothing written")
            XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("\(name)/dataset_fingerprint.json").path), "nothing written")
        }
        let mixed = try medseg(["plan", flat.path, "--plans-from", plans.path, "--planner", "nnUNetPlannerResEncM"], expectSuccess: false)
        XCTAssertTrue(mixed.output.contains("--planner and --gpu-memory go with planning"), mixed.output)
    }

    /// Re-planning keeps what a user wrote into plans.json: a configuration of their own stays (as
    /// in nnU-Net), an edited one is replaced only with --overwrite, and the refusal says what differs.
    func testPlanningAgainKeepsEditsUnlessTold() throws {
        let data = try dataset("again")
        try medseg(["plan", data.path, "--configs", "3d_fullres"])
        let url = data.appendingPathComponent("plans.json")
        try XCTAssertEqual(medseg(["plan", data.path, "--configs", "3d_fullres"]).status, 0, "the same planning again changes nothing")
        var plans = try ExperimentPlans.load(url)
        var edited = try XCTUnwrap(plans.configurations["3d_fullres"])
        let planned = edited.batch_size
        edited.batch_size = planned + 3
        plans.configurations["3d_fullres"] = edited
        var mine = edited
        mine.patch_size = [8, 16, 16]
        plans.configurations["3d_small"] = mine
        try plans.write(to: url)
        let before = try Data(contentsOf: url)

        let refused = try medseg(["plan", data.path], expectSuccess: false)
        XCTAssertTrue(refused.output.contains("\(url.path): planning now gives other values for 3d_fullres (batch_size: \(planned + 3) -> \(planned))"), refused.output)
        XCTAssertTrue(refused.output.contains("pass --overwrite"), refused.output)
        XCTAssertEqual(try Data(contentsOf: url), before, "the edited file is untouched")

        let replaced = try medseg(["plan", data.path, "--overwrite"]).output
        XCTAssertTrue(replaced.contains("kept 3d_small of the existing plans.json") && replaced.contains("replaced 3d_fullres"), replaced)
        let after = try ExperimentPlans.load(url)
        XCTAssertEqual(after.configurations["3d_fullres"]?.batch_size, planned)
        XCTAssertEqual(after.configurations["3d_small"], mine, "the user's own configuration is kept")
        XCTAssertNotNil(after.configurations["2d"])
    }
}
