import Foundation

/// A coded concept of a DICOM code sequence: Code Value, Coding Scheme Designator, Code Meaning
/// (JSON keys as DICOM names them, as dcmqi's metadata files write them).
public struct CodedConcept: Codable, Equatable, Sendable {
    public var value: String
    public var scheme: String
    public var meaning: String

    public init(_ value: String, _ scheme: String, _ meaning: String) {
        self.value = value
        self.scheme = scheme
        self.meaning = meaning
    }

    enum CodingKeys: String, CodingKey {
        case value = "CodeValue", scheme = "CodingSchemeDesignator", meaning = "CodeMeaning"
    }
}

/// What a DICOM Segmentation says about one segment: its label and the segmented property's
/// category and type (what was segmented).
public struct SegmentDescription: Equatable, Sendable {
    public var label: String
    public var category: CodedConcept
    public var type: CodedConcept

    /// SNOMED CT's "Tissue" as category (DICOM CID 7150, Segmentation Property Categories) and as
    /// type (CID 7166, the types of that category): a pair the standard allows and 3D Slicer uses
    /// for a segment of unknown meaning. (SCT 91723000 "Anatomical structure" is not in CID 7150,
    /// whose "Anatomical Structure" is 123037004, and its types are named organs, not a generic one.)
    public static let genericCategory = CodedConcept("85756007", "SCT", "Tissue")
    public static let genericType = CodedConcept("85756007", "SCT", "Tissue")

    public init(label: String, category: CodedConcept = genericCategory, type: CodedConcept = genericType) {
        self.label = label
        self.category = category
        self.type = type
    }

    /// The segments of label values 1...count: each from `codes` where it describes the value,
    /// else named from `names` (a dataset.json's labels: value to name), else "Label N", with the
    /// generic codes.
    public static func segments(count: Int, names: [Int: String] = [:], codes: [Int: SegmentDescription] = [:]) -> [SegmentDescription] {
        (0..<max(count, 0)).map { i in
            let value = i + 1
            var segment = codes[value] ?? SegmentDescription(label: names[value] ?? "Label \(value)")
            if segment.label.isEmpty { segment.label = names[value] ?? "Label \(value)" }
            return segment
        }
    }

    /// The value-to-name map of a dataset.json's labels (background and region labels left out).
    public static func names(of dataset: DatasetDescription) -> [Int: String] {
        var names: [Int: String] = [:]
        for (name, label) in dataset.labels {
            if case .value(let v) = label, v > 0, name != "ignore" { names[v] = name }
        }
        return names
    }

    /// Reads segment codes from a JSON file: dcmqi's metadata (`segmentAttributes`, lists of
    /// objects with `labelID`) or an object keyed by label value; each entry has `SegmentLabel`,
    /// `SegmentedPropertyCategoryCodeSequence` and `SegmentedPropertyTypeCodeSequence`.
    public static func read(codes url: URL) throws -> [Int: SegmentDescription] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw DataError(file: url, "cannot read: \(error.localizedDescription)") }
        let root: Any
        do { root = try JSONSerialization.jsonObject(with: data) } catch { throw DataError(file: url, "not valid JSON") }
        var entries: [(Int, [String: Any], String)] = []
        if let object = root as? [String: Any], let groups = object["segmentAttributes"] {
            guard let lists = groups as? [[Any]] else { throw DataError(file: url, "segmentAttributes must be a list of lists of segments") }
            for (g, list) in lists.enumerated() {
                for (i, item) in list.enumerated() {
                    let place = "segmentAttributes[\(g)][\(i)]"
                    guard let entry = item as? [String: Any], let value = entry["labelID"] as? Int else {
                        throw DataError(file: url, "\(place) needs a whole-number labelID")
                    }
                    entries.append((value, entry, place))
                }
            }
        } else if let object = root as? [String: Any] {
            for (key, item) in object {
                guard let value = Int(key), let entry = item as? [String: Any] else {
                    throw DataError(file: url, "\"\(key)\": expected label values (\"1\", \"2\", ...) mapping to segment descriptions, or dcmqi's segmentAttributes")
                }
                entries.append((value, entry, "\"\(key)\""))
            }
        } else {
            throw DataError(file: url, "expected a JSON object (dcmqi's metadata or label values to segments)")
        }
        var codes: [Int: SegmentDescription] = [:]
        for (value, entry, place) in entries {
            guard (1...65535).contains(value) else { throw DataError(file: url, "\(place): label \(value) is not 1 to 65535") }
            guard codes[value] == nil else { throw DataError(file: url, "\(place): label \(value) is described twice") }
            func concept(_ key: String) throws -> CodedConcept {
                guard let item = entry[key] else { return key.contains("Category") ? genericCategory : genericType }
                guard let fields = item as? [String: Any], let v = fields["CodeValue"] as? String, let s = fields["CodingSchemeDesignator"] as? String,
                      let m = fields["CodeMeaning"] as? String, !v.isEmpty, !s.isEmpty, !m.isEmpty else {
                    throw DataError(file: url, "\(place).\(key) needs CodeValue, CodingSchemeDesignator and CodeMeaning (non-empty text)")
                }
                return CodedConcept(v, s, m)
            }
            codes[value] = SegmentDescription(label: entry["SegmentLabel"] as? String ?? "",
                                              category: try concept("SegmentedPropertyCategoryCodeSequence"),
                                              type: try concept("SegmentedPropertyTypeCodeSequence"))
        }
        return codes
    }
}
