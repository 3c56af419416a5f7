import Foundation
import Torch

/// Collects cases for one import: writes them through RawDatasetWriter (made on the first case,
/// when the channel count and file ending are known) and keeps the report.
final class ImportSink {
    let kind: ImportKind
    let source: URL
    let out: URL
    let options: ImportOptions
    var report: ImportReport
    /// Label names and values for dataset.json.
    var labels: [String: Int] = ["background": 0, "foreground": 1]
    /// Channel names the importer knows (R, G, B for dermoscopy); nil: from the first image, R, G,
    /// B for colour and `grayName` for one channel.
    var channelNames: [String]?
    /// Name of a single channel; nil: "gray" in 2D, "image" in 3D.
    var grayName: String?
    var name: String?
    var datasetDescription: String?
    var reference: String?
    var licence: String?
    private(set) var writer: RawDatasetWriter?
    private var identifiers: Set<String> = []
    private var done = 0
    var total = 0

    init(kind: ImportKind, source: URL, out: URL, options: ImportOptions) throws {
        self.kind = kind
        self.source = source
        self.out = out
        self.options = options
        report = ImportReport(kind: kind, source: source, output: out)
        if let ending = options.fileEnding, !ImageIO.writableEndings.contains(ending) {
            throw DataError("\(Setting.named("format", value: ending)): writable endings are \(ImageIO.writableEndings.joined(separator: ", "))")
        }
        if out.path == source.path || (out.path.hasPrefix(source.path + "/") && kind != .folder) {
            throw DataError(file: out, "the output folder must not be or lie inside the source folder \(source.path)")
        }
        var inputs = [source]
        if kind == .folder {
            let folders = FolderImporter.folders(source: source, options: options)
            inputs += [folders.images] + [folders.masks, options.testImages?.standardizedFileURL].compactMap { $0 }
        }
        for input in inputs {
            for name in RawDatasetWriter.managedEntries {
                let path = out.appendingPathComponent(name).path
                if input.path == path || input.path.hasPrefix(path + "/") {
                    throw DataError(file: input, "lies inside the output data set's \(name); an import replaces it, so choose another \(Setting.named("out"))")
                }
            }
        }
        try checkOutput()
    }

    /// Refuses to mix into an existing data set unless `overwrite` is set (checked before anything
    /// is read, so a mistake costs nothing).
    private func checkOutput() throws {
        try RawDatasetWriter.refuseExistingDataset(in: out, overwrite: options.overwrite)
    }

    /// With `overwrite`, removes the old data set's folders and dataset.json; called when the first
    /// case is about to be written, so a source with the wrong layout leaves the old data set alone.
    private func clearOutput() throws {
        try RawDatasetWriter.removeExistingDataset(in: out)
    }

    /// `url` relative to SRC when it lies inside it.
    func relative(_ url: URL) -> String {
        let path = url.standardizedFileURL.path
        return path.hasPrefix(source.path + "/") ? String(path.dropFirst(source.path.count + 1)) : path
    }

    func skip(_ url: URL, _ reason: String) {
        report.skipped.append(.init(file: relative(url), reason: reason))
    }

    /// Skips `url` because it, or a file that belongs to it (its mask), could not be read.
    func skip(_ url: URL, unreadable error: DataError) {
        let what = error.file.map { $0 == url.path ? "" : relative(URL(fileURLWithPath: $0)) + ": " } ?? ""
        skip(url, "cannot read: \(what)\(error.problem)")
    }

    func warn(_ text: String) {
        report.warnings.append(text)
    }

    /// Counts a case towards the progress callback.
    func step() {
        done += 1
        options.progress?(done, max(total, done))
    }

