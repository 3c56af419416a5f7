import Foundation
import XCTest
import TestSupport
import Torch
@testable import MedSegData

/// Fingerprint against numpy, cropping round trip, resampling against scipy.ndimage.zoom,
/// preprocessed-case storage and the preprocessor's skipping of finished cases.
///
/// Resampling reference: `scipy.ndimage.zoom(a, new/old, order=k, mode='nearest', grid_mode=True)`
/// is the same grid mapping and boundary (skimage `resize(mode='edge')`) that nnU-Net uses;
/// images are then clipped to the input range as skimage's `clip=True` does.
final class PreprocessingTests: XCTestCase {
    private var scratch: URL!

    override func setUpWithError() throws {
        scratch = try makeTemporaryFolder("medseg-prep")
    }

    override func tearDownWithError() throws {
        try? FileManager.default.removeItem(at: scratch)
    }

    // MARK: - Helpers

    /// A 3D data set whose cases have zero borders of different widths (so cropping matters).
    private func makeDataset(cases: Int = 3, size: [Int] = [32, 32, 16], classes: Int = 2, zeroBorders: Bool = true) throws -> RawDataset {
        let root = scratch.appendingPathComponent("raw")
        let synth = try SyntheticCases(.init(dims: 3, size: size, classes: classes, seed: 7))
        var labels = ["background": 0]
        for c in 1...classes { labels["class\(c)"] = c }
        let writer = try RawDatasetWriter(root: root, channelNames: ["MRI"], labels: labels, fileEnding: ".nii.gz")
        for i in 0..<cases {
            var (image, label) = synth.makeCase(i)
            if zeroBorders {
                let border = [i + 1, 2, i % 2]
                for z in 0..<size[2] {
                    for y in 0..<size[1] {
                        for x in 0..<size[0] where x < border[0] || y >= size[1] - border[1] || z < border[2] {
                            let k = (z * size[1] + y) * size[0] + x
                            image.voxels[k] = 0
                            label.voxels[k] = 0
                        }
                    }
                }
            }
            try writer.add(identifier: String(format: "case_%03d", i), image: image, label: label)
        }
        try writer.finish(description: "preprocessing test")
        return try RawDataset(root)
    }

    private func writeRaw(_ values: [Float], _ name: String) throws -> String {
        let url = scratch.appendingPathComponent(name)
        try values.withUnsafeBytes { Data($0) }.write(to: url)
        return url.path
    }

    private func readRaw(_ name: String) throws -> [Double] {
        let data = try Data(contentsOf: scratch.appendingPathComponent(name))
        return data.withUnsafeBytes { Array($0.bindMemory(to: Double.self)) }
    }

    /// Smooth random values on an x-first grid (so label maps made from them are blob-like).
    private func smoothField(_ size: [Int], seed: UInt64) -> [Float] {
        var rng = SplitMix64(seed: seed)
        let waves = (0..<4).map { _ in (size.map { _ in rng.uniform(-0.9, 0.9) }, rng.uniform(0, 6.28)) }
        let n = size.reduce(1, *)
        return (0..<n).map { i in
            var rest = i, v = 0.0
            var coords: [Double] = []
            for s in size { coords.append(Double(rest % s)); rest /= s }
            for (k, phase) in waves { v += sin(zip(k, coords).map { $0 * $1 }.reduce(phase, +)) }
            return Float(v * 10 + 3 * rng.gaussian())
        }
    }

    // MARK: - Fingerprint

