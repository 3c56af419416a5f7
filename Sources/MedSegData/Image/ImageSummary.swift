import Foundation
import Torch

/// What `medseg data info` shows of an image: its header and the statistics of its voxels.
public struct ImageSummary: Sendable {
    public var size: [Int]
    public var channels: Int
    public var pixelType: PixelType
    public var geometry: ImageGeometry
    public var statistics: ImageStatistics

    public init(size: [Int], channels: Int, pixelType: PixelType, geometry: ImageGeometry, statistics: ImageStatistics) {
        self.size = size
        self.channels = channels
        self.pixelType = pixelType
        self.geometry = geometry
        self.statistics = statistics
    }

    /// The summary of an image already read.
    public init(_ image: MedicalImage) {
        self.init(size: image.size, channels: image.channels, pixelType: image.pixelType, geometry: image.geometry,
                  statistics: ImageStatistics(image.voxels))
    }
}

extension ImageIO {
    /// An image's summary. NIfTI files and TIFF stacks are streamed (an image of any size is
    /// inspected in constant memory); other images are read whole, after `MemoryBudget` allows it.
    public static func inspect(_ url: URL, series: String? = nil) throws -> ImageSummary {
        var isFolder: ObjCBool = false
        let folder = FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) && isFolder.boolValue
        let streamed = [".nii.gz", ".nii", ".hdr", ".hdr.gz", ".tif", ".tiff"]
        if series == nil, !folder, streamed.contains(fileEnding(of: url)) {
            if let problem = RegularFile.problem(url) { throw DataError(file: url, problem) }
            if [".tif", ".tiff"].contains(fileEnding(of: url)) {
                if let summary = try PlanarImages.inspectTIFF(url) { return summary }
            } else {
                return try NIfTI.inspect(url)
            }
        }
        return ImageSummary(try read(url, series: series))
    }
}
