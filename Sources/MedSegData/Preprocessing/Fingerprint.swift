import Foundation
import Torch

/// nnU-Net's data set fingerprint (`dataset_fingerprint.json`): per case the spacing and the
/// shape after cropping to the non-zero region, and per channel statistics of foreground
/// intensities (voxels with label > 0, after cropping) over samples drawn from every case.
///
/// Axis order follows nnU-Net: array order ((z,) y, x), i.e. `MedicalImage.size` reversed.
/// Sampling: up to `samplesPerCase` (nnU-Net: 10,000) foreground voxels per case and channel,
/// evenly spaced in flat index order (sample k of n is voxel `k * n / count` of the foreground
/// voxels in array order); all of them when the case has fewer. nnU-Net draws them at random
/// with replacement; the deterministic choice keeps the fingerprint reproducible.
public struct DatasetFingerprint: Codable, Equatable, Sendable {
    public struct IntensityProperties: Codable, Equatable, Sendable {
        public var mean: Double
        public var median: Double
        public var std: Double
        public var min: Double
        public var max: Double
        public var percentile99_5: Double
        public var percentile00_5: Double

        enum CodingKeys: String, CodingKey {
            case mean, median, std, min, max
            case percentile99_5 = "percentile_99_5"
            case percentile00_5 = "percentile_00_5"
        }

        /// numpy's mean, median, std (population), min, max and linear-interpolation percentiles.
        public init(values unsorted: [Double]) {
            guard !unsorted.isEmpty else {
                self.init(mean: 0, median: 0, std: 0, min: 0, max: 0, percentile99_5: 0, percentile00_5: 0)
                return
            }
            let v = unsorted.sorted()
            func pct(_ p: Double) -> Double {
                let x = p / 100 * Double(v.count - 1)
                let lo = Int(x.rounded(.down)), hi = Swift.min(lo + 1, v.count - 1)
                return v[lo] + (v[hi] - v[lo]) * (x - Double(lo))
            }
            let mean = v.reduce(0, +) / Double(v.count)
            let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
            self.init(mean: mean, median: pct(50), std: variance.squareRoot(), min: v[0], max: v[v.count - 1],
                      percentile99_5: pct(99.5), percentile00_5: pct(0.5))
        }

        public init(mean: Double, median: Double, std: Double, min: Double, max: Double, percentile99_5: Double, percentile00_5: Double) {
            self.mean = mean; self.median = median; self.std = std; self.min = min; self.max = max
            self.percentile99_5 = percentile99_5; self.percentile00_5 = percentile00_5
        }
    }

    /// Case identifiers, in the order of `spacings` and `shapesAfterCrop`.
    public var caseIdentifiers: [String]
    /// Per case, the voxel spacing in array order ((z,) y, x).
    public var spacings: [[Double]]
    /// Per case, the spatial shape after cropping to the non-zero region, array order.
    public var shapesAfterCrop: [[Int]]
    /// Per channel ("0", "1", ...), statistics of the sampled foreground intensities.
    public var foregroundIntensityPropertiesPerChannel: [String: IntensityProperties]
    /// Median over cases of (voxels after cropping / voxels before).
    public var medianRelativeSizeAfterCropping: Double
    /// Per axis median of `spacings` and `shapesAfterCrop` (numpy's median).
    public var medianSpacing: [Double]
    public var medianShape: [Double]
    public var samplesPerCase: Int

    enum CodingKeys: String, CodingKey {
        case caseIdentifiers = "case_identifiers"
        case spacings
        case shapesAfterCrop = "shapes_after_crop"
        case foregroundIntensityPropertiesPerChannel = "foreground_intensity_properties_per_channel"
        case medianRelativeSizeAfterCropping = "median_relative_size_after_cropping"
        case medianSpacing = "median_spacing"
        case medianShape = "median_shape"
        case samplesPerCase = "samples_per_case"
    }

    public static let fileName = "dataset_fingerprint.json"

    /// Channel count.
    public var channels: Int { foregroundIntensityPropertiesPerChannel.count }

    /// Per channel statistics as CaseReader's CT normalization takes them.
    public var intensityStatistics: [IntensityStatistics] {
        (0..<channels).map { c in
            let p = foregroundIntensityPropertiesPerChannel[String(c)] ?? IntensityProperties(values: [])
            return IntensityStatistics(mean: p.mean, std: p.std, percentile00_5: p.percentile00_5, percentile99_5: p.percentile99_5)
        }
    }

    /// nnU-Net's cap on foreground samples over the whole data set (`num_foreground_voxels_for_intensitystats`,
    /// 10e7 per channel): with more than 10,000 cases, each case gives 10^8 / cases.
    public static let defaultTotalSamples = 100_000_000

