import Foundation
import MedSegData
import Torch

/// Ensembling of finished predictions: the probabilities that several folders hold for the same
/// cases (`CASE_probabilities.safetensors`, written by `predict --save-probabilities` or by
/// validation, or nnU-Net's `CASE.npz` from `nnUNetv2_predict --save_probabilities`) are averaged
/// and turned into label maps in the grid, format and geometry of the first folder's prediction
/// of the case.
public enum ProbabilityEnsemble {
    /// Cases with probabilities in `folder`: MedSeg's files, or nnU-Net's.
    static func identifiers(in folder: URL) throws -> [String] {
        let medseg = try ProbabilityFile.identifiers(in: folder)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return Array(Set(medseg + NNUNetProbabilityFile.identifiers(in: names))).sorted()
    }

    /// The probabilities of case `identifier` in `folder`, from MedSeg's file or else nnU-Net's.
    static func load(_ identifier: String, in folder: URL) throws -> (url: URL, probabilities: Tensor, regionsClassOrder: [Int]?) {
        let url = ProbabilityFile.url(for: identifier, in: folder)
        if FileManager.default.fileExists(atPath: url.path) {
            let (p, order) = try ProbabilityFile.load(url)
            return (url, p, order)
        }
        let npz = NNUNetProbabilityFile.url(for: identifier, in: folder)
        let (p, order) = try NNUNetProbabilityFile.load(npz)
        return (npz, p, order)
    }

    /// The prediction image of case `identifier` in `folder` (any readable format).
    public static func predictionFile(_ identifier: String, in folder: URL) -> URL? {
        ImageIO.readableEndings.lazy.map { folder.appendingPathComponent(identifier + $0) }
            .first { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// Cases with probabilities in every folder (sorted); throws naming the folder and case when
    /// a folder lacks cases that the first one has.
    public static func commonCases(_ folders: [URL]) throws -> [String] {
        guard let first = folders.first else { throw TrainingError("an ensemble needs at least one folder of predictions") }
        let ids = try identifiers(in: first)
        guard !ids.isEmpty else {
            throw DataError(file: first, "holds no *\(ProbabilityFile.suffix) files (predict or train with \(Setting.named("save_probabilities", value: "true"))) nor nnU-Net's *.npz")
        }
        for folder in folders.dropFirst() {
            let have = Set(try identifiers(in: folder))
            if let missing = ids.first(where: { !have.contains($0) }) {
                throw DataError(file: folder, "has no probabilities for case \(missing), which \(first.lastPathComponent) has")
            }
        }
        return ids
    }

    /// Averaged probabilities of one case, the label image made from them and, for region
    /// probabilities, the label each channel paints.
    public static func merge(_ identifier: String, folders: [URL])
        throws -> (label: MedicalImage, ending: String, probabilities: Tensor, regionsClassOrder: [Int]?) {
        var sum: Tensor? = nil
        var order: [Int]?
        for (i, folder) in folders.enumerated() {
            let (url, p, regions) = try load(identifier, in: folder)
            if let s = sum, s.shape != p.shape {
                throw DataError(file: url, "probabilities of shape \(p.shape), the first folder's are \(s.shape)")
            }
            if i == 0 { order = regions } else if regions != order {
                throw DataError(file: url, "holds \(regions == nil ? "label" : "region") probabilities, the first folder's are \(order == nil ? "label" : "region") probabilities (or in another order)")
            }
            sum = try sum.map { try $0 + p } ?? p
        }
        let mean = try sum! / Double(folders.count)
        guard let template = predictionFile(identifier, in: folders[0]) else {
            throw DataError(file: folders[0], "has probabilities but no prediction image for case \(identifier)")
        }
        let reference = try ImageIO.read(template)
        let labels = try ProbabilityFile.labels(mean, regionsClassOrder: order).to(dtype: .float32).floats()
        guard labels.count == reference.voxelCount else {
            throw DataError(file: template, "has \(reference.voxelCount) voxels, its probabilities \(labels.count)")
        }
        let label = MedicalImage(size: reference.size, voxels: labels, pixelType: .uint8, geometry: reference.geometry)
        return (label, ImageIO.fileEnding(of: template), mean, order)
    }

    /// Writes the ensemble of `folders` into `out`; returns the cases written.
    @discardableResult
    public static func run(folders: [URL], out: URL, postprocessing: Postprocessing? = nil, saveProbabilities: Bool = false) throws -> [String] {
        let ids = try commonCases(folders)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        for id in ids {
            var (label, ending, probabilities, order) = try merge(id, folders: folders)
            if let postprocessing { label = postprocessing.apply(to: label) }
            try ImageIO.write(label, to: out.appendingPathComponent(id + ending))
            if saveProbabilities { try ProbabilityFile.write(probabilities, regionsClassOrder: order, to: ProbabilityFile.url(for: id, in: out)) }
        }
        return ids
    }
}
