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
        static let configuration = CommandConfiguration(abstract: "Convert an image between formats, keeping its geometry.")
        @Argument(help: "Input image, or folder of a DICOM series.") var input: String
        @Argument(help: "Output image; the format follows its ending.") var output: String
        @Option(help: "DICOM: the series (number or UID) of a folder holding several.") var series: String?

        func run() throws {
            let outURL = URL(fileURLWithPath: output)
            var inputs = InputFiles()
            inputs.add([URL(fileURLWithPath: input)] + ((try? DICOM.select(in: URL(fileURLWithPath: input), series: series))?.files ?? []),
                       as: "the input image")
            try inputs.refuseOverwriting(outURL, option: "output")
            let image = try ImageIO.read(URL(fileURLWithPath: input), series: series)
            try ImageIO.checkWritableGeometry(image, file: URL(fileURLWithPath: input))
            try FileManager.default.createDirectory(at: outURL.deletingLastPathComponent(), withIntermediateDirectories: true)
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
