import Foundation
import XCTest
import MedSegData
@testable import MedSegTrain

final class ExperimentPlannerTests: XCTestCase {
    private func fingerprint(spacings: [[Double]], shapes: [[Int]]) throws -> DatasetFingerprint {
        try PlannerParityTests.fingerprint(spacings: spacings, shapes: shapes)
    }

    func testIsotropicVolumeKeepsTheMedianSpacingAndFitsTheBudget() throws {
        let fp = try fingerprint(spacings: Array(repeating: [1, 1, 1], count: 5), shapes: Array(repeating: [160, 160, 160], count: 5))
        let planner = ExperimentPlanner(memoryGB: 8)
        XCTAssertEqual(planner.targetSpacing(fp), [1, 1, 1])
        let plan = try planner.plan(fp, dims: 3, inChannels: 1, classes: 2, channelNames: ["CT"])
        XCTAssertEqual(plan.normalization_schemes, ["CTNormalization"])
        XCTAssertGreaterThanOrEqual(plan.batch_size, 2)
        for (axis, p) in plan.patch_size.enumerated() {
            let divisor = plan.strides.map { $0[axis] }.reduce(1, *)
            XCTAssertEqual(p % divisor, 0, "patch divisible by the pooling of axis \(axis)")
            XCTAssertLessThanOrEqual(p, 160, "never larger than the median shape")
        }
        // A smaller budget shrinks the patch.
        let small = try ExperimentPlanner(memoryGB: 1).plan(fp, dims: 3, inChannels: 1, classes: 2, channelNames: ["MRI"])
        XCTAssertLessThan(small.patch_size.reduce(1, *), plan.patch_size.reduce(1, *))
        XCTAssertEqual(small.normalization_schemes, ["ZScoreNormalization"])
    }

    func testLowResolutionStageWhenThePatchCoversUnderAQuarterOfTheImage() throws {
        let planner = ExperimentPlanner(memoryGB: 8)
        let large = try fingerprint(spacings: Array(repeating: [1, 1, 1], count: 5), shapes: Array(repeating: [320, 320, 320], count: 5))
        let full = try planner.plan(large, dims: 3, inChannels: 1, classes: 2, channelNames: ["CT"])
        let fullCover = Double(full.patch_size.reduce(1, *)) / pow(320, 3)
        XCTAssertLessThan(fullCover, 0.25)
        let low = try XCTUnwrap(try planner.planLowResolution(large, fullres: full, inChannels: 1, classes: 2, channelNames: ["CT"]))
        XCTAssertEqual(low.next_stage, "3d_cascade_fullres")
        // Isotropic data: every axis grows by the same factor, a power of 1.03.
        XCTAssertEqual(low.spacing[0], low.spacing[1], accuracy: 1e-12)
        let steps = log(low.spacing[0]) / log(1.03)
        XCTAssertEqual(steps, steps.rounded(), accuracy: 1e-6)
        // At the low spacing the patch covers at least a quarter of the median image, one step less did not.
        // (nnU-Net plans the low-resolution stage for the median shape rounded per axis, and compares
        // the patch with the unrounded one.)
        XCTAssertEqual(low.median_image_size_in_voxels, Array(repeating: (320 / low.spacing[0]).rounded(), count: 3))
        let medianLow = pow(320 / low.spacing[0], 3)
        XCTAssertGreaterThanOrEqual(Double(low.patch_size.reduce(1, *)) / medianLow, 0.25)
        XCTAssertLessThanOrEqual(medianLow, pow(320, 3) / 2, "a low-resolution stage at least halves the image")

        // Small images fit the full-resolution patch: no cascade.
        let small = try fingerprint(spacings: Array(repeating: [1, 1, 1], count: 5), shapes: Array(repeating: [64, 64, 64], count: 5))
        let smallFull = try planner.plan(small, dims: 3, inChannels: 1, classes: 2, channelNames: ["CT"])
        XCTAssertNil(try planner.planLowResolution(small, fullres: smallFull, inChannels: 1, classes: 2, channelNames: ["CT"]))
    }

