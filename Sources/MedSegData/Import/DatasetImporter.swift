import Foundation

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
