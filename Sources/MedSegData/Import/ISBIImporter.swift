import Foundation

/// ISBI 2012 EM segmentation challenge (neuronal structures, Drosophila VNC):
///
///     train-volume.tif   30-page 512x512 8-bit stack
///     train-labels.tif   30 pages, cells (and mitochondria) 255, membranes 0
///     test-volume.tif    30 pages, no labels (optional)
///
/// Each page becomes one 2D case (train_00 ... train_29 in imagesTr/labelsTr, test_00 ... in
/// imagesTs); label 1 = cell (white), 0 = membrane. The PNG export that U-Net tutorials ship
/// (train/image/0.png + train/label/0.png, test/0.png) is accepted too (cases train_0, test_0, ...).
enum ISBIImporter {
    static func run(_ sink: ImportSink) throws {
        sink.labels = ["background": 0, "cell": 1]
        sink.grayName = "EM"
        sink.name = "ISBI2012"
        sink.datasetDescription = "ISBI 2012 EM segmentation challenge (cells 1, membranes 0), imported by medseg"
        let names = ImportIO.list(sink.source) ?? []
        if let volume = find("train-volume", names) {
            try stacks(sink, volume: volume, names: names)
        } else if ImportIO.isFolder(sink.source.appendingPathComponent("train/image")) {
            try pngFolders(sink)
        } else {
            throw DataError(file: sink.source, "not an ISBI 2012 folder: expected train-volume.tif and train-labels.tif "
                            + "(multi-page stacks), or sub-folders train/image/ and train/label/")
        }
    }

    private static func find(_ stem: String, _ names: [String]) -> String? {
        names.first { ImageIO.stem(of: URL(fileURLWithPath: $0)) == stem && [".tif", ".tiff"].contains(ImageIO.fileEnding(of: URL(fileURLWithPath: $0))) }
    }

    private static func stacks(_ sink: ImportSink, volume: String, names: [String]) throws {
        let volumeURL = sink.source.appendingPathComponent(volume)
        guard let labelsName = find("train-labels", names) else {
            throw DataError(file: sink.source, "not an ISBI 2012 folder: expected train-labels.tif next to \(volume)")
        }
        let labelsURL = sink.source.appendingPathComponent(labelsName)
        let images = try ImportIO.read(volumeURL)
        let labels = ImportIO.binarize(try ImportIO.read(labelsURL))
        guard images.size.prefix(2) == labels.size.prefix(2) else {
            throw DataError(file: labelsURL, "pages are \(labels.size.prefix(2).map(String.init).joined(separator: "x")) but \(volume)'s are "
                            + images.size.prefix(2).map(String.init).joined(separator: "x"))
        }
        let imagePages = images.dims == 3 ? images.size[2] : 1
        let labelPages = labels.dims == 3 ? labels.size[2] : 1
        var test: MedicalImage?
        var testURL: URL?
        if let testName = find("test-volume", names) {
            testURL = sink.source.appendingPathComponent(testName)
            do { test = try ImportIO.read(testURL!) } catch let error as DataError {
                sink.skip(testURL!, unreadable: error)
            }
        }
        let testPages = test.map { $0.dims == 3 ? $0.size[2] : 1 } ?? 0
        sink.total = imagePages + testPages
        let width = max(2, String(max(imagePages, testPages) - 1).count)
        func id(_ prefix: String, _ z: Int) -> String {
            prefix + "_" + String(repeating: "0", count: max(0, width - String(z).count)) + String(z)
        }
        for z in 0..<imagePages {
            defer { sink.step() }
            guard z < labelPages else {
                sink.skip(volumeURL, "page \(z) has no label page (\(labelsName) has \(labelPages))")
                continue
            }
            try sink.add(identifier: id("train", z), image: ImportIO.page(images, z), label: ImportIO.page(labels, z), from: volumeURL)
        }
        if labelPages > imagePages {
            sink.skip(labelsURL, "pages \(imagePages)-\(labelPages - 1) have no image page (\(volume) has \(imagePages))")
        }
        if let test, let testURL {
            for z in 0..<testPages {
                defer { sink.step() }
                try sink.add(identifier: id("test", z), image: ImportIO.page(test, z), label: nil, test: true, from: testURL)
            }
        }
    }

    /// train/image/N.png + train/label/N.png, test/N.png (prediction outputs N_predict.png ignored).
    private static func pngFolders(_ sink: ImportSink) throws {
        let imageFolder = sink.source.appendingPathComponent("train/image")
        let labelFolder = sink.source.appendingPathComponent("train/label")
        guard let labelNames = ImportIO.list(labelFolder) else {
            throw DataError(file: sink.source, "not an ISBI 2012 folder: expected sub-folder train/label/ next to train/image/")
        }
        let imageNames = (ImportIO.list(imageFolder) ?? []).filter(ImportIO.isImage)
        let testFolder = sink.source.appendingPathComponent("test")
        let testNames = (ImportIO.list(testFolder) ?? []).filter {
            ImportIO.isImage($0) && !ImageIO.stem(of: URL(fileURLWithPath: $0)).hasSuffix("_predict")
        }
        sink.total = imageNames.count + testNames.count
        var paired: Set<String> = []
        for name in imageNames {
            defer { sink.step() }
            let url = imageFolder.appendingPathComponent(name)
            let stem = ImageIO.stem(of: url)
            guard let labelName = ImportIO.find(stem, in: labelNames) else {
                sink.skip(url, "no label \(stem).png in train/label/")
                continue
            }
            paired.insert(labelName)
            let image: MedicalImage, label: MedicalImage
            do {
                image = try ImportIO.read(url)
                label = ImportIO.binarize(try ImportIO.read(labelFolder.appendingPathComponent(labelName)))
            } catch let error as DataError {
                sink.skip(url, unreadable: error)
                continue
            }
            try sink.add(identifier: "train_" + stem, image: image, label: label, from: url)
        }
        for name in labelNames where ImportIO.isImage(name) && !paired.contains(name) {
            sink.skip(labelFolder.appendingPathComponent(name), "label without image in train/image/")
        }
        for name in testNames {
            defer { sink.step() }
            let url = testFolder.appendingPathComponent(name)
            let image: MedicalImage
            do { image = try ImportIO.read(url) } catch let error as DataError {
                sink.skip(url, unreadable: error)
                continue
            }
            try sink.add(identifier: "test_" + ImageIO.stem(of: url), image: image, label: nil, test: true, from: url)
        }
    }
}
