import Foundation
import XCTest
import Torch
@testable import MedSegData

/// Spatial and intensity augmentation as tensor operations, and the seeded generator behind them.
final class AugmentationTests: XCTestCase {
    // MARK: helpers

    /// A [B, C, spatial...] tensor of reproducible values in [0, 1).
    func randomImage(_ shape: [Int], seed: UInt64 = 1) throws -> Tensor {
        var rng = RandomSource(seed: seed)
        return try rng.uniformTensor(shape)
    }

    /// A [B, 1, H, W] label map of discs with values 0, 1 and 2.
    func discLabel(batch: Int = 1, size: Int = 32) throws -> Tensor {
        var values: [Float] = []
        for b in 0..<batch {
            for y in 0..<size {
                for x in 0..<size {
                    let d1 = hypot(Double(y - size / 3 - b), Double(x - size / 3))
                    let d2 = hypot(Double(y - 2 * size / 3), Double(x - 2 * size / 3 + b))
                    values.append(d1 < Double(size) / 6 ? 1 : (d2 < Double(size) / 5 ? 2 : 0))
                }
            }
        }
        return try Tensor(values, shape: [batch, 1, size, size])
    }

    func maxAbsDifference(_ a: Tensor, _ b: Tensor) throws -> Double {
        try (a - b).abs().max().item()
    }

    func distinctValues(_ t: Tensor) throws -> Set<Float> { Set(try t.floats()) }

    // MARK: spatial

    func testIdentityGridReturnsInput2DAnd3D() throws {
        for shape in [[2, 3, 12, 17], [2, 2, 6, 9, 11]] {
            let image = try randomImage(shape)
            let n = shape.count - 2
            let spatial = Array(shape.suffix(n))
            let identity = SpatialParameters(angles: Array(repeating: 0, count: n == 2 ? 1 : 3), scales: [1])
            XCTAssertTrue(identity.isIdentity)
            // Identity parameters skip resampling altogether: exactly the input.
            let out = try SpatialTransform().transform(image: image, label: nil, parameters: [identity, identity])
            XCTAssertTrue(try out.image.equal(image))
            // And the grid itself reproduces the input when it is used.
            let grid = try SpatialTransform.samplingGrid([identity, identity], inputSize: spatial, outputSize: spatial)
            let sampled = try F.gridSample(image, grid: grid, mode: .bilinear, paddingMode: .zeros, alignCorners: false)
            XCTAssertLessThan(try maxAbsDifference(sampled, image), 1e-5, "shape \(shape)")
        }
    }

    func testQuarterTurnThroughGridEqualsRot90() throws {
        let image = try randomImage([2, 2, 10, 10])
        let label = try discLabel(batch: 2, size: 10)
        let quarter = SpatialParameters(angles: [Double.pi / 2])
        let out = try SpatialTransform().transform(image: image, label: label, parameters: [quarter, quarter])
        // rot90 = transpose + flip, as torch.rot90(x, 1, dims=[H, W]).
        let expected = try image.flip([3]).transpose(2, 3)
        XCTAssertLessThan(try maxAbsDifference(out.image, expected), 1e-5)
        XCTAssertTrue(try out.label!.equal(Rot90Transform.rot90(label, k: 1, dims: (2, 3))))

        // A known point: a single bright voxel at (row 1, column 7) of an 10x10 image moves to
        // (row 10 - 1 - 7, column 1) = (2, 1).
        var values = [Float](repeating: 0, count: 100)
        values[1 * 10 + 7] = 1
        let dot = try Tensor(values, shape: [1, 1, 10, 10])
        let moved = try SpatialTransform().transform(image: dot, label: nil, parameters: [quarter]).image
        let flat = try moved.floats()
        XCTAssertEqual(flat[2 * 10 + 1], 1, accuracy: 1e-5)
        XCTAssertEqual(flat.reduce(0, +), 1, accuracy: 1e-4)

        // 3D: a quarter turn about axis 0 is rot90 in the (H, W) plane.
        let volume = try randomImage([1, 1, 4, 6, 6])
        let turned = try SpatialTransform().transform(image: volume, label: nil,
                                                      parameters: [SpatialParameters(angles: [Double.pi / 2, 0, 0])]).image
        XCTAssertLessThan(try maxAbsDifference(turned, Rot90Transform.rot90(volume, k: 1, dims: (3, 4))), 1e-5)
    }