    /// Fingerprint of every training case of `dataset`, reading cases on `workers` threads. Memory:
    /// one case per worker (its image and label as read), plus the kept samples (at most
    /// `samplesPerCase` per case and channel, `totalSamples` per channel in all).
    public static func compute(dataset: RawDataset, workers: Int = 1, samplesPerCase: Int = 10_000,
                               totalSamples: Int = defaultTotalSamples) throws -> DatasetFingerprint {
        let cases = try dataset.trainingCases()
        guard !cases.isEmpty else { throw DataError("\(dataset.root.path): no training cases to fingerprint") }
        let perCase = min(samplesPerCase, max(1, totalSamples / cases.count))
        // Samples as Float, as read: Double(Float) is exact, so the statistics are unchanged.
        struct CaseResult { var spacing: [Double]; var shape: [Int]; var relative: Double; var samples: [[Float]] }
        let results = try Parallel.map(cases.count, workers: workers) { index -> CaseResult in
            defer { Torch.releaseFreeMemory() }   // freed pages go back before the next case (heap kept once Torch is set up)
            let (image, label) = try CaseVolumes.read(cases[index])
            // The crop box is all the fingerprint needs of cropping: the samples are read from the
            // raw arrays row by row in the cropped image's order, with no cropped copies.
            let box = Cropping.nonZeroBox(image)
            let samples = label.map { foregroundSamples(image, label: $0, box: box, count: perCase) }
                ?? Array(repeating: [], count: image.channels)
            return CaseResult(spacing: image.geometry.spacing.reversed(), shape: box.size.reversed(),
                              relative: Double(box.size.reduce(1, *)) / Double(image.voxelCount), samples: samples)
        }
        let channels = results[0].samples.count
        guard results.allSatisfy({ $0.samples.count == channels }) else {
            throw DataError("\(dataset.root.path): cases have different channel counts")
        }
        var properties: [String: IntensityProperties] = [:]
        for c in 0..<channels {
            var values: [Double] = []
            values.reserveCapacity(results.reduce(0) { $0 + $1.samples[c].count })
            for r in results { values += r.samples[c].lazy.map(Double.init) }
            properties[String(c)] = IntensityProperties(values: values)
        }
        let spacings = results.map(\.spacing), shapes = results.map(\.shape)
        let dims = spacings[0].count
        if let odd = spacings.indices.first(where: { spacings[$0].count != dims }) {
            throw DataError(file: cases[odd].images[0], "is \(spacings[odd].count)D, but case \(cases[0].identifier) is \(dims)D: a data set holds images of one dimensionality")
        }
        return DatasetFingerprint(
            caseIdentifiers: cases.map(\.identifier), spacings: spacings, shapesAfterCrop: shapes,
            foregroundIntensityPropertiesPerChannel: properties,
            medianRelativeSizeAfterCropping: median(results.map(\.relative)),
            medianSpacing: (0..<dims).map { a in median(spacings.map { $0[a] }) },
            medianShape: (0..<dims).map { a in median(shapes.map { Double($0[a]) }) },
            samplesPerCase: perCase)
    }

    /// Per channel, the image values at `count` foreground voxels (label > 0) inside `box`, evenly
    /// spaced in the cropped image's flat order (all of them when fewer): `evenlySpaced` of the
    /// cropped foreground, found in two passes (count, then pick) instead of listing it.
    static func foregroundSamples(_ image: MedicalImage, label: MedicalImage, box: CropBox, count: Int) -> [[Float]] {
        var total = 0
        label.voxels.withUnsafeBufferPointer { l in
            Cropping.forEachRow(in: box) { start, length in
                for i in start..<(start + length) where l[i] > 0 { total += 1 }
            }
        }
        var selection = EvenlySpacedSelection(total: total, count: count)
        var picked: [Int] = []
        picked.reserveCapacity(min(total, count))
        label.voxels.withUnsafeBufferPointer { l in
            Cropping.forEachRow(in: box) { start, length in
                for i in start..<(start + length) where l[i] > 0 && selection.keepsNext() { picked.append(i) }
            }
        }
        let n = image.voxelCount
        return (0..<image.channels).map { c in picked.map { image.voxels[c * n + $0] } }
    }

    /// `count` elements of `all` at indices `k * all.count / count` (all of them when fewer).
    public static func evenlySpaced<T>(_ all: [T], count: Int) -> [T] {
        guard all.count > count else { return all }
        return (0..<count).map { all[$0 * all.count / count] }
    }

