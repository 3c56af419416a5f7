import Foundation

/// PH2 dermoscopy (Mendonça et al. 2013) as distributed (PH2Dataset.rar):
///
///     PH2 Dataset images/IMD002/IMD002_Dermoscopic_Image/IMD002.bmp
///     PH2 Dataset images/IMD002/IMD002_lesion/IMD002_lesion.bmp
///     PH2 Dataset images/IMD002/IMD002_roi/...          (colour-class ROIs: ignored)
///
/// SRC may be the unpacked `PH2Dataset` folder or `PH2 Dataset images` itself. Every case is a
/// training case (PH2 has no official test split); identifiers are the IMD numbers.
enum PH2Importer {
    static let imagesFolder = "PH2 Dataset images"

    static func run(_ sink: ImportSink) throws {
        sink.labels = ["background": 0, "lesion": 1]
        sink.channelNames = ["R", "G", "B"]
        sink.name = "PH2"
        sink.datasetDescription = "PH2 dermoscopic images with lesion masks, imported by medseg"
        let root: URL
        if let inner = ImportIO.subfolder(sink.source, imagesFolder) {
            root = inner
        } else if (ImportIO.list(sink.source) ?? []).contains(where: isCaseName) {
            root = sink.source
        } else {
            throw DataError(file: sink.source, "not a PH2 folder: expected sub-folder \"\(imagesFolder)\"/ with case folders "
                            + "IMD002/IMD002_Dermoscopic_Image/IMD002.bmp and IMD002/IMD002_lesion/IMD002_lesion.bmp")
        }
        let cases = (ImportIO.list(root) ?? []).filter { ImportIO.isFolder(root.appendingPathComponent($0)) }
        sink.total = cases.count
        for id in cases {
            defer { sink.step() }
            let folder = root.appendingPathComponent(id)
            guard isCaseName(id) else {
                sink.skip(folder, "not a PH2 case folder (IMDnnn)")
                continue
            }
            let imageFolder = folder.appendingPathComponent("\(id)_Dermoscopic_Image")
            let maskFolder = folder.appendingPathComponent("\(id)_lesion")
            guard let imageName = ImportIO.find(id, in: ImportIO.list(imageFolder) ?? []) else {
                sink.skip(folder, "no image \(id)_Dermoscopic_Image/\(id).bmp")
                continue
            }
            guard let maskName = ImportIO.find("\(id)_lesion", in: ImportIO.list(maskFolder) ?? []) else {
                sink.skip(folder, "no mask \(id)_lesion/\(id)_lesion.bmp")
                continue
            }
            let imageURL = imageFolder.appendingPathComponent(imageName)
            let image: MedicalImage, label: MedicalImage
            do {
                image = try ImportIO.read(imageURL)
                label = ImportIO.binarize(try ImportIO.read(maskFolder.appendingPathComponent(maskName)))
            } catch let error as DataError {
                sink.skip(folder, unreadable: error)
                continue
            }
            try sink.add(identifier: id, image: image, label: label, from: imageURL)
        }
    }

    /// "IMD" followed by digits.
    static func isCaseName(_ name: String) -> Bool {
        name.hasPrefix("IMD") && name.count > 3 && name.dropFirst(3).allSatisfy(\.isNumber)
    }
}
