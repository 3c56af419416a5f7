import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

/// `medseg data import KIND SRC --out DIR`: a public data set's published layout to the raw layout.
extension MaskLabels: ExpressibleByArgument {}

struct DataImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Convert a public data set (or an images/masks folder pair) into MedSeg's raw layout.",
        discussion: """
        KIND and the layout SRC must have:
        \(ImportKind.allCases.map { "  \($0.rawValue): \($0.expectedLayout)" }.joined(separator: "\n"))

        Colour images are split into channel files CASE_0000/_0001/_0002 (channel_names R, G, B); binary \
        masks become labels 0/1; held-out splits go to imagesTs with their masks in labelsTs. Files that \
        cannot be paired or read are skipped and listed. The result is checked as `medseg data check` does.
        """)

    @Argument(help: "Data set kind: \(ImportKind.allCases.map(\.rawValue).joined(separator: ", ")).",
              transform: { text in
                  guard let kind = ImportKind(rawValue: text.lowercased()) else {
                      throw ValidationError("unknown kind '\(text)'; choose one of \(ImportKind.allCases.map(\.rawValue).joined(separator: ", "))")
                  }
                  return kind
              })
    var kind: ImportKind

    @Argument(help: "The unpacked data set folder (folder kind: optional when --images and --masks are given).") var source: String?
    @Option(help: "Output data set folder.") var out: String
    @Option(help: "folder: images folder (default SRC/images); a relative path is looked up under SRC first.") var images: String?
    @Option(help: "folder: masks folder (default SRC/masks or SRC/labels); relative paths as for --images.") var masks: String?
    @Option(help: "folder: unlabelled images for imagesTs.") var testImages: String?
    @Option(parsing: .singleValue, help: "folder: suffix of mask names after the image's stem (repeatable; default _mask, _segmentation, _label, ...).")
    var maskSuffix: [String] = []
    @Option(help: "File ending to write: .png (2D) or .nii.gz (default: .png for 8/16-bit 2D data, .nii.gz otherwise).") var format: String?
    @Option(help: "Channel names for dataset.json, comma-separated (e.g. CT); default from the data set.") var channelNames: String?
    @Flag(help: "ISIC: put the labelled validation split into the training cases instead of imagesTs/labelsTs.") var validationIntoTraining = false
    @Option(help: "folder: masks with several whole-number values are 'binary' (foreground = value > 0) or 'multiclass' (each value a class); needed when a mask is ambiguous.")
    var labels: MaskLabels?
    @Flag(help: "Replace a data set already in --out.") var overwrite = false
    @Flag(help: "Do not check the result.") var noCheck = false

    func validate() throws {
        if kind != .folder && (images != nil || masks != nil || testImages != nil || !maskSuffix.isEmpty || labels != nil) {
            throw ValidationError("--images, --masks, --test-images, --mask-suffix and --labels apply to the folder kind only")
        }
        if source == nil && !(kind == .folder && images != nil && masks != nil) {
            throw ValidationError("Missing expected argument '<source>' (the folder kind may give --images and --masks instead)")
        }
    }

    func run() throws {
        // Without SRC, relative --images/--masks are taken as given and SRC is the images folder's parent.
        let sourceURL = source.map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: images ?? ".").standardizedFileURL.deletingLastPathComponent()
        func folder(_ path: String?) -> URL? {
            guard let path else { return nil }
            if !path.hasPrefix("/") {
                let inside = sourceURL.appendingPathComponent(path)
                if FileManager.default.fileExists(atPath: inside.path) { return inside }
            }
            return URL(fileURLWithPath: path)
        }
        let ending = format.map { $0.hasPrefix(".") ? $0.lowercased() : "." + $0.lowercased() }
        let progress = ProgressBar(label: "import")
        let options = ImportOptions(
            images: folder(images), masks: folder(masks), testImages: folder(testImages),
            maskSuffixes: maskSuffix.isEmpty ? nil : maskSuffix, fileEnding: ending,
            validationAsTraining: validationIntoTraining,
            channelNames: channelNames.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } },
            overwrite: overwrite, labels: labels,
            progress: { done, total in progress.update(done, total) })
        let outURL = URL(fileURLWithPath: out)
        let report = try DatasetImporter.run(kind: kind, source: sourceURL, out: outURL, options: options)
        progress.finish()
        print(report)
        guard !noCheck else { return }
        let problems = DatasetChecker.check(outURL)
        if problems.isEmpty {
            print("check: \(outURL.path) OK")
            return
        }
        for p in problems { FileHandle.standardError.write(Data("\(p)\n".utf8)) }
        FileHandle.standardError.write(Data("check: \(problems.count) problem(s) in \(outURL.path)\n".utf8))
        throw ExitCode(1)
    }
}
