import Foundation
import XCTest
import TestSupport
@testable import MedSegTrain

/// nnU-Net's own plans files (Fixtures/nnunet_plans.json: nnunetv2's ExperimentPlanner.plan_experiment,
/// written by scripts/fixtures/make_planner_fixtures.py) read as MedSeg's plans.
final class NNUNetPlansFileTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("nnunet-plans")
    }

    override func tearDown() { try? FileManager.default.removeItem(at: temp) }

    private func original() throws -> [String: Any] { try fixtures.json("nnunet_plans.json") }

    private func load(_ json: [String: Any], _ name: String = "plans.json") throws -> ExperimentPlans {
        let url = temp.appendingPathComponent(name)
        try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted]).write(to: url)
        return try ExperimentPlans.load(url)
    }

    private func configuration(_ json: [String: Any], _ name: String) -> [String: Any] {
        (json["configurations"] as! [String: Any])[name] as! [String: Any]
    }

    func testReadsEveryKeyOfNNUNetsPlans() throws {
        let json = try original()
        let plans = try load(json)
        XCTAssertEqual(plans.dataset_name, "Dataset999_Fixture")
        XCTAssertEqual(plans.plans_name, "nnUNetPlans")
        XCTAssertEqual(Set(plans.configurations.keys), ["2d", "3d_fullres"])
        for name in ["2d", "3d_fullres"] {
            let c = configuration(json, name), p = try XCTUnwrap(plans.configurations[name])
            let arch = (c["architecture"] as! [String: Any])["arch_kwargs"] as! [String: Any]
            XCTAssertEqual(p.spacing, c["spacing"] as! [Double], name)
            XCTAssertEqual(p.patch_size, c["patch_size"] as! [Int], name)
            XCTAssertEqual(p.batch_size, c["batch_size"] as! Int, name)
            XCTAssertEqual(p.median_image_size_in_voxels, c["median_image_size_in_voxels"] as! [Double], name)
            XCTAssertEqual(p.features_per_stage, arch["features_per_stage"] as! [Int], name)
            XCTAssertEqual(p.kernel_sizes, arch["kernel_sizes"] as! [[Int]], name)
            XCTAssertEqual(p.strides, arch["strides"] as! [[Int]], name)
            XCTAssertEqual(p.n_blocks_per_stage, arch["n_conv_per_stage"] as? [Int], name)
            XCTAssertEqual(p.n_conv_per_stage_decoder, arch["n_conv_per_stage_decoder"] as? [Int], name)
            XCTAssertEqual(p.normalization_schemes, ["CTNormalization"], name)
            XCTAssertEqual(p.use_mask_for_norm, [false], name)
            XCTAssertEqual(p.batch_dice, c["batch_dice"] as? Bool, name)
            XCTAssertEqual(p.network_class_name, NNUNetPlansFile.plainClass, name)
            XCTAssertEqual(p.resampling_fn_data_kwargs, ResamplingSettings(is_seg: false, order: 3, order_z: 0), name)
            XCTAssertEqual(p.resampling_fn_seg_kwargs, ResamplingSettings(is_seg: true, order: 1, order_z: 0), name)
            XCTAssertEqual(p.resampling_fn_probabilities_kwargs, ResamplingSettings(is_seg: false, order: 1, order_z: 0), name)
        }
        let ct = try XCTUnwrap(plans.foreground_intensity_properties_per_channel?["0"])
        XCTAssertEqual([ct.mean, ct.std, ct.percentile00_5, ct.percentile99_5, ct.min, ct.max, ct.median], [82.5, 41.25, -48, 252, -95, 310, 75])
        // MedSeg writes them in its own layout, which reads back the same.
        let copy = temp.appendingPathComponent("medseg-plans.json")
        try plans.write(to: copy)
        XCTAssertEqual(try ExperimentPlans.load(copy), plans)
    }

    /// Plans written before nnU-Net 2.4 keep the network in flat keys; they read as the current layout.
    func testOlderLayoutReadsAsTheCurrentOne() throws {
        var json = try original()
        var configurations = json["configurations"] as! [String: Any]
        for (name, value) in configurations {
            var c = value as! [String: Any]
            let arch = (c.removeValue(forKey: "architecture") as! [String: Any])["arch_kwargs"] as! [String: Any]
            let features = arch["features_per_stage"] as! [Int]
            c["UNet_class_name"] = "PlainConvUNet"
            c["UNet_base_num_features"] = features[0]
            c["unet_max_num_features"] = features.last!
            c["n_conv_per_stage_encoder"] = arch["n_conv_per_stage"]
            c["n_conv_per_stage_decoder"] = arch["n_conv_per_stage_decoder"]
            c["conv_kernel_sizes"] = arch["kernel_sizes"]
            c["pool_op_kernel_sizes"] = arch["strides"]
            c["num_pool_per_axis"] = [3, 3, 3]
            configurations[name] = c
        }
        json["configurations"] = configurations
        XCTAssertEqual(try load(json), try load(try original(), "current.json"))
    }

    /// A cascade stage inherits its parent's keys and overrides its own, as nnU-Net resolves it.
    func testConfigurationsInheritTheirParents() throws {
        var json = try original()
        var configurations = json["configurations"] as! [String: Any]
        var low = configurations["3d_fullres"] as! [String: Any]
        low["spacing"] = [4.0, 2.0, 2.0]
        low["next_stage"] = "3d_cascade_fullres"
        configurations["3d_lowres"] = low
        configurations["3d_cascade_fullres"] = ["inherits_from": "3d_fullres", "previous_stage": "3d_lowres", "batch_size": 1]
        json["configurations"] = configurations
        let plans = try load(json)
        var expected = try XCTUnwrap(plans.configurations["3d_fullres"])
        expected.previous_stage = "3d_lowres"
        expected.batch_size = 1
        XCTAssertEqual(plans.configurations["3d_cascade_fullres"], expected)
        XCTAssertEqual(plans.configurations["3d_lowres"]?.next_stage, "3d_cascade_fullres")
        XCTAssertEqual(plans.configurations["3d_lowres"]?.spacing, [4, 2, 2])
        // Through the planned setup: the cascade's network is its parent's.
        let url = temp.appendingPathComponent("plans.json")
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        let fingerprint: [String: Any] = ["case_identifiers": ["a"], "spacings": [[2, 1, 1]], "shapes_after_crop": [[16, 40, 36]],
                                          "foreground_intensity_properties_per_channel": [String: Any](), "median_relative_size_after_cropping": 1,
                                          "median_spacing": [2, 1, 1], "median_shape": [16, 40, 36], "samples_per_case": 1]
        try JSONSerialization.data(withJSONObject: fingerprint).write(to: temp.appendingPathComponent("dataset_fingerprint.json"))
        let setup = try PlannedSetup.load(plans: url, configuration: "3d_cascade_fullres")
        XCTAssertEqual(setup.topology, try PlannedSetup.load(plans: url, configuration: "3d_fullres").topology)
        XCTAssertEqual(setup.modelName, .plainunet)
    }

    /// What MedSeg would not reproduce exactly is refused in one line naming the file and key.
    func testRefusesWhatMedSegWouldNotReproduce() throws {
        func edited(_ change: (inout [String: Any], inout [String: Any]) -> Void) throws -> [String: Any] {
            var json = try original()
            var configurations = json["configurations"] as! [String: Any]
            var c = configurations["3d_fullres"] as! [String: Any]
            var arch = c["architecture"] as! [String: Any]
            var kwargs = arch["arch_kwargs"] as! [String: Any]
            change(&json, &kwargs)
            arch["arch_kwargs"] = kwargs
            c["architecture"] = arch
            if let resampling = json.removeValue(forKey: "test_resampling") { c["resampling_fn_data_kwargs"] = resampling }
            if let cls = json.removeValue(forKey: "test_class") { arch["network_class_name"] = cls; c["architecture"] = arch }
            configurations["3d_fullres"] = c
            if let cycle = json.removeValue(forKey: "test_cycle") as? Bool, cycle {
                configurations["a"] = ["inherits_from": "b"]
                configurations["b"] = ["inherits_from": "a"]
            }
            json["configurations"] = configurations
            return json
        }
        let cases: [(String, (inout [String: Any], inout [String: Any]) -> Void)] = [
            ("transpose_forward is [2, 0, 1]", { json, _ in json["transpose_forward"] = [2, 0, 1] }),
            ("arch_kwargs.norm_op is 'torch.nn.modules.batchnorm.BatchNorm3d'", { _, k in k["norm_op"] = "torch.nn.modules.batchnorm.BatchNorm3d" }),
            ("arch_kwargs.dropout_op is", { _, k in k["dropout_op"] = "torch.nn.Dropout3d" }),
            ("arch_kwargs.nonlin is 'torch.nn.ReLU'", { _, k in k["nonlin"] = "torch.nn.ReLU" }),
            ("arch_kwargs.nonlin_kwargs.negative_slope is 0.2", { _, k in k["nonlin_kwargs"] = ["negative_slope": 0.2] }),
            ("arch_kwargs.conv_bias is false", { _, k in k["conv_bias"] = false }),
            ("arch_kwargs.n_conv_per_stage has 3", { _, k in k["n_conv_per_stage"] = [3, 3, 3, 3] }),
            ("arch_kwargs.n_stages is 5", { _, k in k["n_stages"] = 5 }),
            ("arch_kwargs.strides must be a list of lists", { _, k in k["strides"] = 2 }),
            ("resampling_fn_data_kwargs.force_separate_z is", { json, _ in
                json["test_resampling"] = ["is_seg": false, "order": 3, "order_z": 0, "force_separate_z": true] as [String: Any] }),
            ("architecture.network_class_name is 'dynamic_network_architectures.architectures.unet.ResidualUNet'", { json, _ in
                json["test_class"] = "dynamic_network_architectures.architectures.unet.ResidualUNet" }),
            ("inherits_from is circular", { json, _ in json["test_cycle"] = true }),
        ]
        for (expected, change) in cases {
            let json = try edited(change)
            XCTAssertThrowsError(try load(json), expected) { error in
                let text = "\(error)"
                XCTAssertTrue(text.contains(self.temp.appendingPathComponent("plans.json").path) && text.contains(expected), "\(expected): \(text)")
                XCTAssertFalse(text.contains("\n"), text)
            }
        }
    }
}
