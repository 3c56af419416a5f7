import Foundation

/// The public data sets `medseg data import` knows, plus `folder` for any images/masks pair of folders.
public enum ImportKind: String, CaseIterable, Sendable {
    case isic2017, isic2018, ph2, isbi2012, drive, msd, folder

    /// What SRC must look like, for help texts and errors.
    public var expectedLayout: String {
        switch self {
        case .isic2017:
            return "ISIC-2017_Training_Data/ISIC_0000000.jpg + ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png "
                + "(optional ISIC-2017_Validation_* and ISIC-2017_Test_v2_* pairs)"
        case .isic2018:
            return "ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg + ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png "
                + "(optional ISIC2018_Task1-2_Validation_Input, ISIC2018_Task1-2_Test_Input and their ISIC2018_Task1_*_GroundTruth)"
        case .ph2:
            return "PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp + IMD002/IMD002_lesion/IMD002_lesion.bmp"
        case .isbi2012:
            return "train-volume.tif + train-labels.tif (multi-page stacks, cells 255, membranes 0), optional test-volume.tif; "
                + "or train/image/N.png + train/label/N.png (+ test/N.png)"
        case .drive:
            return "training/images/21_training.tif + training/1st_manual/21_manual1.gif (+ training/mask/21_training_mask.gif), "
                + "test/images/01_test.tif (+ test/1st_manual/01_manual1.gif, test/mask/01_test_mask.gif)"
        case .msd:
            return "a Decathlon task folder (Task03_Liver): dataset.json with modality, labels, training [{image, label}], test; "
                + "imagesTr/liver_0.nii.gz, labelsTr/liver_0.nii.gz, imagesTs/"
        case .folder:
            return "--images DIR and --masks DIR (default SRC/images and SRC/masks); masks named like their image, "
                + "optionally with a suffix such as _mask, _segmentation or _label"
        }
    }
}

/// Choices for an import; the defaults suit every kind.
public struct ImportOptions {
    /// `folder`: the images (default SRC/images). Relative paths are looked up under SRC first.
    public var images: URL?
    /// `folder`: the masks (default SRC/masks, else SRC/labels).
    public var masks: URL?
    /// `folder`: unlabelled images for imagesTs.
    public var testImages: URL?
    /// `folder`: mask name suffixes to try after the image's stem; nil = `FolderImporter.defaultMaskSuffixes`.
    public var maskSuffixes: [String]?
    /// Ending of the written files; nil = ".png" for 8/16-bit 2D data, ".nii.gz" otherwise.
    public var fileEnding: String?
    /// ISIC: put the labelled validation split into imagesTr/labelsTr instead of imagesTs/labelsTs.
    public var validationAsTraining = false
    /// Channel names for dataset.json (`folder`; default R, G, B for colour, "gray" for 2D, "image" for 3D).
    public var channelNames: [String]?
    /// Replace a data set already in the output folder.
    public var overwrite = false
    /// `folder`: how masks with several whole-number values are read; nil = only unambiguous masks
    /// (0/1, 0/255, colour palettes, instance maps) are accepted.
    public var labels: MaskLabels?
    /// Called after each case with (done, total).
    public var progress: ((Int, Int) -> Void)?

    public init(images: URL? = nil, masks: URL? = nil, testImages: URL? = nil, maskSuffixes: [String]? = nil,
                fileEnding: String? = nil, validationAsTraining: Bool = false, channelNames: [String]? = nil,
                overwrite: Bool = false, labels: MaskLabels? = nil, progress: ((Int, Int) -> Void)? = nil) {
        self.labels = labels
        self.images = images
        self.masks = masks
        self.testImages = testImages
        self.maskSuffixes = maskSuffixes
        self.fileEnding = fileEnding
        self.validationAsTraining = validationAsTraining
        self.channelNames = channelNames
        self.overwrite = overwrite
        self.progress = progress
    }
}

/// How the folder importer reads masks with several whole-number values.
public enum MaskLabels: String, CaseIterable, Sendable {
    /// Foreground = value > 0.
    case binary
    /// Each value is a class.
    case multiclass
}

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

/// Converts a public data set's published folder layout into MedSeg's raw layout (nnU-Net v2:
/// imagesTr/CASE_0000.ext, labelsTr/CASE.ext, imagesTs/, dataset.json).
///
/// Rules shared by every importer:
/// - Colour images are split into one file per channel (`CASE_0000` R, `_0001` G, `_0002` B) and
///   dataset.json lists channel_names {"0": "R", "1": "G", "2": "B"}, as MSD's 4D images are split
///   into modalities: every case then has exactly one file per listed channel, which RawDataset,
///   CaseReader, DatasetChecker and `medseg predict` all expect. Gray images of a colour data set
///   are repeated into three channels and RGBA drops alpha (with a warning).
/// - Binary masks become labels {0, 1}: values above half the mask's largest value are 1, which is
///   any non-zero value for clean 0/1 or 0/255 masks and ignores JPEG artefacts. Colour masks use
///   their brightest channel.
/// - Case identifiers come from the source names (ISIC_0000000, IMD002, 21_training, liver_0).
/// - A source file that cannot be paired, read or matched is skipped and listed in the report with
///   its reason; held-out splits go to imagesTs with their reference masks in labelsTs.
/// - SRC without the expected layout is a DataError naming SRC and the expected sub-folder or file.
public enum DatasetImporter {
    public static func run(kind: ImportKind, source: URL, out: URL, options: ImportOptions = ImportOptions()) throws -> ImportReport {
        let source = source.standardizedFileURL
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: source.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw DataError(file: source, "no such folder (expected \(kind.rawValue) layout: \(kind.expectedLayout))")
        }
        let sink = try ImportSink(kind: kind, source: source, out: out.standardizedFileURL, options: options)
        switch kind {
        case .isic2017: try ISICImporter.run(year: 2017, sink)
        case .isic2018: try ISICImporter.run(year: 2018, sink)
        case .ph2: try PH2Importer.run(sink)
        case .isbi2012: try ISBIImporter.run(sink)
        case .drive: try DRIVEImporter.run(sink)
        case .msd: try MSDImporter.run(sink)
        case .folder: try FolderImporter.run(sink)
        }
        return try sink.finish()
    }
}