    func testScalingAboveOneZoomsOut() throws {
        // A centred square of side 8 in a 32x32 image covers 64 pixels; read with scale 2 (the
        // sampling coordinates doubled) it shrinks to side 4 = 16 pixels.
        var values = [Float](repeating: 0, count: 32 * 32)
        for y in 12..<20 { for x in 12..<20 { values[y * 32 + x] = 1 } }
        let square = try Tensor(values, shape: [1, 1, 32, 32])
        let out = try SpatialTransform().transform(image: square, label: square, parameters: [SpatialParameters(scales: [2])])
        XCTAssertEqual(try out.label!.sum().item(), 16, accuracy: 0.5)
        XCTAssertEqual(try out.image.sum().item(), 16, accuracy: 2)
    }

    func testLabelsKeepTheirValuesAfterSpatialTransforms() throws {
        let label = try discLabel(batch: 3, size: 32)
        let image = try randomImage([3, 1, 32, 32])
        let parameters = [
            SpatialParameters(angles: [0.7], scales: [0.8]),
            SpatialParameters(angles: [-2.1], scales: [1.3]),
            SpatialParameters(angles: [0.3], elastic: ElasticField(alpha: 150, sigma: 10, seed: 7)),
        ]
        let out = try SpatialTransform().transform(image: image, label: label, parameters: parameters)
        XCTAssertEqual(out.label!.shape, label.shape)
        XCTAssertEqual(out.label!.dtype, label.dtype)
        let values = try distinctValues(out.label!)
        XCTAssertTrue(values.isSubset(of: [0, 1, 2]), "label values \(values)")
        XCTAssertEqual(values, [0, 1, 2], "every class survives moderate transforms")
        XCTAssertFalse(try out.label!.equal(label))

        // Integer labels stay integer and within the label set in 3D with random parameters too.
        let volumeLabel = try (randomImage([2, 1, 8, 12, 12], seed: 3) * 3).floor().to(dtype: .int64)
        var rng = RandomSource(seed: 11)
        let spatial = SpatialTransform(rotationProbability: 1, scaleProbability: 1, elasticProbability: 1, elasticAlpha: 20...40, elasticSigma: 3...4)
        let out3 = try spatial.apply(image: randomImage([2, 1, 8, 12, 12]), label: volumeLabel, rng: &rng)
        XCTAssertEqual(out3.label!.dtype, .int64)
        XCTAssertTrue(try distinctValues(out3.label!.float()).isSubset(of: [0, 1, 2]))
    }

    func testElasticDeformationMovesContentButNotTooFar() throws {
        let image = try randomImage([1, 1, 48, 48])
        let field = ElasticField(alpha: 200, sigma: 10, seed: 5)
        let displacement = try field.displacement(size: [48, 48])
        XCTAssertEqual(displacement.shape, [2, 48, 48])
        let magnitude = try displacement.abs().max().item()
        XCTAssertGreaterThan(magnitude, 0.05)
        XCTAssertLessThan(magnitude, 12)
        // Same seed, same field; another seed, another field.
        XCTAssertTrue(try field.displacement(size: [48, 48]).equal(displacement))
        XCTAssertFalse(try ElasticField(alpha: 200, sigma: 10, seed: 6).displacement(size: [48, 48]).equal(displacement))
        let out = try SpatialTransform().transform(image: image, label: nil, parameters: [SpatialParameters(elastic: field)])
        XCTAssertGreaterThan(try maxAbsDifference(out.image, image), 1e-3)
    }

