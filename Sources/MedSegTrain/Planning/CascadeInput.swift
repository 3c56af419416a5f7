import Foundation
import MedSegData
import Torch

/// The 3D cascade's extra input: the previous stage's (3d_lowres) segmentation, one-hot, as
/// channels beside the image of the full-resolution stage. Training uses the previous stage's
/// cross-validation predictions (each case predicted by the fold that did not train on it, as
/// nnU-Net does); inference predicts the previous stage first.
public enum CascadeInput {
    /// A source of previous-stage segmentations in the raw grid of a case.
    public typealias PreviousStage = (CaseFiles) throws -> MedicalImage

    /// One-hot channels (labels 1...classes, channel-major, x fastest) of `previous`, a label image
    /// in the case's raw grid, brought into the grid of its preprocessed image: cropped with the
    /// same box, resampled to the stored shape as the plans resample labels (`orders`).
    public static func channels(previous: MedicalImage, properties: PreprocessedCase.Properties, classes: Int,
                                orders: Resampling.Orders = .init()) throws -> [Float] {
        let rawSize = Array(properties.shapeBeforeCropping.reversed())
        guard previous.size == rawSize else {
            throw DataError("case \(properties.identifier): the previous stage's segmentation has size \(previous.size), the image \(rawSize)")
        }
        let cropped = Cropping.crop(previous.channels == 1 ? previous : previous.channel(0), to: properties.cropBox)
        let target = Array(properties.spatialShape.reversed())
        let axis = Resampling.separateAxis(spacing: properties.originalSpacing.reversed(), target: properties.spacing.reversed())
        let labels = Resampling.resampleLabel(cropped.voxels, size: cropped.size, to: target, order: orders.label, separateAxis: axis,
                                              orderZ: orders.labelZ)
        var out = [Float](repeating: 0, count: classes * labels.count)
        for (i, v) in labels.enumerated() {
            let c = Int(v.rounded())
            if c >= 1 && c <= classes { out[(c - 1) * labels.count + i] = 1 }
        }
        return out
    }

    /// The cross-validation predictions of a previous-stage experiment folder: for each case the
    /// prediction in the validation folder of the fold that held it out.
    public static func crossValidationPredictions(of experiment: URL) throws -> PreviousStage {
        let fm = FileManager.default
        var files: [String: URL] = [:]
        for fold in ExperimentFolder(experiment).numberedFolds {
            let validation = ExperimentFolder(experiment).fold(fold).validation
            for name in (try? fm.contentsOfDirectory(atPath: validation.path)) ?? [] {
                let url = validation.appendingPathComponent(name)
                guard ImageIO.readableEndings.contains(ImageIO.fileEnding(of: url)) else { continue }
                files[ImageIO.stem(of: url)] = url
            }
        }
        guard !files.isEmpty else {
            throw DataError(file: experiment, "holds no validated folds (fold_N/validation): train the previous stage's folds first")
        }
        return { caseFiles in
            guard let url = files[caseFiles.identifier] else {
                throw DataError(file: experiment, "has no cross-validation prediction of case \(caseFiles.identifier): train every fold of the previous stage first")
            }
            return try ImageIO.read(url)
        }
    }

    /// `loaded` with the previous stage's channels appended to its image.
    static func appending(_ channels: [Float], classes: Int, to loaded: LoadedCase) throws -> LoadedCase {
        let extra = try Tensor(channels, shape: [classes] + loaded.shape)
        return LoadedCase(identifier: loaded.identifier, image: try Tensor.cat([loaded.image, extra], dim: 0), label: loaded.label,
                          foreground: loaded.foreground, geometry: loaded.geometry, shape: loaded.shape)
    }
}
