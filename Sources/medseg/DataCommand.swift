import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Make, import, inspect, convert and check data sets (nnU-Net v2 raw layout).",
        subcommands: [Synth.self, DataImportCommand.self, Info.self, Convert.self, Check.self])

    struct Synth: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Write the built-in synthetic data set.")

        @Option(name: .customLong("dim"), help: "2 or 3 spatial dimensions.") var dims = 2
        @Option(help: "Labelled training cases.") var cases = 40
        @Option(help: "Test cases (imagesTs, with labels in labelsTs); default: a fifth of --cases.") var testCases: Int?
        @Option(help: "Foreground classes (default 1 in 2D, 2 in 3D).") var classes: Int?
        @Option(help: "Image size, x first, e.g. 128,128 or 64,64,32.", transform: parseInts) var size: [Int]?
        @Option(help: "File ending: .png or .nii.gz (2D), .nii.gz or .nrrd (3D).") var format: String?
        @Option(help: "Output folder.") var out: String
        @Option(help: "Random seed.") var seed: UInt64 = 0
        @Flag(help: "Replace a data set already in --out.") var overwrite = false

        func validate() throws {
            guard cases >= 1 else { throw ValidationError("--cases must be at least 1, got \(cases)") }
            if let testCases, testCases < 0 { throw ValidationError("--test-cases cannot be negative, got \(testCases)") }
        }

        func run() throws {
            let synth = try SyntheticCases(.init(dims: dims, size: size, classes: classes, seed: seed))
            let root = URL(fileURLWithPath: out)
            try RawDatasetWriter.refuseExistingDataset(in: root, overwrite: overwrite)
            try RawDatasetWriter.removeExistingDataset(in: root)
            let test = testCases ?? max(1, cases / 5)
            let progress = ProgressBar(label: "synth")
            let d = try synth.write(to: root, training: cases, test: test, fileEnding: format) { done, total in
                progress.update(done, total)
            }
            progress.finish()
            print("wrote \(d.numTraining) training and \(test) test cases (\(synth.options.size.map(String.init).joined(separator: "x")), \(d.file_ending)) to \(root.path)")
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show an image's shape, type, geometry, intensities and labels.")
        @Argument(help: "Image file, or folder of a DICOM series.") var file: String
        @Option(help: "DICOM: the series (number or UID) of a folder holding several.") var series: String?

        func run() throws {
            let url = URL(fileURLWithPath: file)
            // Streamed where the format allows: inspecting an image never needs it whole.
            let image = try ImageIO.inspect(url, series: series)
            let g = image.geometry
            func fmt(_ v: [Double]) -> String { "(" + v.map { String(format: "%.4g", $0) }.joined(separator: ", ") + ")" }
            print("file       \(url.lastPathComponent)")
            if DICOM.isSeriesFolder(url), let chosen = try? DICOM.select(in: url, series: series) { print("dicom      \(chosen.summary)") }
            print("size       \(image.size.map(String.init).joined(separator: " x ")) (x fastest), \(image.channels) channel(s)")
            print("type       \(image.pixelType.rawValue)")
            print("spacing    \(fmt(g.spacing))")
            print("origin     \(fmt(g.origin))")
            print("direction  \(fmt(g.direction))")
            if let a = g.niftiAffine { print("affine     \(fmt(a))") }
            let s = image.statistics
            let range = s.minimum.map { "min \($0)  max \(s.maximum!)" } ?? "no finite values"
            print("intensity  \(range)  mean \(String(format: "%.4g", s.mean ?? .nan))" + (s.nonFiniteCount > 0 ? "  (\(s.nonFiniteCount) NaN/inf)" : ""))
            if image.pixelType.isInteger, let counts = s.valueCounts {
                print("labels     " + counts.map { "\(Int($0.value)): \($0.count)" }.joined(separator: ", "))
            }
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Convert an image between formats, keeping its geometry; a label map to a DICOM Segmentation of a series, and back.",
            discussion: """
                medseg data convert LABELMAP OUT.dcm --reference SERIES_DIR [--labels dataset.json] [--segment-codes FILE]
                  writes a binary DICOM SEG (segment n = label n) referencing the series the label map was made on.
                medseg data convert SEG.dcm OUT.nii.gz [--reference SERIES_DIR]
                  reads a SEG back: on the series' grid with --reference, else on the grid its frames span.
                medseg data convert LABELMAP OUT.dcm --reference SERIES_DIR --format rtstruct [--labels dataset.json]
                  writes an RT Structure Set: each label a ROI, its contours the label's boundaries on every slice.
                """)
        @Argument(help: "Input image, folder of a DICOM series, or DICOM SEG file.") var input: String
        @Argument(help: "Output image; the format follows its ending (.dcm: a DICOM SEG, which needs --reference).") var output: String
        @Option(help: "DICOM: the series (number or UID) of a folder holding several (the input's, or --reference's).") var series: String?
        @Option(help: "DICOM SEG: the folder of the series the label map was segmented on.") var reference: String?
        @Option(help: "DICOM SEG or RT Structure Set: a dataset.json whose labels name the segments (ROIs).") var labels: String?
        @Option(help: "An output ending .dcm: seg (a DICOM Segmentation, the default) or rtstruct (an RT Structure Set).") var format: DICOMObjectFormat = .seg
        @Option(help: "DICOM SEG: segment labels and codes, as dcmqi's metadata JSON (segmentAttributes with labelID, SegmentLabel, SegmentedPropertyCategoryCodeSequence, SegmentedPropertyTypeCodeSequence); default: category and type SCT 85756007 Tissue.")
        var segmentCodes: String?

        /// What an output ending .dcm holds.
        enum DICOMObjectFormat: String, ExpressibleByArgument, CaseIterable { case seg, rtstruct }

        func run() throws {
            let inURL = URL(fileURLWithPath: input), outURL = URL(fileURLWithPath: output)
            var inputs = InputFiles()
            let referenceURL = reference.map { URL(fileURLWithPath: $0) }
            let referenceSeries = try referenceURL.map { try DICOM.select(in: $0, series: series) }
            inputs.add([inURL] + ((referenceSeries == nil ? try? DICOM.select(in: inURL, series: series) : nil)?.files ?? []), as: "the input image")
            inputs.add(referenceSeries?.files ?? [], as: "the --reference series")
            inputs.add([labels, segmentCodes].compactMap { $0 }.map { URL(fileURLWithPath: $0) }, as: "an option's file")
            try inputs.refuseOverwriting(outURL, option: "output")
            try FileManager.default.createDirectory(at: outURL.deletingLastPathComponent(), withIntermediateDirectories: true)
            if ImageIO.fileEnding(of: outURL) == ".dcm" {
                guard let referenceSeries else {
                    throw ValidationError("writing a DICOM \(format == .rtstruct ? "RT Structure Set" : "Segmentation") (\(output)) needs --reference SERIES_DIR: the series the label map was made on")
                }
                let labelMap = try ImageIO.read(inURL)
                let names = try labels.map { SegmentDescription.names(of: try DatasetDescription.load(URL(fileURLWithPath: $0))) } ?? [:]
                if format == .rtstruct {
                    let rois = RTStructureSet.rois(count: DICOMSegmentation.segmentCount(of: labelMap), names: names)
                    do {
                        let contours = try RTStructureSet.write(labels: labelMap, reference: referenceSeries, rois: rois, to: outURL)
                        print("wrote \(output) (\(rois.count) ROI(s), \(contours.reduce(0, +)) contour(s))")
                    } catch let error as DataError where error.file == nil {
                        throw DataError(file: inURL, error.problem)
                    }
                    return
                }
                let codes = try segmentCodes.map { try SegmentDescription.read(codes: URL(fileURLWithPath: $0)) } ?? [:]
                let segments = SegmentDescription.segments(count: DICOMSegmentation.segmentCount(of: labelMap), names: names, codes: codes)
                do {
                    try DICOMSegmentation.write(labels: labelMap, reference: referenceSeries, segments: segments, to: outURL)
                } catch let error as DataError where error.file == nil {
                    throw DataError(file: inURL, error.problem)
                }
                print("wrote \(output) (\(segments.count) segment(s))")
                return
            }
            guard format == .seg else { throw ValidationError("--format rtstruct writes an RT Structure Set: give an output ending .dcm") }
            guard reference == nil && labels == nil && segmentCodes == nil || DICOMSegmentation.isSegmentation(inURL) else {
                throw ValidationError("--reference, --labels and --segment-codes are for DICOM Segmentations: an output ending .dcm, or a SEG input")
            }
            if DICOMSegmentation.isSegmentation(inURL) {
                let image = try referenceSeries.map { try DICOMSegmentation.read(inURL, reference: try DICOM.read($0)) } ?? DICOMSegmentation.read(inURL)
                try ImageIO.write(image, to: outURL)
                print("wrote \(output)")
                return
            }
            let image = try ImageIO.read(inURL, series: series)
            try ImageIO.checkWritableGeometry(image, file: inURL)
            try ImageIO.write(image, to: outURL)
            print("wrote \(output)")
            if [".tif", ".tiff"].contains(ImageIO.fileEnding(of: outURL)) {
                let lost = PlanarImages.tiffLosses(image)
                if !lost.isEmpty {
                    FileHandle.standardError.write(Data("warning: \(output): TIFF keeps the x/y spacing (resolution tags) and the z spacing of gray stacks only; lost: \(lost.joined(separator: ", "))\n".utf8))
                }
            }
        }
    }

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Validate a data set and list every problem; exits non-zero when anything is wrong.")
        @Argument(help: "Data set folder (with dataset.json).") var folder: String

        func run() throws {
            let root = URL(fileURLWithPath: folder)
            let problems = DatasetChecker.check(root)
            if problems.isEmpty {
                let d = try RawDataset(root)
                print("\(root.path): OK (\(d.description.numTraining) training cases, \(d.description.channelCount) channel(s), labels \(d.description.labelValues))")
                return
            }
            for p in problems { FileHandle.standardError.write(Data("\(p)\n".utf8)) }
            FileHandle.standardError.write(Data("\(problems.count) problem(s) in \(root.path)\n".utf8))
            throw ExitCode(1)
        }
    }
}

/// Parses "128,128" or "64x64x32".
func parseInts(_ text: String) throws -> [Int] {
    let parts = text.split(whereSeparator: { $0 == "," || $0 == "x" || $0 == " " })
    let values = parts.compactMap { Int($0) }
    guard values.count == parts.count, !values.isEmpty else { throw ValidationError("expected integers like 128,128, got '\(text)'") }
    return values
}

/// A cross-validation fold: a number, or "all" (-1).
func parseFold(_ text: String) throws -> Int {
    if text == "all" { return -1 }
    guard let fold = Int(text), fold >= 0 else { throw ValidationError("'\(text)' is not a fold: give 0, 1, ... or all") }
    return fold
}