// MARK: - Shared machinery

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
            throw DataError("--format \(ending): writable endings are \(ImageIO.writableEndings.joined(separator: ", "))")
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
                    throw DataError(file: input, "lies inside the output data set's \(name); an import replaces it, so choose another --out")
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
            throw DataError(file: out, "\(ending) holds 2D images but \(relative(file)) is 3D; use --format .nii.gz")
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
            throw DataError("\(image.pixelType.rawValue) values do not fit a \(ending) file; import with --format .nii.gz")
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

// MARK: - Shared helpers

enum ImportIO {
    /// Reads any image MedSeg knows, and GIF (DRIVE).
    static func read(_ url: URL, palette: PaletteMode = .rgb) throws -> MedicalImage {
        if ImageIO.fileEnding(of: url) == ".gif" { return try GIFImage.read(url, palette: palette) }
        return try ImageIO.read(url, palette: palette)
    }

    /// Endings the importers accept for source images and masks.
    static let endings = ImageIO.readableEndings + [".gif"]

    static func isImage(_ name: String) -> Bool {
        !name.hasPrefix(".") && endings.contains(ImageIO.fileEnding(of: URL(fileURLWithPath: name)))
    }

    /// An image file, or a folder of a DICOM series (the `folder` importer's images may be either).
    static func isImageOrSeries(_ name: String, in folder: URL) -> Bool {
        isImage(name) || (!name.hasPrefix(".") && DICOM.isSeriesFolder(folder.appendingPathComponent(name)))
    }

    /// Names in a folder, sorted, without hidden and macOS `._` files; nil when it is not a folder.
    static func list(_ folder: URL) -> [String]? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDirectory), isDirectory.boolValue,
              let names = try? FileManager.default.contentsOfDirectory(atPath: folder.path) else { return nil }
        return names.filter { !$0.hasPrefix(".") }.sorted()
    }

    static func isFolder(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// The folder `name` in `root`, or that folder's own same-named sub-folder when an archive
    /// unpacked one level deeper (ISIC-2017_Training_Data/ISIC-2017_Training_Data/).
    static func subfolder(_ root: URL, _ name: String) -> URL? {
        let url = root.appendingPathComponent(name)
        guard isFolder(url) else { return nil }
        let nested = url.appendingPathComponent(name)
        return isFolder(nested) ? nested : url
    }

    /// A binary mask as labels {0, 1}: values above half the largest value are 1 (any non-zero for
    /// 0/1 and clean 0/255 masks; JPEG artefacts fall away). Colour masks use their brightest channel.
    /// Foreground = value > 0 (instance maps, 0/255 masks).
    static func foreground(_ mask: MedicalImage) -> MedicalImage {
        MedicalImage(size: mask.size, voxels: mask.voxels.map { $0 > 0 ? 1 : 0 }, pixelType: .uint8, geometry: mask.geometry)
    }

    static func binarize(_ mask: MedicalImage) -> MedicalImage {
        let n = mask.voxelCount
        var values = mask.voxels
        if mask.channels > 1 {
            values = (0..<n).map { p in (0..<mask.channels).map { mask.voxels[$0 * n + p] }.max()! }
        }
        let top = values.max() ?? 0
        let threshold = top > 1 ? top / 2 : 0
        return MedicalImage(size: mask.size, voxels: values.map { $0 > threshold ? 1 : 0 }, pixelType: .uint8, geometry: mask.geometry)
    }

    /// One z slice of a [x, y, z] stack as a 2D image.
    static func page(_ stack: MedicalImage, _ z: Int) -> MedicalImage {
        let plane = stack.size[0] * stack.size[1]
        let n = stack.voxelCount
        var voxels: [Float] = []
        voxels.reserveCapacity(plane * stack.channels)
        for c in 0..<stack.channels {
            voxels += stack.voxels[(c * n + z * plane)..<(c * n + (z + 1) * plane)]
        }
        return MedicalImage(size: [stack.size[0], stack.size[1]], channels: stack.channels, voxels: voxels,
                            pixelType: stack.pixelType, geometry: .identity(dims: 2))
    }

    /// Finds `stem` + any readable ending in a folder listing (the first in `endings` order).
    static func find(_ stem: String, in names: [String]) -> String? {
        let candidates = Set(names)
        for ending in endings {
            if candidates.contains(stem + ending) { return stem + ending }
            if candidates.contains(stem + ending.uppercased()) { return stem + ending.uppercased() }
        }
        return nil
    }
}
