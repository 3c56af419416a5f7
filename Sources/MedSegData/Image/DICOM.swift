import CDicom
import Foundation
import Torch

/// One DICOM series of a folder: the files sharing a SeriesInstanceUID.
public struct DICOMSeries: Sendable, Equatable {
    public let uid: String
    public let modality: String
    public let description: String
    /// Series Number as written (may be empty).
    public let number: String
    public let studyDate: String
    public let files: [URL]

    /// One line for listings, e.g. `series 3  CT  "Abdomen 5mm"  120 files  1.2.840.113619...`.
    public var summary: String {
        "series \(number.isEmpty ? "-" : number)  \(modality.isEmpty ? "?" : modality)  \"\(description)\"  \(files.count) file(s)  \(uid)"
    }

    /// Whether `choice` (a series number or the SeriesInstanceUID) names this series.
    public func matches(_ choice: String) -> Bool {
        choice == uid || (!number.isEmpty && Int(choice) != nil && Int(choice) == Int(number))
    }
}

/// Folders of DICOM series (CT, MR, PET) read through GDCM: slices sorted along the normal of
/// their orientation, rescale slope and intercept applied, geometry in DICOM's LPS patient space
/// (the same space `MedicalImage` uses, so a series written as NIfTI lands where dcm2niix puts it).
public enum DICOM {
    /// The series among the files directly in `folder` (empty when none is DICOM).
    public static func series(in folder: URL) throws -> [DICOMSeries] {
        var list: UnsafeMutablePointer<md_series>?
        var count: Int32 = 0
        guard md_scan_folder(folder.path, &list, &count) == 0 else {
            // Messages about a file in the folder name it already.
            let message = String(cString: md_last_error())
            throw message.hasPrefix(folder.path) ? DataError(message) : DataError(file: folder, message)
        }
        defer { md_free_series(list, count) }
        return (0..<Int(count)).map { i in
            let s = list![i]
            func text(_ p: UnsafeMutablePointer<CChar>?) -> String { p.map { String(cString: $0) } ?? "" }
            return DICOMSeries(uid: text(s.uid), modality: text(s.modality), description: text(s.description), number: text(s.series_number),
                               studyDate: text(s.study_date),
                               files: (0..<Int(s.file_count)).map { URL(fileURLWithPath: text(s.files[$0])) })
        }
    }

    /// Whether `url` is a folder holding DICOM files.
    public static func isSeriesFolder(_ url: URL) -> Bool {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else { return false }
        return ((try? series(in: url)) ?? []).isEmpty == false
    }

    /// The series of `folder` that `choice` (series number or UID) names, or its only series.
    /// A folder of several series without a choice is refused with the list to choose from.
    public static func select(in folder: URL, series choice: String?) throws -> DICOMSeries {
        let all = try series(in: folder)
        guard !all.isEmpty else { throw DataError(file: folder, "no DICOM files in this folder") }
        let listing = all.map { "  " + $0.summary }.joined(separator: "\n")
        if let choice {
            let matching = all.filter { $0.matches(choice) }
            guard matching.count == 1 else {
                throw DataError(file: folder, (matching.isEmpty ? "no series '\(choice)'" : "several series numbered \(choice); give the UID")
                                + "; its series:\n\(listing)")
            }
            return matching[0]
        }
        guard all.count == 1 else {
            throw DataError(file: folder, "holds \(all.count) DICOM series; choose one with \(Setting.named("series", value: "NUMBER")) or \(Setting.named("series", value: "UID")):\n\(listing)")
        }
        return all[0]
    }

    /// The series of `folder` (see `select`) as one volume.
    public static func read(folder: URL, series choice: String? = nil) throws -> MedicalImage {
        try read(select(in: folder, series: choice))
    }

    /// Reads a series: refuses colour images, mixed sizes or orientations, two slices at one place,
    /// uneven gaps and sheared (gantry-tilted) stacks, naming the file.
    public static func read(_ series: DICOMSeries) throws -> MedicalImage {
        var volume = md_volume()
        let paths = series.files.map { strdup($0.path) }
        defer { paths.forEach { free($0) } }
        let status = paths.map { UnsafePointer<CChar>($0) }.withUnsafeBufferPointer { md_read_series($0.baseAddress, Int32($0.count), &volume) }
        defer { md_free_volume(&volume) }
        guard status == 0 else { throw DataError(String(cString: md_last_error())) }
        let size = [Int(volume.size.0), Int(volume.size.1), Int(volume.size.2)]
        let voxels = Array(UnsafeBufferPointer(start: volume.voxels, count: size.reduce(1, *)))
        let geometry = ImageGeometry(spacing: [volume.spacing.0, volume.spacing.1, volume.spacing.2],
                                     origin: [volume.origin.0, volume.origin.1, volume.origin.2],
                                     direction: withUnsafeBytes(of: volume.direction) { Array($0.bindMemory(to: Double.self)) })
        return MedicalImage(size: size, voxels: voxels, pixelType: pixelType(of: volume), geometry: geometry)
    }

    /// The narrowest type that holds the rescaled values exactly (int16 for CT in HU).
    static func pixelType(of volume: md_volume) -> PixelType {
        guard volume.integer != 0 else { return .float32 }
        let lo = volume.minimum, hi = volume.maximum
        if volume.stored_bits == 8, lo >= 0, hi <= 255 { return .uint8 }
        if lo >= -32768, hi <= 32767 { return .int16 }
        if lo >= 0, hi <= 65535 { return .uint16 }
        if lo >= -2_147_483_648, hi <= 2_147_483_647 { return .int32 }
        return .float32
    }
}

extension ImageIO {
    /// Reads an image file or DICOM series folder; `series` (number or UID) picks one series of a
    /// folder that holds several, and is refused for anything but a DICOM folder.
    public static func read(_ url: URL, series: String?) throws -> MedicalImage {
        guard let series else { return try read(url) }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder), isFolder.boolValue else {
            throw DataError(file: url, "\(Setting.named("series", value: series)) picks a series of a DICOM folder; this is not a folder")
        }
        return try DICOM.read(folder: url, series: series)
    }
}
