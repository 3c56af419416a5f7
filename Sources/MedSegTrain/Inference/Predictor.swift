import Foundation
import MedSegData
import Torch

/// Turns images into label maps with a trained network: normalization as in training,
/// sliding-window inference, argmax (or a 0.5 threshold for one sigmoid output), and the input's
/// geometry on the result so viewers overlay it on the image.
public struct Predictor {
    public let model: Module
    public let spec: ModelSpecRecord
    public var mirror: Bool
    public var device: Device

    public init(model: Module, spec: ModelSpecRecord, mirror: Bool = true, device: Device = .cpu) {
        self.model = model
        self.spec = spec
        self.mirror = mirror
        self.device = device
    }

    /// Class probabilities [K, spatial...] (K = 1 for a binary model: the foreground probability).
    public func probabilities(normalizedImage image: Tensor) throws -> Tensor {
        let logits = try logits(normalizedImage: image)
        return spec.binary ? try logits.sigmoid() : try logits.softmax(dim: 0)
    }

    /// Network outputs [K, spatial...] over the whole image (sliding window, optional mirroring).
    public func logits(normalizedImage image: Tensor) throws -> Tensor {
        model.eval()
        let divisor = 1 << (spec.depth - 1)
        // Windows are the training patch, but never larger than needed for a small image
        // (rounded up to what the network accepts).
        let spatial = Array(image.shape.dropFirst())
        let patch = zip(spec.patchSize, spatial).map { p, s in min(p, (s + divisor - 1) / divisor * divisor) }
        let window = SlidingWindow(patchSize: patch, mirrorAxes: mirror ? Array(0..<spec.dims) : [])
        return try window(image.to(device: device)) { try model($0) }
    }

    /// Label map [spatial...] (int64) from probabilities.
    public func labels(fromProbabilities p: Tensor) throws -> Tensor {
        spec.binary ? try p[0].gt(0.5).long() : try p.argmax(dim: 0)
    }

    /// Predicts one case given its channel images, returning the label image (and probabilities).
    public func predict(channels: [MedicalImage], source: String) throws -> (label: MedicalImage, probabilities: Tensor) {
        let reader = CaseReader.normalizer(spec: spec)
        var voxels: [Float] = []
        var count = 0
        guard let first = channels.first else { throw DataError("\(source): no image") }
        for image in channels {
            for c in 0..<image.channels {
                let ch = image.channels == 1 ? image : image.channel(c)
                guard ch.size == first.size else { throw DataError("\(source): channels differ in size") }
                voxels += try reader.normalize(ch.voxels, channel: count, file: URL(fileURLWithPath: source))
                count += 1
            }
        }
        guard count == spec.inChannels else {
            throw DataError("\(source): the model expects \(spec.inChannels) channel(s), the image has \(count)")
        }
        let shape = Array(first.size.reversed())
        let image = try Tensor(voxels, shape: [count] + shape)
        let p = try withNoGrad { try probabilities(normalizedImage: image) }
        let labels = try self.labels(fromProbabilities: p).to(device: .cpu).to(dtype: .float32).floats()
        return (MedicalImage(size: first.size, voxels: labels, pixelType: .uint8, geometry: first.geometry), p)
    }
}

extension CaseReader {
    /// A reader configured with a checkpoint's normalization (no data set needed).
    static func normalizer(spec: ModelSpecRecord) -> CaseReader {
        CaseReader(dataset: nil, normalization: IntensityNormalization(rawValue: spec.normalization) ?? .zscore,
                   ctStatistics: spec.intensityStatistics)
    }
}