    func testFingerprintMatchesNumpy() throws {
        let dataset = try makeDataset()
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: 2, samplesPerCase: 300)
        try fingerprint.write(to: scratch)
        let reloaded = try DatasetFingerprint.load(scratch)
        XCTAssertEqual(reloaded, fingerprint)
        // nnU-Net's key names.
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: scratch.appendingPathComponent("dataset_fingerprint.json"))) as! [String: Any]
        for key in ["spacings", "shapes_after_crop", "foreground_intensity_properties_per_channel", "median_relative_size_after_cropping"] {
            XCTAssertNotNil(json[key], key)
        }
        let channel0 = (json["foreground_intensity_properties_per_channel"] as! [String: Any])["0"] as! [String: Any]
        XCTAssertEqual(Set(channel0.keys), ["mean", "median", "std", "min", "max", "percentile_99_5", "percentile_00_5"])

        let script = """
        import sys, json, glob, os
        import numpy as np, nibabel as nib
        root, k = sys.argv[1], int(sys.argv[2])
        samples, spacings, shapes, rel, total = [], [], [], [], 0
        for lab in sorted(glob.glob(os.path.join(root, 'labelsTr', '*.nii.gz'))):
            cid = os.path.basename(lab)[:-7]
            img = nib.load(os.path.join(root, 'imagesTr', cid + '_0000.nii.gz'))
            a = np.asarray(img.dataobj, dtype=np.float64).T          # (z, y, x)
            s = np.asarray(nib.load(lab).dataobj).T
            nz = np.argwhere(a != 0)
            lo, hi = nz.min(0), nz.max(0) + 1
            sl = tuple(slice(l, h) for l, h in zip(lo, hi))
            a, s = a[sl], s[sl]
            vals = a[s > 0]                                           # C order == MedSeg's flat order
            total += len(vals)
            if len(vals) > k:
                vals = vals[(np.arange(k) * len(vals)) // k]
            samples.append(vals)
            spacings.append([float(z) for z in img.header.get_zooms()[::-1]])
            shapes.append(list(a.shape))
            rel.append(a.size / np.prod(img.shape))
        v = np.concatenate(samples)
        print(json.dumps(dict(spacings=spacings, shapes=shapes, rel=float(np.median(rel)),
            median_spacing=np.median(np.array(spacings), 0).tolist(), median_shape=np.median(np.array(shapes), 0).tolist(),
            stats=dict(mean=v.mean(), median=np.median(v), std=v.std(), min=v.min(), max=v.max(),
                       percentile_99_5=np.percentile(v, 99.5), percentile_00_5=np.percentile(v, 0.5)), count=len(v), total=total)))
        """
        let out = try Python.run(script, [dataset.root.path, "300"])
        let ref = try JSONSerialization.jsonObject(with: Data(out.utf8)) as! [String: Any]
        let refSpacings = ref["spacings"] as! [[Double]]
        for (a, b) in zip(fingerprint.spacings, refSpacings) {
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        }
        XCTAssertEqual(fingerprint.spacings.count, 3)
        XCTAssertEqual(fingerprint.shapesAfterCrop, ref["shapes"] as! [[Int]])
        XCTAssertEqual(fingerprint.shapesAfterCrop[1], [15, 30, 30])   // z from 1, y up to 30, x from 2
        XCTAssertEqual(fingerprint.medianRelativeSizeAfterCropping, ref["rel"] as! Double, accuracy: 1e-12)
        XCTAssertEqual(fingerprint.medianShape, ref["median_shape"] as! [Double])
        for (x, y) in zip(fingerprint.medianSpacing, ref["median_spacing"] as! [Double]) { XCTAssertEqual(x, y, accuracy: 1e-6) }
        let stats = ref["stats"] as! [String: Double]
        let p = fingerprint.foregroundIntensityPropertiesPerChannel["0"]!
        let mine = ["mean": p.mean, "median": p.median, "std": p.std, "min": p.min, "max": p.max,
                    "percentile_99_5": p.percentile99_5, "percentile_00_5": p.percentile00_5]
        for (key, value) in stats { XCTAssertEqual(mine[key]!, value, accuracy: 1e-6 * max(1, abs(value)), key) }
        // Some cases were subsampled (more than 300 foreground voxels).
        XCTAssertLessThan(ref["count"] as! Int, ref["total"] as! Int)
    }

    /// The fingerprint's samples and the preprocessor's class locations are found by counting and
    /// then picking (no list of every foreground voxel): the picks must be those of listing them all.
    func testStreamedPicksEqualListingEveryVoxel() throws {
        for (total, count) in [(0, 5), (3, 5), (5, 5), (6, 5), (7, 3), (1000, 7), (10_001, 10_000), (123_457, 300)] {
            var selection = EvenlySpacedSelection(total: total, count: count)
            let kept = (0..<total).filter { _ in selection.keepsNext() }
            XCTAssertEqual(kept, DatasetFingerprint.evenlySpaced(Array(0..<total), count: count), "\(total) of \(count)")
        }
        // Class locations: per label the evenly spaced choice among all of its indices.
        var rng = SplitMix64(seed: 3)
        let labels = (0..<5000).map { _ in Int8([-1, 0, 0, 1, 2, 2, 2, 5][rng.int(below: 8)]) }
        let locations = Preprocessor.classLocations(labels, count: 40)
        XCTAssertEqual(Set(locations.keys), ["1", "2", "5"])
        for (key, picked) in locations {
            let all = labels.indices.filter { Int(labels[$0]) == Int(key)! }
            XCTAssertGreaterThan(all.count, 40)
            XCTAssertEqual(picked, DatasetFingerprint.evenlySpaced(all, count: 40), key)
        }
        // Foreground samples read row by row in the crop box: those of the cropped copy's listing.
        let dataset = try makeDataset(cases: 2)
        let files = try dataset.trainingCases()[1]
        let image = try ImageIO.read(files.images[0]), label = try ImageIO.read(files.label!)
        let box = Cropping.nonZeroBox(image)
        XCTAssertNotEqual(box.size, image.size, "the case has zero borders to crop")
        let croppedImage = Cropping.crop(image, to: box), croppedLabel = Cropping.crop(label, to: box)
        let foreground = croppedLabel.voxels.indices.filter { croppedLabel.voxels[$0] > 0 }
        XCTAssertGreaterThan(foreground.count, 300)
        for count in [300, foreground.count + 1] {
            let expected = DatasetFingerprint.evenlySpaced(foreground, count: count).map { croppedImage.voxels[$0] }
            XCTAssertEqual(DatasetFingerprint.foregroundSamples(image, label: label, box: box, count: count), [expected])
        }
    }

    /// nnU-Net's cap of 10^8 samples over the data set: per case the smaller of `samplesPerCase`
    /// and the cap over the case count.
    func testFingerprintSamplesAreCappedOverTheDataSet() throws {
        let dataset = try makeDataset()
        let capped = try DatasetFingerprint.compute(dataset: dataset, workers: 2, samplesPerCase: 300, totalSamples: 300)
        XCTAssertEqual(capped.samplesPerCase, 100)
        XCTAssertEqual(capped, try DatasetFingerprint.compute(dataset: dataset, workers: 1, samplesPerCase: 100))
        XCTAssertNotEqual(capped.foregroundIntensityPropertiesPerChannel,
                          try DatasetFingerprint.compute(dataset: dataset, workers: 1, samplesPerCase: 300).foregroundIntensityPropertiesPerChannel)
        XCTAssertEqual(try DatasetFingerprint.compute(dataset: dataset, samplesPerCase: 300).samplesPerCase, 300)
    }

    // MARK: - Cropping

    func testCroppingRoundTrip() throws {
        let size = [10, 8, 6]
        var voxels = [Float](repeating: 0, count: 2 * 480)
        // Channel 0 non-zero in x 2..<5, y 3..<6, z 1..<4; channel 1 extends z to 5.
        for z in 1..<4 { for y in 3..<6 { for x in 2..<5 { voxels[(z * 8 + y) * 10 + x] = Float(x + 10 * y + 100 * z) } } }
        voxels[480 + (4 * 8 + 4) * 10 + 3] = -7
        let geometry = ImageGeometry(spacing: [0.5, 0.7, 2], origin: [10, 20, 30], direction: [0, 1, 0, -1, 0, 0, 0, 0, 1])
        let image = MedicalImage(size: size, channels: 2, voxels: voxels, geometry: geometry)
        let label = MedicalImage(size: size, voxels: voxels.prefix(480).map { $0 > 300 ? 1 : 0 }, pixelType: .uint8, geometry: geometry)
        let (cropped, croppedLabel, box) = Cropping.cropToNonZero(image: image, label: label)
        XCTAssertEqual(box.lower, [2, 3, 1])
        XCTAssertEqual(box.upper, [5, 6, 5])
        XCTAssertEqual(box.nnunetBoundingBox, [[1, 5], [3, 6], [2, 5]])
        XCTAssertEqual(cropped.size, [3, 3, 4])
        XCTAssertEqual(cropped.voxels[0], 2 + 30 + 100)
        // Voxel (0,0,0) of the crop sits where voxel (2,3,1) was: origin + D * (index * spacing).
        let expectedOrigin: [Double] = [12.1, 19, 32]
        for (a, b) in zip(cropped.geometry.origin, expectedOrigin) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        let back = Cropping.uncrop(cropped, from: box)
        XCTAssertEqual(back.voxels, image.voxels)
        XCTAssertEqual(back.geometry, image.geometry)
        XCTAssertEqual(Cropping.uncrop(croppedLabel!, from: box).voxels, label.voxels)
        XCTAssertEqual(CropBox(nnunetBoundingBox: box.nnunetBoundingBox, originalShape: size.reversed()), box)
        // An all-zero image keeps its size.
        let empty = MedicalImage(size: [4, 4], voxels: [Float](repeating: 0, count: 16))
        XCTAssertEqual(Cropping.nonZeroBox(empty), .whole([4, 4]))
    }

    // MARK: - Resampling

    /// Runs scipy on the x-first array in `file` (shape `size`), writes float64 results.
    private func scipyResample(_ values: [Float], size: [Int], newSize: [Int], mode: String, separateAxis: Int = -1) throws -> [Double] {
        let input = try writeRaw(values, "in.raw")
        let script = """
        import sys, json
        import numpy as np
        from scipy.ndimage import zoom
        path, shape, new, mode, sep, out = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4], int(sys.argv[5]), sys.argv[6]
        a = np.fromfile(path, dtype=np.float32).astype(np.float64).reshape(shape[::-1])   # array order
        new = new[::-1]
        sep = -1 if sep < 0 else len(shape) - 1 - sep
        def z(x, shape_out, order):
            return zoom(x, [n / o for n, o in zip(shape_out, x.shape)], order=order, mode='nearest', grid_mode=True)
        def image(x):
            if sep < 0:
                return np.clip(z(x, new, 3), x.min(), x.max())
            x = np.moveaxis(x, sep, 0)
            plane = [n for i, n in enumerate(new) if i != sep]
            y = np.stack([np.clip(z(s, plane, 3), s.min(), s.max()) for s in x])
            y = z(y, [new[sep]] + plane, 0)
            return np.moveaxis(y, 0, sep)
        def labels(x):
            vals = np.unique(x)
            stack = []
            for v in vals:
                m = (x == v).astype(np.float64)
                if sep < 0:
                    stack.append(z(m, new, 1))
                else:
                    m = np.moveaxis(m, sep, 0)
                    plane = [n for i, n in enumerate(new) if i != sep]
                    y = z(np.stack([z(s, plane, 1) for s in m]), [new[sep]] + plane, 0)
                    stack.append(np.moveaxis(y, 0, sep))
            return vals[np.argmax(np.stack(stack), 0)]
        r = image(a) if mode == 'image' else labels(a) if mode == 'labels' else z(a, new, 0)
        assert list(r.shape) == new, (r.shape, new)
        r.astype(np.float64).tofile(out)
        """
        _ = try Python.run(script, [input, "\(size)", "\(newSize)", mode, String(separateAxis), scratch.appendingPathComponent("out.raw").path])
        return try readRaw("out.raw")
    }

    private func maxDifference(_ a: [Float], _ b: [Double]) -> Double {
        zip(a, b).map { abs(Double($0) - $1) }.max() ?? 0
    }

    /// Target shapes round halves to even as nnU-Net's `np.round` does (32.5 -> 32, 33.5 -> 34).
    func testNewSizeRoundsHalfToEvenLikeNumpy() throws {
        XCTAssertEqual(Resampling.newSize([65], spacing: [1], target: [2]), [32])
        XCTAssertEqual(Resampling.newSize([67], spacing: [1], target: [2]), [34])
        let sizes = [65, 67, 69, 71, 13, 10]
        let mine = Resampling.newSize(sizes, spacing: Array(repeating: 1, count: sizes.count), target: Array(repeating: 2, count: sizes.count))
        let out = try Python.run("import sys, json, numpy as np; print(json.dumps([int(v) for v in np.round(np.array(json.loads(sys.argv[1])) * 1.0 / 2.0)]))", ["\(sizes)"])
        XCTAssertEqual("\(mine)".replacingOccurrences(of: " ", with: ""), out.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: " ", with: ""))
    }

    func testImageResamplingMatchesScipyOrder3() throws {
        for (size, newSize) in [([13, 17], [20, 9]), ([9, 11, 7], [14, 6, 10])] {
            let values = smoothField(size, seed: UInt64(size.count))
            let mine = Resampling.resampleImage(values, size: size, channels: 1, to: newSize)
            let ref = try scipyResample(values, size: size, newSize: newSize, mode: "image")
            XCTAssertEqual(mine.count, ref.count)
            let range = Double(values.max()! - values.min()!)
            let diff = maxDifference(mine, ref)
            print("order 3 \(size) -> \(newSize): max |MedSeg - scipy| = \(diff) (range \(range))")
            // Same prefilter padding and boundary as scipy: every voxel agrees to float precision.
            XCTAssertLessThan(diff, 1e-4 * range)
        }
    }

    func testLabelResamplingMatchesScipyPerLabelLinearAndNearest() throws {
        for (size, newSize) in [([16, 12], [23, 7]), ([10, 9, 8], [15, 5, 12])] {
            let field = smoothField(size, seed: 11)
            let labels = field.map { Float($0 > 8 ? 2 : $0 > -4 ? 1 : 0) }
            let linear = Resampling.resampleLabel(labels, size: size, to: newSize, order: .linear)
            let ref = try scipyResample(labels, size: size, newSize: newSize, mode: "labels")
            let mismatches = zip(linear, ref).filter { Double($0) != $1 }.count
            print("per-label linear \(size) -> \(newSize): \(mismatches) of \(ref.count) voxels differ from scipy")
            XCTAssertLessThanOrEqual(Double(mismatches), 0.002 * Double(ref.count))
            XCTAssertTrue(Set(linear).isSubset(of: [0, 1, 2]))
            let nearest = Resampling.resampleLabel(labels, size: size, to: newSize, order: .nearest)
            let refNearest = try scipyResample(labels, size: size, newSize: newSize, mode: "nearest")
            XCTAssertEqual(nearest.map(Double.init), refNearest)
        }
    }

    /// The last pass of a resampling is handed out in blocks (no further volume in Double): each
    /// block must hold exactly the values of the whole pass, on every axis, order and block split.
    func testStreamedLastPassEqualsTheWholePass() throws {
        // Sizes and blocks that take both ways: whole outer indices, and bands of the slowest axis
        // (block 36 on z: bands of 3 positions, the last one shorter).
        let size = [20, 20, 6], channels = 2
        let data = smoothField([size.reduce(1, *) * channels], seed: 5).map(Double.init)
        for axis in 0..<3 {
            for order in [Resampling.Order.nearest, .linear, .cubic] {
                for (m, block) in [(size[axis] * 2 - 3, 1), (4, 5), (size[axis] + 6, 36), (5, 1 << 18)] {
                    let whole = Resampling.resampleAxis(data, size: size, channels: channels, axis: axis, to: m, order: order)
                    var streamed = [Double](repeating: .nan, count: whole.count)
                    var rows = 0
                    Resampling.resampleAxisStreamed(data, size: size, channels: channels, axis: axis, to: m, order: order, block: block) { start, row in
                        for x in row.indices { streamed[start + x] = row[x] }
                        rows += 1
                    }
                    XCTAssertEqual(streamed, whole, "axis \(axis), order \(order), \(m) samples, block \(block)")
                    if block == 1 { XCTAssertGreaterThan(rows, channels, "split into several blocks") }
                }
            }
        }
    }

    func testAnisotropicSeparateZMatchesScipy() throws {
        XCTAssertEqual(Resampling.separateAxis(spacing: [0.8, 0.8, 2.5], target: [0.8, 0.8, 2.5]), 2)
        XCTAssertEqual(Resampling.separateAxis(spacing: [1, 1, 1], target: [1, 1, 4]), 2)
        XCTAssertNil(Resampling.separateAxis(spacing: [1, 1, 2.9], target: [1, 1, 1]))
        XCTAssertNil(Resampling.separateAxis(spacing: [4, 4, 1], target: [4, 4, 1]))   // two coarse axes
        XCTAssertNil(Resampling.separateAxis(spacing: [1, 4], target: [1, 1]))          // 2D

        let size = [12, 10, 5]
        let values = smoothField(size, seed: 5)
        let image = MedicalImage(size: size, voxels: values, geometry: ImageGeometry(spacing: [0.8, 0.8, 2.5]))
        let target = [0.5, 1.1, 1.2]
        let resampled = Resampling.resampleImage(image, to: target)
        XCTAssertEqual(resampled.size, [19, 7, 10])   // round(12*0.8/0.5), round(10*0.8/1.1), round(5*2.5/1.2)
        XCTAssertEqual(resampled.geometry.spacing[2], 2.5 * 5 / 10, accuracy: 1e-12)
        let ref = try scipyResample(values, size: size, newSize: resampled.size, mode: "image", separateAxis: 2)
        let range = Double(values.max()! - values.min()!)
        let diff = maxDifference(resampled.voxels, ref)
        print("separate z order 3 in-plane / 0 along z: max |MedSeg - scipy| = \(diff) (range \(range))")
        XCTAssertLessThan(diff, 1e-4 * range)
        // Along z every output slice is one resampled input slice (order 0).
        let slice = 19 * 7
        XCTAssertEqual(Array(resampled.voxels[0..<slice]), Array(resampled.voxels[slice..<(2 * slice)]))

        let labels = MedicalImage(size: size, voxels: values.map { Float($0 > 8 ? 2 : $0 > -4 ? 1 : 0) }, pixelType: .uint8,
                                  geometry: image.geometry)
        let resampledLabels = Resampling.resampleLabel(labels, to: target)
        let refLabels = try scipyResample(labels.voxels, size: size, newSize: resampled.size, mode: "labels", separateAxis: 2)
        let mismatches = zip(resampledLabels.voxels, refLabels).filter { Double($0) != $1 }.count
        print("separate z per-label: \(mismatches) of \(refLabels.count) voxels differ from scipy")
        XCTAssertLessThanOrEqual(Double(mismatches), 0.002 * Double(refLabels.count))
    }

    // MARK: - Normalization

    func testMaskedZScore() {
        let v: [Float] = [0, 0, 2, 4, 6, 0]
        let mask = v.map { $0 != 0 }
        let out = PreprocessingNormalization.maskedZScore(v, mask: mask)
        let std = (8.0 / 3).squareRoot()
        XCTAssertEqual(out[0], 0)
        XCTAssertEqual(Double(out[2]), -2 / std, accuracy: 1e-6)
        XCTAssertEqual(Double(out[4]), 2 / std, accuracy: 1e-6)
        XCTAssertEqual(PreprocessingNormalization.useMaskForNorm([.zscore, .ct], medianRelativeSizeAfterCropping: 0.5), [true, false])
        XCTAssertEqual(PreprocessingNormalization.useMaskForNorm([.zscore], medianRelativeSizeAfterCropping: 0.9), [false])
    }

    // MARK: - Preprocessed cases and the preprocessor

    func testPreprocessorRoundTripAndSkipping() throws {
        let dataset = try makeDataset()
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: 2)
        let out = scratch.appendingPathComponent("preprocessed")
        let preprocessor = Preprocessor(targetSpacing: [2.5, 1.2, 1.2], normalization: .zscore, fingerprint: fingerprint)
        var calls: [Int] = []
        let first = try preprocessor.run(dataset: dataset, out: out, workers: 2) { done, total in
            XCTAssertEqual(total, 3)
            calls.append(done)
        }
        XCTAssertEqual(first.processed, ["case_000", "case_001", "case_002"])
        XCTAssertEqual(calls.sorted(), [1, 2, 3])

        let cases = try dataset.trainingCases()
        for files in cases {
            let stored = try PreprocessedCase.load(files.identifier, from: out)
            let fresh = try preprocessor.process(files)
            let p = stored.properties
            XCTAssertEqual(p, fresh.properties)
            XCTAssertEqual(stored.image, fresh.image)
            XCTAssertEqual(stored.label, fresh.label)
            // Cropped then resampled: z keeps its spacing (2.5), x/y go from 0.8 to 1.2 mm.
            let crop = p.shapeAfterCroppingAndBeforeResampling
            XCTAssertEqual(p.shape, [1, crop[0], Int((Double(crop[1]) * 0.8 / 1.2).rounded()), Int((Double(crop[2]) * 0.8 / 1.2).rounded())])
            XCTAssertEqual(p.shapeBeforeCropping, [16, 32, 32])
            XCTAssertEqual(p.spacing[0], 2.5, accuracy: 1e-9)
            XCTAssertEqual(p.originalSpacing.map { ($0 * 1000).rounded() / 1000 }, [2.5, 0.8, 0.8])
            // Z-scored (before resampling), so close to zero mean and unit variance.
            let image = stored.image
            let mean = image.reduce(0.0) { $0 + Double($1) } / Double(image.count)
            XCTAssertEqual(mean, 0, accuracy: 0.1)
            XCTAssertEqual(try stored.imageTensor().shape, p.shape)
            XCTAssertEqual(try stored.labelTensor()?.shape, [1] + p.spatialShape)
            // Class locations point at voxels of their class.
            let label = stored.label!
            XCTAssertFalse(p.classLocations.isEmpty)
            for (key, locations) in p.classLocations {
                XCTAssertFalse(locations.isEmpty)
                XCTAssertTrue(locations.allSatisfy { Int(label[$0]) == Int(key)! }, key)
            }
            XCTAssertEqual(stored.foreground.count, p.classLocations.keys.compactMap(Int.init).max())
        }

        // Re-running skips every finished case.
        let second = try preprocessor.run(dataset: dataset, out: out, workers: 2)
        XCTAssertEqual(second.processed, [])
        XCTAssertEqual(second.skipped.count, 3)
        // An input newer than the stored case makes it run again.
        try FileManager.default.setAttributes([.modificationDate: Date().addingTimeInterval(-3600)],
                                              ofItemAtPath: PreprocessedCase.files("case_001", in: out).properties.path)
        XCTAssertEqual(try preprocessor.run(dataset: dataset, out: out, workers: 1).processed, ["case_001"])
        // A removed image file too; and other settings redo everything.
        try FileManager.default.removeItem(at: PreprocessedCase.files("case_002", in: out).image)
        XCTAssertEqual(try preprocessor.run(dataset: dataset, out: out, workers: 1).processed, ["case_002"])
        var other = preprocessor
        other.targetSpacing = [2.5, 1.0, 1.0]
        XCTAssertEqual(try other.run(dataset: dataset, out: out, workers: 2).processed.count, 3)
        // CT normalization: cases are stale when its intensities change (plans moved from another
        // data set carry that data set's), and only then.
        XCTAssertNil(try PreprocessedCase.load("case_000", from: out).properties.ctStatistics, "z-score keeps no CT intensities")
        var ct = Preprocessor(targetSpacing: [2.5, 1.0, 1.0], normalization: .ct, fingerprint: fingerprint)
        XCTAssertEqual(try ct.run(dataset: dataset, out: out, workers: 2).processed.count, 3)
        XCTAssertEqual(try ct.run(dataset: dataset, out: out, workers: 2).processed.count, 0)
        ct.fingerprint.foregroundIntensityPropertiesPerChannel["0"]?.percentile99_5 += 1
        XCTAssertEqual(try ct.run(dataset: dataset, out: out, workers: 2).processed.count, 3)
        let stored = try PreprocessedCase.load("case_000", from: out).properties
        XCTAssertEqual(stored.ctStatistics, ct.fingerprint.intensityStatistics)
    }

    /// Cases are shared among workers in whatever order they finish: the fingerprint and every
    /// stored file must be byte for byte the same with 1 or 3 workers.
    func testWorkerCountDoesNotChangeFingerprintOrPreprocessedFiles() throws {
        let dataset = try makeDataset(cases: 5)
        let one = try DatasetFingerprint.compute(dataset: dataset, workers: 1, samplesPerCase: 200)
        let three = try DatasetFingerprint.compute(dataset: dataset, workers: 3, samplesPerCase: 200)
        XCTAssertEqual(one, three)
        try one.write(to: scratch.appendingPathComponent("fp1"))
        try three.write(to: scratch.appendingPathComponent("fp3"))
        XCTAssertEqual(try Data(contentsOf: scratch.appendingPathComponent("fp1/\(DatasetFingerprint.fileName)")),
                       try Data(contentsOf: scratch.appendingPathComponent("fp3/\(DatasetFingerprint.fileName)")))
        var outputs: [[String: Data]] = []
        for workers in [1, 3] {
            let out = scratch.appendingPathComponent("preprocessed-\(workers)")
            var preprocessor = Preprocessor(targetSpacing: [2.0, 1.1, 1.3], normalization: .ct, fingerprint: one)
            preprocessor.maxClassLocations = 50   // fewer than the voxels of each class: picks matter
            XCTAssertEqual(try preprocessor.run(dataset: dataset, out: out, workers: workers).processed.count, 5)
            let names = try FileManager.default.contentsOfDirectory(atPath: out.path).sorted()
            XCTAssertEqual(names.count, 15)
            outputs.append(Dictionary(uniqueKeysWithValues: try names.map { ($0, try Data(contentsOf: out.appendingPathComponent($0))) }))
        }
        XCTAssertEqual(outputs[0].keys.sorted(), outputs[1].keys.sorted())
        for (name, data) in outputs[0] { XCTAssertEqual(data, outputs[1][name], name) }
        let stored = try PreprocessedCase.load("case_003", from: scratch.appendingPathComponent("preprocessed-3")).properties
        XCTAssertTrue(stored.classLocations.values.allSatisfy { $0.count == 50 })
    }

    /// As nnU-Net's crop_to_nonzero, background outside the hole-filled non-zero mask is -1 in the
    /// stored label whenever cases are cropped, whether or not the mask normalizes; an enclosed
    /// hole of zeros is filled and keeps 0. The training target (`labelTensor`) reads -1 as 0.
    /// Checked against scipy's binary_fill_holes.
    func testBackgroundOutsideNonZeroMaskIsMinusOneWheneverCropped() throws {
        let dataset = try makeDataset(cases: 2)
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: 1)
        let files = try dataset.trainingCases()[0]
        var raw = try ImageIO.read(files.images[0])
        var rawLabel = try ImageIO.read(files.label!)
        func zero(_ zs: Range<Int>, _ ys: Range<Int>, _ xs: Range<Int>) {
            for z in zs { for y in ys { for x in xs { let k = (z * 32 + y) * 32 + x; raw.voxels[k] = 0; rawLabel.voxels[k] = 0 } } }
        }
        zero(4..<6, 10..<12, 14..<16) // enclosed: filled, stays 0
        zero(0..<16, 3..<6, 20..<32)  // reaches the crop box's border: -1
        try ImageIO.write(raw, to: files.images[0])
        try ImageIO.write(rawLabel, to: files.label!)

        for useMask in [true, false] {
            let preprocessor = Preprocessor(targetSpacing: fingerprint.spacings[0], normalization: [.zscore], fingerprint: fingerprint,
                                            useMaskForNorm: [useMask])
            let result = try preprocessor.process(files)
            let box = result.properties.cropBox
            let croppedImage = Cropping.crop(raw, to: box), croppedLabel = Cropping.crop(rawLabel, to: box)
            let script = """
            import sys, numpy, scipy.ndimage
            shape = [int(s) for s in sys.argv[3].split(",")][::-1]
            image = numpy.array([c == "1" for c in sys.argv[1]]).reshape(shape)
            label = numpy.array([int(v) for v in sys.argv[2].split(",")]).reshape(shape)
            label[(label == 0) & ~scipy.ndimage.binary_fill_holes(image)] = -1
            print(",".join(str(v) for v in label.ravel()))
            """
            let output = try Python.run(script, [croppedImage.voxels.map { $0 != 0 ? "1" : "0" }.joined(),
                                                 croppedLabel.voxels.map { String(Int($0)) }.joined(separator: ","),
                                                 croppedImage.size.map(String.init).joined(separator: ",")])
            let expected = output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map { Int8($0)! }
            XCTAssertEqual(result.label, expected, "use_mask_for_norm \(useMask)")
            XCTAssertGreaterThanOrEqual(expected.filter { $0 == -1 }.count, 100)
            XCTAssertEqual(zip(croppedImage.voxels, expected).filter { $0 == 0 && $1 == 0 }.count, 8, "the enclosed hole keeps 0")
            // A masked z-score leaves the outside at 0.
            if useMask {
                XCTAssertTrue(zip(result.image, expected).allSatisfy { $1 != -1 || $0 == 0 })
            }
            // Stored and read back for training: -1 becomes 0, the rest unchanged.
            let out = scratch.appendingPathComponent("pp-\(useMask)")
            try PreprocessedCase.write(image: result.image, label: result.label, properties: result.properties, to: out)
            let stored = try PreprocessedCase.load(files.identifier, from: out)
            XCTAssertEqual(stored.label, expected)
            XCTAssertEqual(try XCTUnwrap(stored.labelTensor()).toArray(Float.self), expected.map { Float(max($0, 0)) })
            XCTAssertTrue(result.properties.classLocations.values.joined().allSatisfy { expected[$0] > 0 })
        }
    }

    func testCTNormalizationWithoutResamplingUsesFingerprintStatistics() throws {
        let dataset = try makeDataset(cases: 2)
        let fingerprint = try DatasetFingerprint.compute(dataset: dataset, workers: 1)
        let stats = fingerprint.intensityStatistics[0]
        let spacing = fingerprint.spacings[0]
        let preprocessor = Preprocessor(targetSpacing: spacing, normalization: .ct, fingerprint: fingerprint)
        XCTAssertEqual(preprocessor.useMaskForNorm, [false])
        let files = try dataset.trainingCases()[0]
        let result = try preprocessor.process(files)
        let raw = try ImageIO.read(files.images[0])
        let cropped = Cropping.crop(raw, to: result.properties.cropBox)
        XCTAssertEqual(result.properties.shape, [1] + cropped.size.reversed())
        let lo = Float(stats.percentile00_5), hi = Float(stats.percentile99_5)
        for (value, original) in zip(result.image, cropped.voxels) {
            let expected = (Double(min(max(original, lo), hi)) - stats.mean) / stats.std
            XCTAssertEqual(Double(value), expected, accuracy: 1e-4)
        }
    }

    func testPreprocessedCaseFilesAndErrors() throws {
        let properties = PreprocessedCase.Properties(
            identifier: "x", shape: [2, 3, 4], spacing: [1, 1], originalSpacing: [1, 1], geometry: .identity(dims: 2),
            shapeBeforeCropping: [3, 4], bboxUsedForCropping: [[0, 3], [0, 4]], shapeAfterCroppingAndBeforeResampling: [3, 4],
            classLocations: ["1": [5]], normalization: [.rgb], useMaskForNorm: [false], targetSpacing: [1, 1])
        let image = (0..<24).map { Float($0) * 0.5 - 3 }
        let label: [Int8] = (0..<12).map { $0 == 5 ? 1 : 0 }
        try PreprocessedCase.write(image: image, label: label, properties: properties, to: scratch)
        let files = PreprocessedCase.files("x", in: scratch)
        XCTAssertEqual(try Data(contentsOf: files.image).count, 96)
        XCTAssertEqual(try Data(contentsOf: files.label).count, 12)
        // Little-endian float32 as numpy reads it.
        let numpy = try Python.run("import numpy as np, sys; print(np.fromfile(sys.argv[1], '<f4').reshape(2,3,4)[1,2,3])", [files.image.path])
        XCTAssertEqual(Float(numpy.trimmingCharacters(in: .whitespacesAndNewlines)), image[23])
        let loaded = try PreprocessedCase.load("x", from: scratch)
        XCTAssertEqual(loaded.image, image)
        XCTAssertEqual(loaded.label, label)
        XCTAssertEqual(loaded.properties, properties)
        XCTAssertEqual(loaded.foreground, [[5]])
        loaded.withImage { XCTAssertEqual($0[3], image[3]) }
        // A truncated array is a one-line error naming the file.
        try Data(count: 10).write(to: files.image)
        XCTAssertThrowsError(try PreprocessedCase.load("x", from: scratch)) { error in
            XCTAssertTrue("\(error)".contains("x.bin: truncated"), "\(error)")
        }
    }
}
