import Foundation

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
