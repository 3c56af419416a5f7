import Foundation
import Torch

/// Writes a data set in the raw layout case by case, then its dataset.json. Importers and the
/// synthetic generator use it so every data set MedSeg makes looks the same.
public final class RawDatasetWriter {
    public let root: URL
    public let channelNames: [String]
    public let labels: [String: Int]
    public let fileEnding: String
    public let name: String?
    public private(set) var trainingCount = 0
    public private(set) var testCount = 0

    /// What a data set writer writes into its folder (and removes there on overwrite).
    public static let managedEntries = ["dataset.json", "imagesTr", "labelsTr", "imagesTs", "labelsTs", "fovTr", "fovTs"]

    /// The raw-layout entries already in `root`.
    public static func existingEntries(in root: URL) -> [String] {
        managedEntries.filter { FileManager.default.fileExists(atPath: root.appendingPathComponent($0).path) }
    }

    /// Refuses a folder that already holds a data set unless `overwrite` is set: new cases would
    /// mix with the old ones and dataset.json would describe neither.
    public static func refuseExistingDataset(in root: URL, overwrite: Bool) throws {
        let present = existingEntries(in: root)
        guard !present.isEmpty, !overwrite else { return }
        throw DataError(file: root, "already holds a data set (\(present.joined(separator: ", "))); choose an empty folder or pass \(Setting.named("overwrite", value: "true"))")
    }

    /// Removes the data set in `root` (its managed entries only).
    public static func removeExistingDataset(in root: URL) throws {
        for name in existingEntries(in: root) { try FileManager.default.removeItem(at: root.appendingPathComponent(name)) }
    }

    public init(root: URL, channelNames: [String], labels: [String: Int], fileEnding: String, name: String? = nil) throws {
        guard ImageIO.writableEndings.contains(fileEnding) else {
            throw DataError("cannot write \(fileEnding) files; writable endings: \(ImageIO.writableEndings.joined(separator: ", "))")
        }
        self.root = root
        self.channelNames = channelNames
        self.labels = labels
        self.fileEnding = fileEnding
        self.name = name
        for folder in ["imagesTr", "labelsTr"] {
            try FileManager.default.createDirectory(at: root.appendingPathComponent(folder), withIntermediateDirectories: true)
        }
    }

    /// Adds a case: one image per channel (or one multi-channel image, split here) and its label
    /// map; without a label the case goes to imagesTs.
    public func add(identifier: String, image: MedicalImage, label: MedicalImage?) throws {
        guard image.channels == channelNames.count else {
            throw DataError("case \(identifier): image has \(image.channels) channels, the data set has \(channelNames.count)")
        }
        if let label, label.size != image.size {
            throw DataError("case \(identifier): label size \(label.size) differs from image size \(image.size)")
        }
        let folder = root.appendingPathComponent(label == nil ? "imagesTs" : "imagesTr")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for c in 0..<image.channels {
            let file = folder.appendingPathComponent(ChannelFileName.name(identifier, channel: c, ending: fileEnding))
            try ImageIO.write(image.channels == 1 ? image : image.channel(c), to: file)
        }
        if let label {
            var l = label
            l.pixelType = .uint8
            try ImageIO.write(l, to: root.appendingPathComponent("labelsTr").appendingPathComponent(identifier + fileEnding))
            trainingCount += 1
        } else {
            testCount += 1
        }
    }

    /// Writes dataset.json; call after the last case.
    @discardableResult
    public func finish(description text: String? = nil) throws -> DatasetDescription {
        let d = DatasetDescription(channelNames: channelNames, labels: labels, numTraining: trainingCount,
                                   fileEnding: fileEnding, name: name, description: text)
        try d.write(to: root.appendingPathComponent("dataset.json"))
        return d
    }
}