    /// What nnU-Net's plans carry per configuration: batch Dice (2d; 3d_fullres only beside a
    /// 3d_lowres stage), use_mask_for_norm, resampling orders; preprocessing honours an edited plan.
    func testPlansCarryBatchDiceMaskAndResampling() throws {
        let planner = ExperimentPlanner(memoryGB: 8)
        let description = try DatasetDescription.decode(Data(#"{"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1}, "numTraining": 5, "file_ending": ".nii.gz"}"#.utf8))
        let large = try fingerprint(spacings: Array(repeating: [1, 1, 1], count: 5), shapes: Array(repeating: [320, 320, 320], count: 5))
        let plans = try planner.planExperiment(large, description: description, datasetName: "d", configurations: ["2d", "3d_fullres", "3d_lowres"])
        XCTAssertEqual(plans.configurations["2d"]?.batch_dice, true)
        XCTAssertEqual(plans.configurations["3d_fullres"]?.batch_dice, true)
        XCTAssertEqual(plans.configurations["3d_lowres"]?.batch_dice, false)
        XCTAssertEqual(plans.configurations["3d_cascade_fullres"]?.batch_dice, true)
        let small = try fingerprint(spacings: Array(repeating: [1, 1, 1], count: 5), shapes: Array(repeating: [64, 64, 64], count: 5))
        let smallPlans = try planner.planExperiment(small, description: description, datasetName: "d", configurations: ["3d_fullres"])
        var plan = try XCTUnwrap(smallPlans.configurations["3d_fullres"])
        XCTAssertEqual(plan.batch_dice, false)
        XCTAssertEqual(plan.use_mask_for_norm, [false], "the crop kept the whole image (median relative size 1)")
        XCTAssertEqual(plan.resampling_fn_data_kwargs, ResamplingSettings(is_seg: false, order: 3, order_z: 0))
        XCTAssertEqual(plan.resampling_fn_seg_kwargs, ResamplingSettings(is_seg: true, order: 1, order_z: 0))

        XCTAssertEqual(PlannedSetup(name: "3d_fullres", plans: smallPlans, plan: plan, fingerprint: small).preprocessor.orders, Resampling.Orders(),
                       "the planned orders are nnU-Net's defaults")
        plan.use_mask_for_norm = [true]
        plan.resampling_fn_seg_kwargs?.order = 0
        plan.resampling_fn_data_kwargs = ResamplingSettings(is_seg: false, order: 1, order_z: 3)
        plan.resampling_fn_probabilities_kwargs = ResamplingSettings(is_seg: false, order: 3, order_z: 1)
        let edited = PlannedSetup(name: "3d_fullres", plans: smallPlans, plan: plan, fingerprint: small)
        XCTAssertEqual(edited.preprocessor.useMaskForNorm, [true])
        XCTAssertEqual(edited.preprocessor.orders.label, .nearest)
        XCTAssertEqual([edited.preprocessor.orders.image, edited.preprocessor.orders.imageZ], [.linear, .cubic])
        XCTAssertEqual([edited.preprocessor.orders.logits, edited.preprocessor.orders.logitsZ], [.cubic, .linear])
        plan.resampling_fn_seg_kwargs?.order_z = 3
        XCTAssertThrowsError(try plan.validate(source: "plans.json")) { XCTAssertTrue("\($0)".contains("resampling_fn_seg_kwargs order_z must be 0"), "\($0)") }
        plan.resampling_fn_seg_kwargs?.order_z = 0
        plan.use_mask_for_norm = [true, false]
        XCTAssertThrowsError(try plan.validate(source: "plans.json")) { XCTAssertTrue("\($0)".contains("use_mask_for_norm"), "\($0)") }
    }

    func testLowResolutionGrowsOnlyTheFineAxesOfAnisotropicData() throws {
        let fp = try fingerprint(spacings: Array(repeating: [3, 1, 1], count: 5), shapes: Array(repeating: [100, 400, 400], count: 5))
        let planner = ExperimentPlanner(memoryGB: 4)
        let full = try planner.plan(fp, dims: 3, inChannels: 1, classes: 2, channelNames: ["MRI"])
        let low = try XCTUnwrap(try planner.planLowResolution(fp, fullres: full, inChannels: 1, classes: 2, channelNames: ["MRI"]))
        // z (3 mm) is more than twice as coarse as x, y (1 mm): only x and y grow, until they reach 1.5 mm and beyond.
        XCTAssertGreaterThan(low.spacing[1], 1.5)
        XCTAssertEqual(low.spacing[1], low.spacing[2], accuracy: 1e-12)
        XCTAssertLessThanOrEqual(low.spacing[0] / low.spacing[1], 2.0 + 1e-9)
        XCTAssertLessThan(low.spacing[0], 3 * pow(1.03, log(low.spacing[1]) / log(1.03)), "z grew in fewer steps than x, y")
    }

    func testAnisotropicAxisTakesThe10thPercentileAndPoolsLater() throws {
        // z (array axis 0) is far coarser and has few slices: nnU-Net's anisotropy rule applies.
        let zs: [Double] = [5, 4, 3, 6, 5, 2.5, 5, 4, 5, 6]
        let fp = try fingerprint(spacings: zs.map { [$0, 0.8, 0.8] }, shapes: zs.map { _ in [30, 256, 256] })
        let planner = ExperimentPlanner()
        let target = planner.targetSpacing(fp)
        let sorted = zs.sorted()
        let p10 = sorted[0] + (sorted[1] - sorted[0]) * 0.9
        XCTAssertEqual(target[0], p10, accuracy: 1e-9)
        XCTAssertEqual(Array(target[1...]), [0.8, 0.8])
        let plan = try planner.plan(fp, dims: 3, inChannels: 1, classes: 2, channelNames: ["MRI"])
        XCTAssertEqual(plan.strides[1], [1, 2, 2], "the coarse axis is not pooled at first")
        XCTAssertEqual(plan.kernel_sizes[0][0], 1, "kernel 1 along the coarse axis in the first stage")
        // Without few slices the median stays.
        let many = try fingerprint(spacings: zs.map { [$0, 0.8, 0.8] }, shapes: zs.map { _ in [300, 256, 256] })
        XCTAssertEqual(planner.targetSpacing(many)[0], 5)
    }

    func testTwoDimensionalPlanOfASmallDataSetCapsTheBatch() throws {
        let fp = try fingerprint(spacings: Array(repeating: [1, 0.5, 0.5], count: 4), shapes: Array(repeating: [10, 128, 128], count: 4))
        let plan = try ExperimentPlanner().plan(fp, dims: 2, inChannels: 1, classes: 2, channelNames: ["MRI"])
        XCTAssertEqual(plan.spacing, [0.5, 0.5])
        XCTAssertEqual(plan.patch_size, [128, 128])
        // 5% of 4 x 10 x 128 x 128 voxels is 2 patches: the minimum of 2 applies.
        XCTAssertEqual(plan.batch_size, 2)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("plans-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        let plans = ExperimentPlans(dataset_name: "t", configurations: ["2d": plan])
        try plans.write(to: url)
        XCTAssertEqual(try ExperimentPlans.load(url), plans)
    }
}