    func testOutputSizeCutsTheCentre() throws {
        let image = try randomImage([2, 1, 20, 24])
        let crop = SpatialTransform(outputSize: [12, 16])
        let out = try crop.transform(image: image, label: image, parameters: [.identity, .identity])
        XCTAssertTrue(try out.image.equal(image.narrow(dim: 2, start: 4, length: 12).narrow(dim: 3, start: 4, length: 16)))
        // Resampled with the identity matrix (a zero angle plus a tiny scale), the same window.
        let almost = SpatialParameters(scales: [1 + 1e-9])
        let resampled = try crop.transform(image: image, label: nil, parameters: [almost, .identity])
        XCTAssertLessThan(try maxAbsDifference(resampled.image, out.image), 1e-5)
    }

    func testMirroringTwiceIsIdentityAndRot90FourTimesIsIdentity() throws {
        let image = try randomImage([4, 2, 6, 8, 8])
        let label = try (randomImage([4, 1, 6, 8, 8], seed: 2) * 3).floor()
        let mirror = MirrorTransform(probability: 1)
        var rng = RandomSource(seed: 1)
        let once = try mirror.apply(image: image, label: label, rng: &rng)
        XCTAssertTrue(try once.image.equal(image.flip([2, 3, 4])))
        XCTAssertTrue(try once.label!.equal(label.flip([2, 3, 4])))
        let twice = try mirror.apply(image: once.image, label: once.label, rng: &rng)
        XCTAssertTrue(try twice.image.equal(image))
        XCTAssertTrue(try twice.label!.equal(label))

        var turned = image
        for _ in 0..<4 { turned = try Rot90Transform.rot90(turned, k: 1, dims: (3, 4)) }
        XCTAssertTrue(try turned.equal(image))
        XCTAssertTrue(try Rot90Transform.rot90(Rot90Transform.rot90(image, k: 1, dims: (3, 4)), k: 3, dims: (3, 4)).equal(image))
    }

    // MARK: reproducibility

    func testSameSeedSameOutputDifferentSeedDifferentOutput() throws {
        let image = try randomImage([4, 2, 24, 24])
        let label = try discLabel(batch: 4, size: 24)
        var pipeline = AugmentationPipeline.nnUNet(dims: 2)
        // Make every step likely so that two seeds surely differ.
        pipeline.steps.insert(.spatial(SpatialTransform(rotationProbability: 1, rotationDegrees: -180...180, scaleProbability: 1)), at: 0)
        func run(_ seed: UInt64) throws -> (Tensor, Tensor) {
            var rng = RandomSource(seed: seed)
            let out = try pipeline.apply(image: image, label: label, rng: &rng)
            return (out.image, out.label!)
        }
        let a = try run(42), b = try run(42), c = try run(43)
        XCTAssertTrue(try a.0.equal(b.0))
        XCTAssertTrue(try a.1.equal(b.1))
        XCTAssertFalse(try a.0.equal(c.0))
        XCTAssertEqual(a.0.shape, image.shape)
        XCTAssertTrue(try distinctValues(a.1).isSubset(of: [0, 1, 2]))
    }

