import Foundation

/// What an import did: counts, every source file it left out and why, and warnings.
public struct ImportReport: CustomStringConvertible, Sendable {
    public struct Skipped: Equatable, Sendable, CustomStringConvertible {
        /// The file (or case folder) left out, relative to SRC when it lies inside it.
        public let file: String
        public let reason: String
        public var description: String { "\(file): \(reason)" }
    }

    public let kind: ImportKind
    public let source: URL
    public let output: URL
    /// Cases written to imagesTr/labelsTr.
    public var trainingCases = 0
    /// Cases written to imagesTs.
    public var testCases = 0
    /// Test cases whose reference labels went to labelsTs.
    public var testLabels = 0
    public var skipped: [Skipped] = []
    public var warnings: [String] = []
    /// The dataset.json written.
    public var dataset: DatasetDescription?

    public init(kind: ImportKind, source: URL, output: URL) {
        self.kind = kind
        self.source = source
        self.output = output
    }

    /// A few lines: counts, channels, labels, then each skipped file with its reason and each warning.
    public var description: String {
        var lines = ["imported \(kind.rawValue) from \(source.path) into \(output.path): \(trainingCases) training case(s), "
                     + "\(testCases) test case(s)" + (testLabels > 0 ? " (\(testLabels) with labels in labelsTs)" : "")]
        if let d = dataset {
            let labels = d.labelOrder.map { "\($0)=\(d.labels[$0]!.values.map(String.init).joined(separator: ","))" }.joined(separator: " ")
            lines.append("  files \(d.file_ending), channels \(d.orderedChannelNames.joined(separator: " ")), labels \(labels)")
        }
        if !skipped.isEmpty {
            lines.append("skipped \(skipped.count):")
            lines += skipped.map { "  \($0)" }
        }
        if !warnings.isEmpty {
            lines.append("warnings:")
            lines += warnings.map { "  \($0)" }
        }
        return lines.joined(separator: "\n")
    }
}
