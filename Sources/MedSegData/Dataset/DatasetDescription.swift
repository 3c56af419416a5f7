import Foundation
import Torch

/// The `dataset.json` of an nnU-Net v2 raw data set, MedSeg's one internal layout for 2D and 3D data.
///
/// Labels are nnU-Net v2's: a name per integer value ("background" is 0), or per list of values
/// for region-based training (each list a region, one sigmoid output each, painted back in
/// `regions_class_order`), and optionally `"ignore": N`, the highest value, for voxels left out of
/// the loss and the metrics (partial annotation).
public struct DatasetDescription: Codable, Equatable, Sendable {
    /// One entry of "labels": a value, or a region's values.
    public enum LabelValue: Codable, Equatable, Sendable, ExpressibleByIntegerLiteral, ExpressibleByArrayLiteral {
        case value(Int)
        case region([Int])

        public init(integerLiteral v: Int) { self = .value(v) }
        public init(arrayLiteral r: Int...) { self = .region(r) }

        public var values: [Int] {
            switch self {
            case .value(let v): return [v]
            case .region(let r): return r
            }
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            // Label values size arrays (one channel per class): the range is checked here.
            func inRange(_ v: Int) throws -> Int {
                guard (0...LabelValues.largest).contains(v) else {
                    throw DecodingError.dataCorruptedError(in: c, debugDescription: "label value \(v) is outside 0 to \(LabelValues.largest)")
                }
                return v
            }
            if let v = try? c.decode(Int.self) { self = .value(try inRange(v)); return }
            if let r = try? c.decode([Int].self), !r.isEmpty { self = .region(try r.map(inRange)); return }
            throw DecodingError.typeMismatch(LabelValue.self, .init(codingPath: decoder.codingPath,
                                                                     debugDescription: "a label must be an integer or a non-empty list of integers"))
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .value(let v): try c.encode(v)
            case .region(let r): try c.encode(r)
            }
        }
    }

    /// Channel index ("0", "1", ...) to modality name ("CT", "T2", "R", ...).
    public var channel_names: [String: String]
    /// Label name to value (or region values); "background" is 0, "ignore" the ignore label.
    public var labels: [String: LabelValue]
    /// The label painted for each region, in the order of the regions (region-based data sets).
    public var regions_class_order: [Int]?
    public var numTraining: Int
    /// Ending of every image and label file (".nii.gz", ".png", ...).
    public var file_ending: String
    public var name: String?
    public var description: String?
    public var reference: String?
    public var licence: String?
    public var overwrite_image_reader_writer: String?
    /// Label names in the order of the file (a decoded JSON object has none; the regions pair with
    /// `regions_class_order` in this order, as nnU-Net reads them). Not written.
    public var labelOrder: [String]

    enum CodingKeys: String, CodingKey {
        case channel_names, labels, regions_class_order, numTraining, file_ending, name, description, reference, licence
        case overwrite_image_reader_writer
    }

    public init(channelNames: [String], labels: [String: Int], numTraining: Int, fileEnding: String, name: String? = nil, description: String? = nil) {
        channel_names = Dictionary(uniqueKeysWithValues: channelNames.enumerated().map { (String($0.offset), $0.element) })
        self.labels = labels.mapValues { .value($0) }
        self.numTraining = numTraining
        file_ending = fileEnding
        self.name = name
        self.description = description
        labelOrder = Self.defaultOrder(self.labels)
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        channel_names = try c.decode([String: String].self, forKey: .channel_names)
        labels = try c.decode([String: LabelValue].self, forKey: .labels)
        regions_class_order = try c.decodeIfPresent([Int].self, forKey: .regions_class_order)
        numTraining = try c.decode(Int.self, forKey: .numTraining)
        file_ending = try c.decode(String.self, forKey: .file_ending)
        name = try c.decodeIfPresent(String.self, forKey: .name)
        description = try c.decodeIfPresent(String.self, forKey: .description)
        reference = try c.decodeIfPresent(String.self, forKey: .reference)
        licence = try c.decodeIfPresent(String.self, forKey: .licence)
        overwrite_image_reader_writer = try c.decodeIfPresent(String.self, forKey: .overwrite_image_reader_writer)
        labelOrder = Self.defaultOrder(labels)
    }

    /// Without the file's text: by smallest value, then name.
    static func defaultOrder(_ labels: [String: LabelValue]) -> [String] {
        labels.keys.sorted { (labels[$0]!.values.min()!, $0) < (labels[$1]!.values.min()!, $1) }
    }

    public var channelCount: Int { channel_names.count }

    /// Channel names in channel order.
    public var orderedChannelNames: [String] {
        (0..<channel_names.count).map { channel_names[String($0)] ?? "channel \($0)" }
    }

    /// The ignore label ("ignore" in labels): its voxels count for neither loss nor metrics.
    public var ignoreLabel: Int? { labels["ignore"]?.values.first }

    /// Whether any label is a list of values (region-based training).
    public var hasRegions: Bool { labels.values.contains { if case .region = $0 { return true } else { return false } } }

    /// Every value a label file may hold, ascending, background and the ignore label included.
    public var labelValues: [Int] { Array(Set(labels.values.flatMap(\.values)).union([0])).sorted() }

    /// Foreground label values (everything but 0 and the ignore label).
    public var foregroundLabels: [Int] { labelValues.filter { $0 != 0 && $0 != ignoreLabel } }

    /// The foreground regions in file order (a plain label is the region of its one value);
    /// background and the ignore label are not regions.
    public var regions: [[Int]] {
        labelOrder.compactMap { key in
            guard key != "ignore", let v = labels[key]?.values, v != [0] else { return nil }
            return v
        }
    }

    /// Value to name, for reports (plain labels).
    public var labelNames: [Int: String] {
        Dictionary(labels.compactMap { entry -> (Int, String)? in
            if case .value(let v) = entry.value { return (v, entry.key) } else { return nil }
        }, uniquingKeysWith: { a, _ in a })
    }

    public static func load(_ url: URL) throws -> DatasetDescription {
        let data: Data
        do { data = try RegularFile.contents(url) } catch {
            throw DataError("\(url.path): cannot read dataset.json (\(error.localizedDescription))")
        }
        do { return try decode(data) } catch let error as DataError {
            throw DataError(file: url, error.problem)
        }
    }

    /// Decodes and checks a dataset.json's text (errors without a file name).
    public static func decode(_ data: Data) throws -> DatasetDescription {
        var d: DatasetDescription
        do { d = try JSONFile.decode(DatasetDescription.self, from: data) } catch let error as DataError {
            throw DataError("not a valid dataset.json: \(error.problem)")
        }
        d.labelOrder = fileOrder(of: Array(d.labels.keys), in: data)
        try d.checkLabels()
        guard d.channelCount > 0 else { throw DataError("channel_names is empty") }
        guard d.file_ending.hasPrefix(".") else {
            throw DataError("file_ending must start with '.', got \"\(d.file_ending)\"")
        }
        return d
    }

    /// The keys of the "labels" object in the order they appear in the text.
    private static func fileOrder(of keys: [String], in data: Data) -> [String] {
        let text = String(decoding: data, as: UTF8.self)
        let start = text.range(of: "\"labels\"")?.upperBound ?? text.startIndex
        func position(_ key: String) -> Int {
            guard let r = text.range(of: "\"\(key)\"", range: start..<text.endIndex) else { return Int.max }
            return text.distance(from: text.startIndex, to: r.lowerBound)
        }
        return keys.sorted { (position($0), $0) < (position($1), $1) }
    }

    private func checkLabels() throws {
        guard labels.values.contains(.value(0)) else { throw DataError("labels must include background = 0") }
        if let ignore = labels["ignore"] {
            guard case .value(let v) = ignore else { throw DataError("labels: the ignore label must be one integer") }
            let top = labels.filter { $0.key != "ignore" }.values.flatMap(\.values).max() ?? 0
            guard v > top else { throw DataError("labels: the ignore label (\(v)) must be higher than every other label (\(top))") }
        }
        if hasRegions {
            let count = regions.count
            guard let order = regions_class_order, order.count == count else {
                throw DataError("labels are regions (lists of values): \"regions_class_order\" must give one label per region (\(count))")
            }
        }
    }

    /// Writes with sorted keys (MedSeg writes plain labels only; a region data set's label order
    /// lives in its own file).
    public func write(to url: URL) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try encoder.encode(self).write(to: url, options: .atomic)
    }
}
