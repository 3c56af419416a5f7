import Foundation
import Torch

/// Intensity normalization per channel, as nnU-Net's schemes.
public enum IntensityNormalization: String, Codable, Sendable {
    /// Per image and channel: (x - mean) / std.
    case zscore
    /// CT: clip to the data set's foreground 0.5/99.5 percentiles, then a global z-score.
    case ct
    /// 8-bit colour or gray: scale to [0, 1].
    case rgb
    case none
}

/// Foreground intensity statistics of a data set (per channel), for CT normalization.
public struct IntensityStatistics: Codable, Equatable, Sendable {
    public var mean: Double
    public var std: Double
    public var percentile00_5: Double
    public var percentile99_5: Double

    /// Statistics of the voxels under the foreground of the labels (subsampled for speed).
    public static func foreground(of pairs: [(image: [Float], label: [Float])], maxSamplesPerCase: Int = 10_000) -> IntensityStatistics {
        var values: [Double] = []
        for (image, label) in pairs {
            let fg = image.indices.filter { label[$0] > 0 }
            let step = max(1, fg.count / maxSamplesPerCase)
            for k in stride(from: 0, to: fg.count, by: step) { values.append(Double(image[fg[k]])) }
        }
        guard !values.isEmpty else { return IntensityStatistics(mean: 0, std: 1, percentile00_5: 0, percentile99_5: 0) }
        let p = DatasetFingerprint.IntensityProperties(values: values)
        return IntensityStatistics(mean: p.mean, std: p.std, percentile00_5: p.percentile00_5, percentile99_5: p.percentile99_5)
    }
}

/// One training case in memory: normalized image [C, (D,) H, W] (float32), label map
/// [1, (D,) H, W] (float32 holding class indices), and where each foreground class is.
public struct LoadedCase {
    public let identifier: String
    public let image: Tensor
    public let label: Tensor?
    /// Per foreground class (index 0 = label 1), flat voxel indices (subsampled).
    public var foreground: [[Int]]
    public let geometry: ImageGeometry
    /// Spatial size in tensor order ((D,) H, W).
    public let shape: [Int]

    public init(identifier: String, image: Tensor, label: Tensor?, foreground: [[Int]], geometry: ImageGeometry, shape: [Int]) {
        self.identifier = identifier; self.image = image; self.label = label
        self.foreground = foreground; self.geometry = geometry; self.shape = shape
    }
}

/// Reads and normalizes cases of a raw data set.
public struct CaseReader {
    public let dataset: RawDataset?
    public let normalization: IntensityNormalization
    public let ctStatistics: [IntensityStatistics]?

    public init(dataset: RawDataset?, normalization: IntensityNormalization, ctStatistics: [IntensityStatistics]? = nil) {
        self.dataset = dataset
        self.normalization = normalization
        self.ctStatistics = ctStatistics
    }

    /// Reads the image channels of `files` (and its label when present) and normalizes them.
    /// Voxels of `ignoreLabel` are kept in the label but are not foreground.
    public func load(_ files: CaseFiles, classes: Int, ignoreLabel: Int? = nil, maxForegroundSamples: Int = 10_000) throws -> LoadedCase {
        var channels: [MedicalImage] = []
        for url in files.images {
            let image = try ImageIO.read(url)
            if let first = channels.first, first.size != image.size {
                throw DataError(file: url, "size \(image.size) differs from channel 0's \(first.size)")
            }
            // A colour file counts as its channels (RGB dermoscopy).
            channels += image.channels == 1 ? [image] : (0..<image.channels).map { image.channel($0) }
        }
        guard let first = channels.first else { throw DataError("case \(files.identifier): no image files") }
        let shape = Array(first.size.reversed())
        var normalized: [Float] = []
        normalized.reserveCapacity(channels.count * first.voxelCount)
        for (c, ch) in channels.enumerated() {
            normalized += try normalize(ch.voxels, channel: c, file: files.images[min(c, files.images.count - 1)])
        }
        let image = try Tensor(normalized, shape: [channels.count] + shape)

        var labelTensor: Tensor? = nil
        var foreground: [[Int]] = Array(repeating: [], count: classes)
        if let labelURL = files.label {
            let label = try ImageIO.read(labelURL)
            try LabelValues.check(label, file: labelURL)
            guard label.size == first.size else {
                throw DataError(file: labelURL, "label size \(label.size) differs from the image's \(first.size)")
            }
            var perClass: [[Int]] = Array(repeating: [], count: classes)
            for (i, v) in label.voxels.enumerated() where v > 0 {
                let cls = Int(v.rounded())
                if cls == ignoreLabel { continue }
                guard cls <= classes else {
                    throw DataError(file: labelURL, "label value \(cls) is above the data set's largest label \(classes)")
                }
                perClass[cls - 1].append(i)
            }
            foreground = perClass.map { all in
                let step = max(1, all.count / maxForegroundSamples)
                return stride(from: 0, to: all.count, by: step).map { all[$0] }
            }
            labelTensor = try Tensor(label.voxels, shape: [1] + shape)
        }
        return LoadedCase(identifier: files.identifier, image: image, label: labelTensor, foreground: foreground,
                          geometry: first.geometry, shape: shape)
    }

    public func normalize(_ v: [Float], channel: Int, file: URL) throws -> [Float] {
        switch normalization {
        case .none: return v
        case .rgb: return v.map { $0 / 255 }
        case .zscore:
            let n = Double(v.count)
            let mean = v.reduce(0.0) { $0 + Double($1) } / n
            let variance = v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / n
            let std = max(variance.squareRoot(), 1e-8)
            return v.map { Float((Double($0) - mean) / std) }
        case .ct:
            guard let stats = ctStatistics, channel < stats.count else {
                throw DataError(file: file, "CT normalization needs the data set's intensity statistics for channel \(channel)")
            }
            let s = stats[channel]
            let lo = Float(s.percentile00_5), hi = Float(s.percentile99_5)
            return v.map { Float((Double(min(max($0, lo), hi)) - s.mean) / max(s.std, 1e-8)) }
        }
    }
}