    func testRandomSourceIsDeterministicAndWellSpread() {
        var a = RandomSource(seed: 9), b = RandomSource(seed: 9), c = RandomSource(seed: 10)
        let sa = (0..<8).map { _ in a.next() }, sb = (0..<8).map { _ in b.next() }, sc = (0..<8).map { _ in c.next() }
        XCTAssertEqual(sa, sb)
        XCTAssertNotEqual(sa, sc)
        XCTAssertNotEqual(RandomSource.derived(seed: 1, 2, 3), RandomSource.derived(seed: 1, 3, 2))
        XCTAssertEqual(RandomSource.derived(seed: 1, 2, 3), RandomSource.derived(seed: 1, 2, 3))

        var rng = RandomSource(seed: 123)
        var counts = [Int](repeating: 0, count: 7)
        var sum = 0.0, sumSquares = 0.0
        for _ in 0..<70_000 {
            let u = rng.uniform(2, 3)
            XCTAssertTrue(u >= 2 && u < 3)
            counts[rng.int(below: 7)] += 1
            let g = rng.gaussian()
            sum += g; sumSquares += g * g
        }
        for n in counts { XCTAssertEqual(Double(n), 10_000, accuracy: 500) }
        XCTAssertEqual(sum / 70_000, 0, accuracy: 0.02)
        XCTAssertEqual(sumSquares / 70_000, 1, accuracy: 0.03)
        XCTAssertFalse(rng.chance(0))
        XCTAssertTrue(rng.chance(1))
        var order = Array(0..<20)
        rng.shuffle(&order)
        XCTAssertEqual(order.sorted(), Array(0..<20))
        XCTAssertNotEqual(order, Array(0..<20))
    }

    func testProbabilitiesHoldOverManyDraws() throws {
        var rng = RandomSource(seed: 2024)
        let spatial = SpatialTransform.nnUNet(dims: 3)
        var rotated = 0, scaled = 0
        let draws = 5000
        for _ in 0..<draws {
            let p = spatial.draw(dims: 3, rng: &rng)
            if !p.angles.isEmpty { rotated += 1 }
            if !p.scales.isEmpty {
                scaled += 1
                XCTAssertTrue((0.7...1.4).contains(p.scales[0]))
            }
            for a in p.angles { XCTAssertLessThanOrEqual(abs(a), 30 * .pi / 180 + 1e-12) }
        }
        XCTAssertEqual(Double(rotated) / Double(draws), 0.2, accuracy: 0.02)
        XCTAssertEqual(Double(scaled) / Double(draws), 0.2, accuracy: 0.02)

        // Brightness p 0.15 per sample over 2000 one-voxel samples.
        let ones = try Tensor.ones([2000, 1, 1, 1])
        let bright = try BrightnessTransform().apply(image: ones, label: nil, rng: &rng).image.floats()
        let changed = bright.filter { $0 != 1 }
        XCTAssertEqual(Double(changed.count) / 2000, 0.15, accuracy: 0.025)
        XCTAssertTrue(changed.allSatisfy { (0.75...1.25).contains(Double($0)) })

        // Mirroring p 0.5 per axis: each of the 4 flip combinations of a 2x2 image about 1/4.
        let pattern = try Tensor([Float(0), 1, 2, 3], shape: [1, 1, 2, 2]).repeated([2000, 1, 1, 1])
        let mirrored = try MirrorTransform().apply(image: pattern, label: nil, rng: &rng).image.floats()
        var firsts = [Int](repeating: 0, count: 4)
        for s in 0..<2000 { firsts[Int(mirrored[s * 4])] += 1 }
        for n in firsts { XCTAssertEqual(Double(n) / 2000, 0.25, accuracy: 0.04) }
    }

    // MARK: intensity