    static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let v = values.sorted(), m = v.count / 2
        return v.count % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2
    }

    /// Writes `dataset_fingerprint.json` into `folder` (atomically).
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let url = folder.appendingPathComponent(Self.fileName)
        do { try encoder.encode(self).write(to: url, options: .atomic) } catch { throw DataError(file: url, "cannot write: \(error)") }
    }

    /// Reads `dataset_fingerprint.json` from `folder` (or the file itself).
    public static func load(_ url: URL) throws -> DatasetFingerprint {
        var isDirectory: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? url.appendingPathComponent(fileName) : url
        do {
            return try JSONFile.decode(DatasetFingerprint.self, from: RegularFile.contents(file))
        } catch let error as DataError {
            throw DataError(file: file, "not a readable fingerprint: \(error.problem)")
        } catch {
            throw DataError(file: file, "cannot read: \(error.localizedDescription)")
        }
    }
}

/// Reading one raw case as a multi-channel image (colour files count as their channels) plus label.
enum CaseVolumes {
    static func read(_ files: CaseFiles) throws -> (image: MedicalImage, label: MedicalImage?) {
        var parts: [MedicalImage] = []
        for url in files.images {
            let image = try ImageIO.read(url)
            if let first = parts.first, first.size != image.size {
                throw DataError(file: url, "size \(image.size) differs from channel 0's \(first.size)")
            }
            parts.append(image)
        }
        guard let size = parts.first?.size, let geometry = parts.first?.geometry else {
            throw DataError("case \(files.identifier): no image files")
        }
        let channels = parts.reduce(0) { $0 + $1.channels }
        var voxels: [Float]
        if parts.count == 1 {
            voxels = parts.removeFirst().voxels   // one file: its voxels as they are, not a second copy
        } else {
            voxels = []
            voxels.reserveCapacity(channels * size.reduce(1, *))
            for p in parts { voxels += p.voxels }
            parts.removeAll()
        }
        let image = MedicalImage(size: size, channels: channels, voxels: voxels, pixelType: .float32, geometry: geometry)
        var label: MedicalImage? = nil
        if let url = files.label {
            let l = try ImageIO.read(url)
            guard l.size == size else { throw DataError(file: url, "label size \(l.size) differs from the image's \(size)") }
            guard l.channels == 1 else {
                throw DataError(file: url, "the label map has \(l.channels) channels (a colour image?); labels are one channel of class values")
            }
            try LabelValues.check(l, file: url)
            label = l
        }
        return (image, label)
    }
}

/// Work spread over a fixed number of threads.
enum Parallel {
    private final class Box<T>: @unchecked Sendable {
        let lock = NSLock()
        var results: [T?]
        var next = 0
        var error: Error?
        init(_ count: Int) { results = Array(repeating: nil, count: count) }
    }

    /// `body(i)` for i in 0..<count on up to `workers` threads; results in index order. The
    /// first error stops handing out work and is rethrown.
    static func map<T>(_ count: Int, workers: Int, _ body: (Int) throws -> T) throws -> [T] {
        let box = Box<T>(count)
        let threads = max(1, min(workers, count))
        withoutActuallyEscaping(body) { body in
            DispatchQueue.concurrentPerform(iterations: threads) { _ in
                while true {
                    box.lock.lock()
                    let i = box.next
                    box.next += 1
                    let stop = box.error != nil
                    box.lock.unlock()
                    if stop || i >= count { return }
                    do {
                        let r = try body(i)
                        box.lock.lock(); box.results[i] = r; box.lock.unlock()
                    } catch {
                        box.lock.lock(); if box.error == nil { box.error = error }; box.lock.unlock()
                    }
                }
            }
        }
        if let error = box.error { throw error }
        return box.results.map { $0! }
    }
}

extension DatasetFingerprint {
    /// MedSeg's fingerprint, or nnU-Net's own `dataset_fingerprint.json` (as a trained nnU-Net
    /// model folder holds it), which has only the per-case lists: the medians follow from them.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let spacings = try c.decode([[Double]].self, forKey: .spacings)
        let shapes = try c.decode([[Int]].self, forKey: .shapesAfterCrop)
        let dims = spacings.first?.count ?? 0
        self.init(caseIdentifiers: try c.decodeIfPresent([String].self, forKey: .caseIdentifiers) ?? spacings.indices.map { "case_\($0)" },
                  spacings: spacings, shapesAfterCrop: shapes,
                  foregroundIntensityPropertiesPerChannel: try c.decode([String: IntensityProperties].self, forKey: .foregroundIntensityPropertiesPerChannel),
                  medianRelativeSizeAfterCropping: try c.decode(Double.self, forKey: .medianRelativeSizeAfterCropping),
                  medianSpacing: try c.decodeIfPresent([Double].self, forKey: .medianSpacing)
                      ?? (0..<dims).map { a in Self.median(spacings.map { $0[a] }) },
                  medianShape: try c.decodeIfPresent([Double].self, forKey: .medianShape)
                      ?? (0..<dims).map { a in Self.median(shapes.map { Double($0[a]) }) },
                  samplesPerCase: try c.decodeIfPresent(Int.self, forKey: .samplesPerCase) ?? 10_000)
    }
}
