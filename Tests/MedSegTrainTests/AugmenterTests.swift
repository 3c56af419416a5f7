import XCTest
import Torch
import MedSegData
import TestSupport
@testable import MedSegTrain

final class AugmenterTests: XCTestCase {
    func testQuarterRotationMovesAKnownPointWhereItShould() throws {
        var pixels = [Float](repeating: 0, count: 16 * 16)
        pixels[2 * 16 + 5] = 1                     // row 2, column 5
        let image = try Tensor(pixels, shape: [1, 16, 16])
        let (rotated, _) = try Augmenter.spatial(image, image, angles: [Double.pi / 2], scale: 1)
        // Output (x, y) samples input (-y, x) in centred coordinates: the point lands at row 10, column 2.
        let values = try rotated.floats()
        XCTAssertEqual(values[10 * 16 + 2], 1, accuracy: 1e-5)
        XCTAssertEqual(values.reduce(0, +), 1, accuracy: 1e-4, "the point moves, nothing else appears")
        // The same as the exact quarter turn by transposing and flipping.
        let exact = try image.transpose(1, 2).flip([1])
        try FixtureSupport.assertClose(rotated, exact, rtol: 0, atol: 1e-5, "quarter turn")
    }

    func testIdentityTransformChangesNothing() throws {
        let image = try Tensor.randn([2, 12, 10, 8])
        let (same, _) = try Augmenter.spatial(image, image, angles: [0, 0, 0], scale: 1)
        try FixtureSupport.assertClose(same, image, rtol: 0, atol: 1e-5, "identity")
    }

    func testLabelsStayLabelValued() throws {
        let synth = try SyntheticCases(.init(dims: 3, size: [24, 20, 16], classes: 2, seed: 3))
        let (img, lab) = synth.makeCase(0)
        let image = try img.tensor(), label = try lab.tensor()
        for (a, s) in [(0.3, 1.2), (-1.1, 0.8), (2.5, 1.0)] {
            let (_, warped) = try Augmenter.spatial(image, label, angles: [a, -a / 2, a / 3], scale: s)
            XCTAssertTrue(Set(try warped.floats()).isSubset(of: [0, 1, 2]))
        }
    }

    func testProbabilitiesHoldOverManyDraws() throws {
        let aug = try Augmenter(preset: "nnunet", dims: 3)
        var rng = SplitMix64(seed: 11)
        let n = 20_000
        var rotate = 0, scale = 0, noise = 0, blur = 0, bright = 0, lowres = 0, mirror0 = 0
        for _ in 0..<n {
            let p = aug.draw(&rng)
            if p.angles != nil { rotate += 1 }
            if p.scale != nil { scale += 1 }
            if p.noiseVariance != nil { noise += 1 }
            if p.blurSigma != nil { blur += 1 }
            if p.brightness != nil { bright += 1 }
            if p.lowResolutionZoom != nil { lowres += 1 }
            if p.mirrorAxes.contains(0) { mirror0 += 1 }
            if let a = p.angles { XCTAssertTrue(a.allSatisfy { abs($0) <= 30 * .pi / 180 + 1e-12 }) }
            if let s = p.scale { XCTAssertTrue((0.7...1.4).contains(s)) }
        }
        func rate(_ k: Int) -> Double { Double(k) / Double(n) }
        XCTAssertEqual(rate(rotate), 0.2, accuracy: 0.015)
        XCTAssertEqual(rate(scale), 0.2, accuracy: 0.015)
        XCTAssertEqual(rate(noise), 0.1, accuracy: 0.015)
        XCTAssertEqual(rate(blur), 0.2, accuracy: 0.015)
        XCTAssertEqual(rate(bright), 0.15, accuracy: 0.015)
        XCTAssertEqual(rate(lowres), 0.25, accuracy: 0.015)
        XCTAssertEqual(rate(mirror0), 0.5, accuracy: 0.015)
    }

    func testSeededAndReproducible() throws {
        let aug = try Augmenter(preset: "nnunet", dims: 2)
        func run(_ seed: UInt64) throws -> [Float] {
            var rng = SplitMix64(seed: seed)
            var image = try Tensor.arange(0, 256).reshape([1, 16, 16]) / 256
            var label = try (image .> 0.5).float()
            for _ in 0..<5 { try aug.apply(&image, &label, &rng) }
            return try image.floats()
        }
        XCTAssertEqual(try run(1), try run(1))
        XCTAssertNotEqual(try run(1), try run(2))
    }

    func testIntensityStepsKeepWhatTheyShould() throws {
        let constant = try Tensor.full([1, 9, 9], 3)
        XCTAssertEqual(try Augmenter.blur(constant, sigma: 1).floats().map { ($0 * 1e4).rounded() / 1e4 }, Array(repeating: 3, count: 81))
        let aug = try Augmenter(preset: "nnunet", dims: 2)
        var rng = SplitMix64(seed: 0)
        var image = try Tensor.randn([1, 16, 16]) + 5, label = try Tensor.zeros([1, 16, 16])
        let mean = try image.mean().item(), std = try image.std().item()
        var plan = Augmenter.Plan()
        plan.gamma = (1.4, false)
        try aug.apply(plan, &image, &label, &rng)
        XCTAssertEqual(try image.mean().item(), mean, accuracy: 1e-4, "gamma keeps the mean")
        XCTAssertEqual(try image.std().item(), std, accuracy: 1e-4, "gamma keeps the standard deviation")
        plan = Augmenter.Plan()
        plan.brightness = 1.2
        let before = try image.sum().item()
        try aug.apply(plan, &image, &label, &rng)
        XCTAssertEqual(try image.sum().item(), before * 1.2, accuracy: 1e-2)
    }
}
