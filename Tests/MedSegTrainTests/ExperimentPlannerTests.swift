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
