import Foundation

/// One case of a raw data set: its image files (one per channel) and its label file, if any.
public struct CaseFiles: Equatable, Sendable {
    public var identifier: String
    public var images: [URL]
    public var label: URL?

    public init(identifier: String, images: [URL], label: URL? = nil) {
        self.identifier = identifier; self.images = images; self.label = label
    }
}

/// A data set in the nnU-Net v2 raw layout:
/// `imagesTr/CASE_0000.ext` (one file per channel), `labelsTr/CASE.ext`, optional `imagesTs/`,
/// and `dataset.json`.
public struct RawDataset {
    public let root: URL
    public let description: DatasetDescription

    public init(_ root: URL) throws {
        self.root = root
        let json = root.appendingPathComponent("dataset.json")
        guard FileManager.default.fileExists(atPath: json.path) else {
            throw DataError("\(root.path): not a data set folder (no dataset.json); create one with `medseg data synth` or `medseg data import`")
        }
        description = try DatasetDescription.load(json)
    }

    public var imagesTr: URL { root.appendingPathComponent("imagesTr") }
    public var labelsTr: URL { root.appendingPathComponent("labelsTr") }
    public var imagesTs: URL { root.appendingPathComponent("imagesTs") }

    /// Training cases, sorted by identifier, found through `labelsTr`.
    public func trainingCases() throws -> [CaseFiles] {
        try cases(labels: labelsTr, images: imagesTr, requireLabels: true)
    }

    /// Test cases (no labels), found through `imagesTs`.
    public func testCases() throws -> [CaseFiles] {
        guard FileManager.default.fileExists(atPath: imagesTs.path) else { return [] }
        return try cases(labels: nil, images: imagesTs, requireLabels: false)
    }

    private func cases(labels: URL?, images: URL, requireLabels: Bool) throws -> [CaseFiles] {
        let ending = description.file_ending
        var identifiers: [String]
        if let labels {
            identifiers = try Self.files(in: labels, ending: ending).map { String($0.dropLast(ending.count)) }
        } else {
            identifiers = Set(try Self.files(in: images, ending: ending).compactMap {
                ChannelFileName.parse(String($0.dropLast(ending.count)))?.identifier
            }).sorted()
        }
        identifiers.sort()
        return identifiers.map { id in
            CaseFiles(identifier: id,
                      images: ChannelFileName.files(id, channels: description.channelCount, ending: ending, in: images),
                      label: labels?.appendingPathComponent(id + ending))
        }
    }

    static func files(in folder: URL, ending: String) throws -> [String] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else {
            throw DataError("\(folder.path): folder is missing")
        }
        return names.filter { $0.hasSuffix(ending) && !$0.hasPrefix(".") }.sorted()
    }
}