    /// A usable identifier: the source name with path-unfriendly characters replaced.
    static func identifier(_ raw: String) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")
        let mapped = String(raw.map { allowed.contains($0) ? $0 : "_" })
        return mapped.isEmpty ? "case" : mapped
    }

    /// Writes a labelled case to imagesTr/labelsTr (or, with `test`, the image to imagesTs and its
    /// label, if any, to labelsTs). A case that cannot be written is skipped with the reason;
    /// returns whether it was written. Throws only when the data set itself cannot be made (the
    /// first case decides channels and file ending).
    @discardableResult
    func add(identifier raw: String, image: MedicalImage, label: MedicalImage?, test: Bool = false, from file: URL) throws -> Bool {
        let id = Self.identifier(raw)
        guard !identifiers.contains(id) else {
            skip(file, "duplicate case identifier \(id)")
            return false
        }
        let writer = try self.writer(for: image, file: file)
        do {
            let conformed = try conform(image, to: writer.channelNames.count, file: file)
            if let label, label.size != conformed.size {
                skip(file, "image size \(conformed.size.map(String.init).joined(separator: "x")) differs from its mask's "
                     + label.size.map(String.init).joined(separator: "x"))
                return false
            }
            let storable = try storable(conformed, ending: writer.fileEnding)
            if test {
                try writer.add(identifier: id, image: storable, label: nil)
                report.testCases += 1
                if let label {
                    try writeExtra(label, folder: "labelsTs", identifier: id)
                    report.testLabels += 1
                }
            } else {
                guard let label else { preconditionFailure("training case without label") }
                try writer.add(identifier: id, image: storable, label: label)
                report.trainingCases += 1
            }
            identifiers.insert(id)
            return true
        } catch let error as DataError {
            skip(file, error.problem)
        } catch {
            skip(file, "\(error)")
        }
        return false
    }

    /// Writes a label-like map (labelsTs, fovTr, ...) as uint8 next to the raw layout.
    func writeExtra(_ map: MedicalImage, folder: String, identifier: String) throws {
        guard let writer else { return }
        let dir = out.appendingPathComponent(folder)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var m = map
        m.pixelType = .uint8
        try ImageIO.write(m, to: dir.appendingPathComponent(Self.identifier(identifier) + writer.fileEnding))
    }

    private func writer(for image: MedicalImage, file: URL) throws -> RawDatasetWriter {
        if let writer { return writer }
        let colour = image.dims == 2 && (image.channels == 3 || image.channels == 4)
        let names: [String]
        if let given = options.channelNames ?? channelNames {
            names = given
            let expected = colour ? 3 : image.channels
            guard names.count == expected || image.channels == 1 && names.count == 3 else {
                throw DataError(file: file, "\(names.count) channel name(s) (\(names.joined(separator: ", "))) for an image with \(image.channels) channel(s)")
            }
        } else if colour {
            names = ["R", "G", "B"]
        } else if image.channels == 1 {
            names = [grayName ?? (image.dims == 2 ? "gray" : "image")]
        } else {
            names = (0..<image.channels).map { "channel\($0)" }
        }
        let eightOrSixteen: Set<PixelType> = [.uint8, .uint16, .rgb8, .rgba8]
        let ending = options.fileEnding ?? (image.dims == 2 && eightOrSixteen.contains(image.pixelType) ? ".png" : ".nii.gz")
        if image.dims == 3 && [".png", ".bmp"].contains(ending) {
            throw DataError(file: out, "\(ending) holds 2D images but \(relative(file)) is 3D; use \(Setting.named("format", value: ".nii.gz"))")
        }
        try clearOutput()
        let w = try RawDatasetWriter(root: out, channelNames: names, labels: labels, fileEnding: ending, name: name)
        writer = w
        return w
    }

    /// The image with the data set's channel count: gray repeated into RGB, RGBA without alpha.
    private func conform(_ image: MedicalImage, to channels: Int, file: URL) throws -> MedicalImage {
        if image.channels == channels { return image }
        let n = image.voxelCount
        if image.channels == 1 && channels == 3 {
            warn("\(relative(file)): gray image repeated into the data set's 3 colour channels")
            return MedicalImage(size: image.size, channels: 3, voxels: image.voxels + image.voxels + image.voxels,
                                pixelType: image.pixelType == .uint8 ? .rgb8 : image.pixelType, geometry: image.geometry)
        }
        if image.channels == 4 && channels == 3 {
            warn("\(relative(file)): alpha channel dropped")
            return MedicalImage(size: image.size, channels: 3, voxels: Array(image.voxels[0..<(3 * n)]),
                                pixelType: image.pixelType == .rgba8 ? .rgb8 : image.pixelType, geometry: image.geometry)
        }
        throw DataError("image has \(image.channels) channel(s), the data set has \(channels) (from its first case)")
    }

    /// Checks that 2D-only formats can hold the values (8/16-bit whole numbers).
    private func storable(_ image: MedicalImage, ending: String) throws -> MedicalImage {
        guard [".png", ".bmp"].contains(ending), ![.uint8, .uint16, .rgb8, .rgba8].contains(image.pixelType) else { return image }
        let whole = image.voxels.allSatisfy { $0 == $0.rounded() && $0 >= 0 && $0 <= 65535 }
        guard whole else {
            throw DataError("\(image.pixelType.rawValue) values do not fit a \(ending) file; import with \(Setting.named("format", value: ".nii.gz"))")
        }
        return image
    }

    /// Writes dataset.json and completes the report.
    func finish() throws -> ImportReport {
        guard let writer, report.trainingCases > 0 else {
            let reasons = report.skipped.prefix(3).map { $0.description }.joined(separator: "; ")
            throw DataError(file: source, "no training cases imported (\(kind.rawValue) layout: \(kind.expectedLayout))"
                            + (reasons.isEmpty ? "" : "; skipped \(report.skipped.count): \(reasons)"))
        }
        var d = try writer.finish(description: datasetDescription)
        if d.labels != labels.mapValues({ .value($0) }) || reference != nil || licence != nil {
            d.labels = labels.mapValues { .value($0) }
            d.labelOrder = DatasetDescription.defaultOrder(d.labels)
            d.reference = reference
            d.licence = licence
            try d.write(to: out.appendingPathComponent("dataset.json"))
        }
        report.dataset = d
        return report
    }
}
