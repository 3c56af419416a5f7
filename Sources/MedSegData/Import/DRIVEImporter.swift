import Foundation

/// DRIVE retinal vessels (Staal et al. 2004) as distributed:
///
///     training/images/21_training.tif          565x584 RGB
///     training/1st_manual/21_manual1.gif       vessels 255, background 0
///     training/mask/21_training_mask.gif       field of view (optional)
///     test/images/01_test.tif
///     test/1st_manual/01_manual1.gif           (in the full release; optional)
///     test/mask/01_test_mask.gif               (optional)
///
/// GIFs are read by `GIFImage` (giflib); PNG or TIFF replacements of the annotations (as some mirrors
/// ship) are accepted too. Training cases go to imagesTr/labelsTr, test cases to imagesTs with
/// their first observer's annotation in labelsTs. Field-of-view masks, which DRIVE's metrics are
/// computed within, are written as {0, 1} maps to fovTr/ and fovTs/ (not used for training).
/// Identifiers are the image names (21_training, 01_test).
enum DRIVEImporter {
    static func run(_ sink: ImportSink) throws {
        sink.labels = ["background": 0, "vessel": 1]
        sink.channelNames = ["R", "G", "B"]
        sink.name = "DRIVE"
        sink.datasetDescription = "DRIVE retinal vessel segmentation (first observer), imported by medseg"
        var root = sink.source
        if !ImportIO.isFolder(root.appendingPathComponent("training")), ImportIO.isFolder(root.appendingPathComponent("DRIVE/training")) {
            root = root.appendingPathComponent("DRIVE")
        }
        let training = root.appendingPathComponent("training")
        guard ImportIO.isFolder(training.appendingPathComponent("images")) else {
            throw DataError(file: sink.source, "not a DRIVE folder: expected sub-folder training/images/ (21_training.tif) "
                            + "with training/1st_manual/ (21_manual1.gif)")
        }
        guard ImportIO.isFolder(training.appendingPathComponent("1st_manual")) else {
            throw DataError(file: sink.source, "not a DRIVE folder: expected sub-folder training/1st_manual/ (21_manual1.gif) next to training/images/")
        }
        let test = root.appendingPathComponent("test")
        let trainingCases = cases(training, needManual: true, sink)
        let testCases = ImportIO.isFolder(test.appendingPathComponent("images")) ? cases(test, needManual: false, sink) : []
        sink.total = trainingCases.count + testCases.count
        for (c, isTest) in trainingCases.map({ ($0, false) }) + testCases.map({ ($0, true) }) {
            defer { sink.step() }
            let image: MedicalImage, label: MedicalImage?, fov: MedicalImage?
            do {
                image = try ImportIO.read(c.image)
                label = try c.manual.map { ImportIO.binarize(try ImportIO.read($0)) }
                fov = try c.fov.map { ImportIO.binarize(try ImportIO.read($0)) }
            } catch let error as DataError {
                sink.skip(c.image, unreadable: error)
                continue
            }
            guard try sink.add(identifier: c.id, image: image, label: label, test: isTest, from: c.image) else { continue }
            if let fov {
                if fov.size == image.size {
                    try sink.writeExtra(fov, folder: isTest ? "fovTs" : "fovTr", identifier: c.id)
                } else {
                    sink.warn("\(sink.relative(c.fov!)): field-of-view mask size differs from its image; not copied")
                }
            }
        }
    }

    struct Case {
        let id: String
        let image: URL
        let manual: URL?
        let fov: URL?
    }

    /// The cases of training/ or test/: images/NN_<split>.tif with 1st_manual/NN_manual1.* and mask/NN_<split>_mask.*.
    static func cases(_ split: URL, needManual: Bool, _ sink: ImportSink) -> [Case] {
        let images = split.appendingPathComponent("images")
        let manualFolder = split.appendingPathComponent("1st_manual")
        let maskFolder = split.appendingPathComponent("mask")
        let manualNames = (ImportIO.list(manualFolder) ?? []).filter(ImportIO.isImage)
        let maskNames = (ImportIO.list(maskFolder) ?? []).filter(ImportIO.isImage)
        var used: Set<String> = []
        var out: [Case] = []
        for name in (ImportIO.list(images) ?? []).filter(ImportIO.isImage) {
            let url = images.appendingPathComponent(name)
            let stem = ImageIO.stem(of: url)
            let number = String(stem.prefix { $0 != "_" })
            let manual = ImportIO.find("\(number)_manual1", in: manualNames)
            if manual == nil && needManual {
                sink.skip(url, "no annotation \(number)_manual1.gif in \(sink.relative(manualFolder))/")
                continue
            }
            if manual == nil && !manualNames.isEmpty {
                sink.warn("\(sink.relative(url)): no annotation \(number)_manual1.gif in \(sink.relative(manualFolder))/; imported without label")
            }
            if let manual { used.insert(manual) }
            let fov = ImportIO.find("\(stem)_mask", in: maskNames)
            if fov == nil && !maskNames.isEmpty {
                sink.warn("\(sink.relative(url)): no field-of-view mask \(stem)_mask.gif in \(sink.relative(maskFolder))/")
            }
            out.append(Case(id: stem, image: url, manual: manual.map { manualFolder.appendingPathComponent($0) },
                            fov: fov.map { maskFolder.appendingPathComponent($0) }))
        }
        for name in manualNames where !used.contains(name) {
            sink.skip(manualFolder.appendingPathComponent(name), "annotation without image in \(sink.relative(images))/")
        }
        return out
    }
}
