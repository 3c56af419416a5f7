import Foundation

/// The `dataset.json` of an nnU-Net v2 raw data set, MedSeg's one internal layout for 2D and 3D data.
public struct DatasetDescription: Codable, Equatable, Sendable {
    /// Channel index ("0", "1", ...) to modality name ("CT", "T2", "R", ...).
    public var channel_names: [String: String]
    /// Label name to value; "background" is 0.
    public var labels: [String: Int]
    public var numTraining: Int
    /// Ending of every image and label file (".nii.gz", ".png", ...).
    public var file_ending: String
    public var name: String?
    public var description: String?
    public var reference: String?
    public var licence: String?
    public var overwrite_image_reader_writer: String?

    public init(channelNames: [String], labels: [String: Int], numTraining: Int, fileEnding: String, name: String? = nil, description: String? = nil) {
        channel_names = Dictionary(uniqueKeysWithValues: channelNames.enumerated().map { (String($0.offset), $0.element) })
        self.labels = labels
        self.numTraining = numTraining
        file_ending = fileEnding
        self.name = name
        self.description = description
    }

    public var channelCount: Int { channel_names.count }

    /// Channel names in channel order.
    public var orderedChannelNames: [String] {
        (0..<channel_names.count).map { channel_names[String($0)] ?? "channel \($0)" }
    }

    /// Label values in ascending order, background first.
    public var labelValues: [Int] { Array(Set(labels.values)).sorted() }

    /// Foreground label values (everything but 0).
    public var foregroundLabels: [Int] { labelValues.filter { $0 != 0 } }

    /// Value to name, for reports.
    public var labelNames: [Int: String] {
        Dictionary(labels.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
    }

    public static func load(_ url: URL) throws -> DatasetDescription {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw DataError("\(url.path): cannot read dataset.json (\(error.localizedDescription))")
        }
        let description: DatasetDescription
        do { description = try JSONDecoder().decode(DatasetDescription.self, from: data) } catch let DecodingError.keyNotFound(key, _) {
            throw DataError("\(url.path): missing key \"\(key.stringValue)\"")
        } catch let DecodingError.typeMismatch(_, context) {
            throw DataError("\(url.path): wrong type at \(context.codingPath.map(\.stringValue).joined(separator: ".")): \(context.debugDescription)")
        } catch {
            throw DataError("\(url.path): not a valid dataset.json (\(error))")
        }
        guard description.labels["background"] == 0 || description.labels.values.contains(0) else {
            throw DataError("\(url.path): labels must include background = 0")
        }
        guard description.channelCount > 0 else { throw DataError("\(url.path): channel_names is empty") }
        guard description.file_ending.hasPrefix(".") else {
            throw DataError("\(url.path): file_ending must start with '.', got \"\(description.file_ending)\"")
        }
        return description
    }

    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}
