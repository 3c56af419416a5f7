import Foundation
import XCTest
import MedSegData
import TestSupport
@testable import MedSegTrain
import MedSegModels

/// MedSeg's planner against nnU-Net v2's own (`ExperimentPlanner`, `nnUNetPlannerResEncM`) on the
/// fingerprints of Fixtures/planner_parity.json (scripts/fixtures/make_planner_fixtures.py).
final class PlannerParityTests: XCTestCase {
    private struct Case: Decodable {
        struct Configuration: Decodable {
            var spacing: [Double]
            var patch_size: [Int]
            var batch_size: Int
            var median_image_size_in_voxels: [Double]
            var n_stages: Int
            var features_per_stage: [Int]
            var kernel_sizes: [[Int]]
            var strides: [[Int]]
            var network_class_name: String
        }
        var name: String
        var planner: String
        var plans_identifier: String
        var gpu_memory_target_in_gb: Double
        var spacings: [[Double]]
        var shapes_after_crop: [[Int]]
        var labels: Int
        var channels: [String]
        var configurations: [String: Configuration]
    }

    private func cases() throws -> [Case] {
        struct File: Decodable { var cases: [Case] }
        let url = fixtures.root.appendingPathComponent("planner_parity.json")
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
    }

    static func fingerprint(spacings: [[Double]], shapes: [[Int]]) throws -> DatasetFingerprint {
        func median(_ v: [Double]) -> Double {
            let s = v.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }
        let axes = spacings[0].indices
        let json: [String: Any] = [
            "case_identifiers": spacings.indices.map { "c\($0)" },
            "spacings": spacings, "shapes_after_crop": shapes,
            "foreground_intensity_properties_per_channel": ["0": ["mean": 0, "median": 0, "std": 1, "min": -1, "max": 1,
                                                                  "percentile_99_5": 1, "percentile_00_5": -1]],
            "median_relative_size_after_cropping": 1,
            "median_spacing": axes.map { a in median(spacings.map { $0[a] }) },
            "median_shape": axes.map { a in median(shapes.map { Double($0[a]) }) },
            "samples_per_case": 100,
        ]
        return try JSONDecoder().decode(DatasetFingerprint.self, from: JSONSerialization.data(withJSONObject: json))
    }

    func testPlansEqualNNUNetV2() throws {
        let all = try cases()
        XCTAssertGreaterThanOrEqual(all.count, 4)
        for c in all {
            let preset = try XCTUnwrap(PlannerPreset.named(c.planner), c.planner)
            XCTAssertEqual(preset.plansName, c.plans_identifier)
            let planner = ExperimentPlanner(preset: preset)
            XCTAssertEqual(planner.memoryGB, c.gpu_memory_target_in_gb)
            let fp = try Self.fingerprint(spacings: c.spacings, shapes: c.shapes_after_crop)
            for (name, ref) in c.configurations.sorted(by: { $0.key < $1.key }) {
                let what = "\(c.name) \(c.planner) \(name)"
                let plan = try planner.plan(fp, dims: name == "2d" ? 2 : 3, inChannels: c.channels.count, classes: c.labels,
                                            channelNames: c.channels)
                XCTAssertEqual(plan.spacing.count, ref.spacing.count, what)
                for (a, b) in zip(plan.spacing, ref.spacing) { XCTAssertEqual(a, b, accuracy: 1e-9, what) }
                XCTAssertEqual(plan.median_image_size_in_voxels, ref.median_image_size_in_voxels, what)
                XCTAssertEqual(plan.patch_size, ref.patch_size, what)
                XCTAssertEqual(plan.batch_size, ref.batch_size, what)
                XCTAssertEqual(plan.strides.count, ref.n_stages, what)
                XCTAssertEqual(plan.features_per_stage, ref.features_per_stage, what)
                XCTAssertEqual(plan.kernel_sizes, ref.kernel_sizes, what)
                XCTAssertEqual(plan.strides, ref.strides, what)
                XCTAssertEqual(plan.network_class_name, ref.network_class_name, what)
            }
        }
    }

    /// The feature map estimate against dynamic_network_architectures' compute_conv_feature_map_size.
    func testFeatureMapSizeEqualsDynamicNetworkArchitectures() throws {
        let script = """
        import json, torch
        from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
        out = []
        for cls, blocks, dec in ((PlainConvUNet, [2] * 6, [2] * 5), (ResidualEncoderUNet, [1, 3, 4, 6, 6, 6], [1] * 5)):
            kw = dict(input_channels=2, n_stages=6, features_per_stage=[32, 64, 128, 256, 320, 320], conv_op=torch.nn.Conv3d,
                      kernel_sizes=[[1, 3, 3]] * 2 + [[3, 3, 3]] * 4, strides=[[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]],
                      num_classes=3, n_conv_per_stage_decoder=dec, conv_bias=True, norm_op=torch.nn.InstanceNorm3d,
                      norm_op_kwargs={'eps': 1e-5, 'affine': True}, nonlin=torch.nn.LeakyReLU)
            kw['n_conv_per_stage' if cls is PlainConvUNet else 'n_blocks_per_stage'] = blocks
            out.append(int(cls(**kw).compute_conv_feature_map_size((20, 192, 160))))
        print(json.dumps(out))
        """
        let output = try Python.run(script, interpreter: "/usr/bin/python3")  // Debian's torch
        let ref = try JSONDecoder().decode([Int64].self, from: Data(output.utf8))
        let features = [32, 64, 128, 256, 320, 320]
        let strides = [[1, 1, 1], [1, 2, 2], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
        let kernels = Array(repeating: [1, 3, 3], count: 2) + Array(repeating: [3, 3, 3], count: 4)
        let plain = PlainConvUNet.Config(dims: 3, inChannels: 2, classes: 3, featuresPerStage: features, kernelSizes: kernels, strides: strides,
                                         nConvPerStage: 2, nConvPerStageDecoder: 2)
        XCTAssertEqual(plain.featureMapSize(patch: [20, 192, 160]), ref[0])
        let residual = ResidualEncoderUNet.Config(dims: 3, inChannels: 2, classes: 3, featuresPerStage: features, kernelSizes: kernels,
                                                  strides: strides, blocksPerStage: [1, 3, 4, 6, 6, 6], nConvPerStageDecoder: 1)
        XCTAssertEqual(residual.featureMapSize(patch: [20, 192, 160]), ref[1])
    }
}