    func testProbabilityZeroLeavesInputUntouchedAndOneAlwaysApplies() throws {
        let image = try randomImage([3, 2, 16, 16])
        let never: [any AugmentationTransform] = [
            GaussianNoiseTransform(probability: 0), GaussianBlurTransform(probability: 0),
            BrightnessTransform(probability: 0), ContrastTransform(probability: 0),
            SimulateLowResolutionTransform(probability: 0), GammaTransform(probability: 0),
            GammaTransform(probability: 0, invert: true), MirrorTransform(probability: 0),
            Rot90Transform(probability: 0), SpatialTransform(rotationProbability: 0, scaleProbability: 0),
        ]
        let always: [any AugmentationTransform] = [
            GaussianNoiseTransform(probability: 1, variance: 0.05...0.1), GaussianBlurTransform(probability: 1, probabilityPerChannel: 1),
            BrightnessTransform(probability: 1, multiplier: 1.1...1.25), ContrastTransform(probability: 1, factor: 1.1...1.25),
            SimulateLowResolutionTransform(probability: 1, zoom: 0.5...0.6, probabilityPerChannel: 1), GammaTransform(probability: 1, gamma: 1.3...1.5),
            GammaTransform(probability: 1, gamma: 1.3...1.5, invert: true), MirrorTransform(probability: 1),
            Rot90Transform(probability: 1), SpatialTransform(rotationProbability: 1, rotationDegrees: 10...30, scaleProbability: 0),
        ]
        var rng = RandomSource(seed: 5)
        for t in never {
            let out = try t.apply(image: image, label: nil, rng: &rng)
            XCTAssertTrue(try out.image.equal(image), "\(type(of: t)) with probability 0 changed the image")
        }
        for t in always {
            let out = try t.apply(image: image, label: nil, rng: &rng)
            XCTAssertEqual(out.image.shape, image.shape)
            for b in 0..<3 {
                XCTAssertFalse(try out.image[b].equal(image[b]), "\(type(of: t)) with probability 1 left sample \(b) unchanged")
            }
        }
    }

    func testBrightnessMultipliesEachChannelByAFactorInRange() throws {
        let image = try randomImage([2, 3, 8, 8]) + 0.5
        var rng = RandomSource(seed: 8)
        let out = try BrightnessTransform(probability: 1).apply(image: image, label: nil, rng: &rng).image
        let ratio = try out / image
        for b in 0..<2 {
            for c in 0..<3 {
                let r = try ratio[b][c]
                let low = try r.min().item(), high = try r.max().item()
                XCTAssertEqual(low, high, accuracy: 1e-5, "one factor per channel")
                XCTAssertTrue((0.75...1.25).contains(low))
            }
        }
    }

    func testContrastScalesAroundTheMeanAndKeepsTheRange() throws {
        let image = try randomImage([2, 2, 16, 16])
        var rng = RandomSource(seed: 3)
        let free = try ContrastTransform(probability: 1, preserveRange: false).apply(image: image, label: nil, rng: &rng).image
        for b in 0..<2 {
            for c in 0..<2 {
                let x = try image[b][c], y = try free[b][c]
                XCTAssertEqual(try y.mean().item(), try x.mean().item(), accuracy: 1e-5)
                let factor = try y.std().item() / x.std().item()
                XCTAssertTrue((0.75 - 1e-5...1.25 + 1e-5).contains(factor), "factor \(factor)")
            }
        }
        let kept = try ContrastTransform(probability: 1, factor: 1.25...1.25).apply(image: image, label: nil, rng: &rng).image
        for b in 0..<2 {
            for c in 0..<2 {
                let x = try image[b][c], y = try kept[b][c]
                XCTAssertGreaterThanOrEqual(try y.min().item(), try x.min().item() - 1e-6)
                XCTAssertLessThanOrEqual(try y.max().item(), try x.max().item() + 1e-6)
                XCTAssertGreaterThan(try y.std().item(), try x.std().item())
            }
        }
    }

    func testGammaRetainsMeanAndStdAndInvertedGammaToo() throws {
        let image = try randomImage([2, 2, 16, 16]) * 4 - 1
        var rng = RandomSource(seed: 4)
        for invert in [false, true] {
            let out = try GammaTransform(probability: 1, invert: invert).apply(image: image, label: nil, rng: &rng).image
            XCTAssertFalse(try out.equal(image))
            for b in 0..<2 {
                for c in 0..<2 {
                    let x = try image[b][c], y = try out[b][c]
                    XCTAssertEqual(try y.mean().item(), try x.mean().item(), accuracy: 1e-4)
                    XCTAssertEqual(try y.std().item(), try x.std().item(), accuracy: 1e-4)
                }
            }
        }
        // Without retained statistics, gamma keeps the channel's range and bends the values
        // (gamma > 1 lowers the mean of values spread over the range).
        let plain = GammaTransform(probability: 1, gamma: 1.5...1.5, retainStats: false)
        let y = try plain.apply(image: image, label: nil, rng: &rng).image
        XCTAssertEqual(try y.min().item(), try image.min().item(), accuracy: 1e-5)
        XCTAssertEqual(try y.max().item(), try image.max().item(), accuracy: 1e-4)
        XCTAssertLessThan(try y.mean().item(), try image.mean().item())
    }

