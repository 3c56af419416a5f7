import Foundation

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
