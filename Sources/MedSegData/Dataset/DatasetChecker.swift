import Foundation

/// Validates a raw data set and lists every problem with the file it concerns.
public enum DatasetChecker {
    public struct Problem: CustomStringConvertible, Equatable, Sendable {
        public let file: String
        public let message: String
        public var description: String { "\(file): \(message)" }

        public init(file: String, message: String) { self.file = file; self.message = message }

        /// An error as a problem: a DataError's own file and problem, else `file` and the error.
        init(_ error: Error, file: String) {
            let data = error as? DataError
            self.init(file: data?.file ?? file, message: data?.problem ?? "\(error)")
        }
    }

    /// Throws when `check` finds anything: one line with the count, the first problem and the
    /// command that lists them all. Training and preprocessing refuse what `data check` refuses.
    public static func refuseProblems(in root: URL, workers: Int = 1) throws {
        let problems = check(root, workers: workers)
        guard let first = problems.first else { return }
        throw DataError("data set \(root.path) has \(problems.count) problem(s), first \(first); `medseg data check \(root.path)` lists them all")
    }

    /// Checks pairs, sizes, geometry, label values, channel counts and image contents; cases are
    /// read on `workers` threads (one case each at a time), problems listed in case order.
    public static func check(_ root: URL, workers: Int = 1) -> [Problem] {
        var problems: [Problem] = []
        let dataset: RawDataset
        do { dataset = try RawDataset(root) } catch {
            return [Problem(error, file: root.appendingPathComponent("dataset.json").path)]
        }
        let d = dataset.description
        let allowed = Set(d.labelValues.map(Float.init))
        let cases: [CaseFiles]
        do { cases = try dataset.trainingCases() } catch {
            return [Problem(error, file: dataset.labelsTr.path)]
        }
        if cases.isEmpty {
            problems.append(Problem(file: dataset.labelsTr.path, message: "no training cases: labelsTr holds no label with the data set's file ending \(d.file_ending)"))
        }
        if cases.count != d.numTraining {
            problems.append(Problem(file: "dataset.json", message: "numTraining is \(d.numTraining) but labelsTr holds \(cases.count) labels"))
        }
        // Images without a label.
        if let names = try? RawDataset.files(in: dataset.imagesTr, ending: d.file_ending) {
            let ids = Set(cases.map(\.identifier))
            for name in names {
                guard let (id, channel) = ChannelFileName.parse(String(name.dropLast(d.file_ending.count))) else {
                    problems.append(Problem(file: "imagesTr/\(name)", message: "image name has no channel number: name it CASE_0000\(d.file_ending) (CASE_0001, ... for more channels)"))
                    continue
                }
                if !ids.contains(id) { problems.append(Problem(file: "imagesTr/\(name)", message: "image has no label in labelsTr")) }
                else if channel >= d.channelCount {
                    problems.append(Problem(file: "imagesTr/\(name)", message: "channel \(channel) but dataset.json lists \(d.channelCount) channel(s)"))
                }
            }
        }
        let perCase = (try? Parallel.map(cases.count, workers: workers) { checkCase(cases[$0], description: d, allowed: allowed) }) ?? []
        return problems + perCase.joined()
    }

    /// The problems of one case's label and image files.
    static func checkCase(_ c: CaseFiles, description d: DatasetDescription, allowed: Set<Float>) -> [Problem] {
        var problems: [Problem] = []
        let labelName = "labelsTr/\(c.identifier)\(d.file_ending)"
        var label: MedicalImage?
        do { label = try ImageIO.read(c.label!) } catch { problems.append(Problem(file: labelName, message: "\(error)")) }
        if let label {
            // NaN is never equal to itself: counted apart, not put in the set.
            let values = Set(label.voxels.lazy.filter { !$0.isNaN })
            let unknown = values.subtracting(allowed).sorted().map { LabelValues.describe($0) }
                + (label.voxels.contains { $0.isNaN } ? ["NaN"] : [])
            if !unknown.isEmpty {
                problems.append(Problem(file: labelName, message: "label values [\(unknown.prefix(8).joined(separator: ", "))] are not in dataset.json labels \(d.labelValues)"))
            }
            if label.channels != 1 {
                problems.append(Problem(file: labelName, message: "label map has \(label.channels) channels, expected 1"))
            }
        }
        for (channel, url) in c.images.enumerated() {
            let name = "imagesTr/\(url.lastPathComponent)"
            guard FileManager.default.fileExists(atPath: url.path) else {
                problems.append(Problem(file: name, message: "missing: case \(c.identifier) needs channel \(channel)"))
                continue
            }
            let image: MedicalImage
            do { image = try ImageIO.read(url) } catch { problems.append(Problem(file: name, message: "\(error)")); continue }
            if image.voxels.contains(where: { !$0.isFinite }) {
                problems.append(Problem(file: name, message: "contains NaN or infinite values"))
            }
            if let lo = image.voxels.min(), lo == image.voxels.max() {
                problems.append(Problem(file: name, message: "image is constant (\(LabelValues.describe(lo))): empty or unreadable content"))
            }
            if image.channels != 1 && d.channelCount == 1 {
                problems.append(Problem(file: name, message: "image has \(image.channels) channels; split them into _0000, _0001, ... files and list them in channel_names"))
            }
            guard let label else { continue }
            if image.size != label.size {
                problems.append(Problem(file: name, message: "size \(image.size) differs from its label's \(label.size)"))
            } else if !sameGeometry(image.geometry, label.geometry) {
                problems.append(Problem(file: name, message: geometryMismatch(image.geometry, label.geometry)))
            }
        }
        return problems
    }

    /// The image's and label's spacing and origin, and both direction matrices when they differ.
    static func geometryMismatch(_ image: ImageGeometry, _ label: ImageGeometry) -> String {
        var text = "geometry (spacing \(image.spacing), origin \(image.origin)"
        var labelText = "(spacing \(label.spacing), origin \(label.origin)"
        let directionsDiffer = image.direction.count != label.direction.count
            || zip(image.direction, label.direction).contains { abs($0 - $1) > 1e-4 * max(1, abs($0)) }
        if directionsDiffer {
            text += ", direction \(matrix(image.direction))"
            labelText += ", direction \(matrix(label.direction))"
        }
        return text + ") differs from its label's " + labelText + ")"
    }

    /// A row-major square matrix as [[a, b], [c, d]] with values to 4 decimals.
    static func matrix(_ values: [Double]) -> String {
        let n = Int(Double(values.count).squareRoot().rounded())
        guard n > 0, n * n == values.count else { return "\(values)" }
        func f(_ v: Double) -> String { let r = (v * 10000).rounded() / 10000; return r == r.rounded() ? String(Int(r)) : String(r) }
        return "[" + (0..<n).map { r in "[" + (0..<n).map { f(values[r * n + $0]) }.joined(separator: ", ") + "]" }.joined(separator: ", ") + "]"
    }

    static func sameGeometry(_ a: ImageGeometry, _ b: ImageGeometry) -> Bool {
        func close(_ x: [Double], _ y: [Double], _ tol: Double) -> Bool {
            x.count == y.count && zip(x, y).allSatisfy { abs($0 - $1) <= tol * max(1, abs($0)) }
        }
        return close(a.spacing, b.spacing, 1e-4) && close(a.origin, b.origin, 1e-3) && close(a.direction, b.direction, 1e-4)
    }

}