    func testNoiseHasTheDrawnSpreadAndBlurSmooths() throws {
        let image = try Tensor.zeros([4, 1, 64, 64])
        var rng = RandomSource(seed: 6)
        let noisy = try GaussianNoiseTransform(probability: 1).apply(image: image, label: nil, rng: &rng).image
        for b in 0..<4 {
            let n = try noisy[b]
            XCTAssertEqual(try n.mean().item(), 0, accuracy: 0.01)
            XCTAssertLessThanOrEqual(try n.std().item(), 0.1 * 1.05)
        }
        // A constant image stays constant under blur; noise loses most of its variance.
        let constant = try Tensor.full([1, 2, 16, 16], 3)
        let blur = GaussianBlurTransform(probability: 1, probabilityPerChannel: 1)
        let still = try blur.apply(image: constant, label: nil, rng: &rng).image
        XCTAssertLessThan(try maxAbsDifference(still, constant), 1e-5)
        let white = try rng.gaussianTensor([1, 1, 64, 64])
        let smooth = try blur.apply(image: white, label: nil, rng: &rng).image
        XCTAssertLessThan(try smooth.std().item(), 0.75 * (try white.std().item()))
        XCTAssertEqual(try smooth.mean().item(), try white.mean().item(), accuracy: 0.02)
    }

    func testSimulatedLowResolutionLosesDetailButKeepsShape() throws {
        // A fine checkerboard cannot survive downsampling by 2; constants stay constant.
        var values: [Float] = []
        for y in 0..<32 { for x in 0..<32 { values.append(Float((x + y) % 2)) } }
        let board = try Tensor(values, shape: [1, 1, 32, 32])
        var rng = RandomSource(seed: 7)
        let lowRes = SimulateLowResolutionTransform(probability: 1, zoom: 0.5...0.5, probabilityPerChannel: 1)
        let out = try lowRes.apply(image: board, label: nil, rng: &rng).image
        XCTAssertEqual(out.shape, board.shape)
        XCTAssertGreaterThan(try maxAbsDifference(out, board), 0.5)
        let constant = try Tensor.full([1, 1, 8, 10, 12], 2)
        let same = try lowRes.apply(image: constant, label: nil, rng: &rng).image
        XCTAssertEqual(same.shape, constant.shape)
        XCTAssertLessThan(try maxAbsDifference(same, constant), 1e-5)
        XCTAssertEqual(lowRes.target([32, 33], zoom: 0.5), [16, 16], "half to even, as numpy")
    }

    func testRunsOnTheGPUWhenThereIsOne() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        let device = Device.cuda(0)
        let image = try randomImage([2, 1, 8, 16, 16])
        let label = try (randomImage([2, 1, 8, 16, 16], seed: 2) * 3).floor()
        let parameters = [SpatialParameters(angles: [0.3, -0.2, 0.5], scales: [1.2]),
                          SpatialParameters(angles: [0, 0, 0.4], elastic: ElasticField(alpha: 300, sigma: 4, seed: 1))]
        let cpu = try SpatialTransform().transform(image: image, label: label, parameters: parameters)
        let gpu = try SpatialTransform().transform(image: image.to(device: device), label: label.to(device: device), parameters: parameters)
        XCTAssertEqual(gpu.image.device, device)
        XCTAssertLessThan(try maxAbsDifference(gpu.image.to(device: .cpu), cpu.image), 1e-4)
        var rng = RandomSource(seed: 3)
        let out = try AugmentationPipeline.nnUNet(dims: 3).apply(image: image.to(device: device), label: label.to(device: device), rng: &rng)
        XCTAssertEqual(out.image.device, device)
        XCTAssertEqual(out.label?.device, device)
        XCTAssertTrue(try distinctValues(out.label!.to(device: .cpu)).isSubset(of: [0, 1, 2]))
    }

    // MARK: presets

    func testPresetsRunAndKeepShapesAndLabels() throws {
        let image2 = try randomImage([3, 2, 24, 24])
        let label2 = try discLabel(batch: 3, size: 24)
        let image3 = try randomImage([2, 1, 8, 16, 16])
        let label3 = try (randomImage([2, 1, 8, 16, 16], seed: 9) * 2).floor()
        for name in AugmentationPipeline.PresetName.allCases {
            var rng = RandomSource(seed: 17)
            let two = try AugmentationPipeline.preset(name, dims: 2).apply(image: image2, label: label2, rng: &rng)
            XCTAssertEqual(two.image.shape, image2.shape, name.rawValue)
            XCTAssertTrue(try distinctValues(two.label!).isSubset(of: [0, 1, 2]), name.rawValue)
            let three = try AugmentationPipeline.preset(name, dims: 3).apply(image: image3, label: label3, rng: &rng)
            XCTAssertEqual(three.image.shape, image3.shape, name.rawValue)
            XCTAssertTrue(try distinctValues(three.label!).isSubset(of: [0, 1]), name.rawValue)
        }
        // One sample without the batch dimension.
        var rng = RandomSource(seed: 1)
        let single = try AugmentationPipeline.nnUNet(dims: 2).applySample(image: image2[0], label: label2[0], rng: &rng)
        XCTAssertEqual(single.image.shape, [2, 24, 24])
        XCTAssertEqual(single.label?.shape, [1, 24, 24])
        // nnU-Net's larger sampled patch cut down to the final patch.
        let cropped = try AugmentationPipeline.nnUNet(dims: 2, outputSize: [16, 16]).apply(image: image2, label: label2, rng: &rng)
        XCTAssertEqual(cropped.image.shape, [3, 2, 16, 16])
        XCTAssertEqual(cropped.label?.shape, [3, 1, 16, 16])
    }

    func testPresetNamesAndCodable() throws {
        XCTAssertEqual(try AugmentationPipeline.PresetName(parsing: "nnunet"), .nnUNet)
        XCTAssertEqual(try AugmentationPipeline.PresetName(parsing: "flip_rotate"), .flipRotate)
        XCTAssertThrowsError(try AugmentationPipeline.PresetName(parsing: "mixup")) { error in
            XCTAssertTrue("\(error)".contains("flip_rotate_scale"), "\(error)")
        }
        struct Config: Codable { var augmentation: AugmentationPipeline.PresetName }
        let decoded = try JSONDecoder().decode(Config.self, from: Data(#"{"augmentation": "flip_rotate_scale"}"#.utf8))
        XCTAssertEqual(decoded.augmentation, .flipRotateScale)
        let pipeline = AugmentationPipeline.nnUNet(dims: 3)
        let roundTrip = try JSONDecoder().decode(AugmentationPipeline.self, from: JSONEncoder().encode(pipeline))
        XCTAssertEqual(roundTrip, pipeline)
        XCTAssertEqual(pipeline.steps.count, 9)
        guard case .spatial(let spatial) = pipeline.steps[0], case .mirror = pipeline.steps[8] else {
            return XCTFail("nnU-Net's order: spatial first, mirroring last")
        }
        XCTAssertEqual(spatial.rotationDegrees, -30...30)
        guard case .spatial(let spatial2) = AugmentationPipeline.nnUNet(dims: 2).steps[0] else { return XCTFail() }
        XCTAssertEqual(spatial2.rotationDegrees, -180...180)
    }
}
