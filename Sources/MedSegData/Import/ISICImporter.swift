import Foundation

/// ISIC 2017 and 2018 lesion segmentation (Task 1) as published by the ISIC archive:
///
///     ISIC-2017_Training_Data/ISIC_0000000.jpg (+ ISIC_0000000_superpixels.png, metadata CSV: ignored)
///     ISIC-2017_Training_Part1_GroundTruth/ISIC_0000000_segmentation.png
///     ISIC-2017_Validation_Data/ + ISIC-2017_Validation_Part1_GroundTruth/     (optional)
///     ISIC-2017_Test_v2_Data/ + ISIC-2017_Test_v2_Part1_GroundTruth/           (optional)
///
///     ISIC2018_Task1-2_Training_Input/ISIC_0000000.jpg
///     ISIC2018_Task1_Training_GroundTruth/ISIC_0000000_segmentation.png
///     ISIC2018_Task1-2_Validation_Input/ + ISIC2018_Task1_Validation_GroundTruth/  (optional)
///     ISIC2018_Task1-2_Test_Input/ + ISIC2018_Task1_Test_GroundTruth/              (optional)
///
/// The training split goes to imagesTr/labelsTr; validation and test go to imagesTs with their
/// masks (when published) in labelsTs — or, with `validationAsTraining`, validation joins the
/// training cases. Identifiers are the ISIC ids; images are RGB (channels R, G, B), masks 0/255 → {0, 1}.
enum ISICImporter {
    enum Role { case training, validation, test }

    struct Split {
        let images: String
        let masks: String
        let role: Role
    }

    static func splits(year: Int) -> [Split] {
        if year == 2017 {
            return [Split(images: "ISIC-2017_Training_Data", masks: "ISIC-2017_Training_Part1_GroundTruth", role: .training),
                    Split(images: "ISIC-2017_Validation_Data", masks: "ISIC-2017_Validation_Part1_GroundTruth", role: .validation),
                    Split(images: "ISIC-2017_Test_v2_Data", masks: "ISIC-2017_Test_v2_Part1_GroundTruth", role: .test)]
        }
        return [Split(images: "ISIC2018_Task1-2_Training_Input", masks: "ISIC2018_Task1_Training_GroundTruth", role: .training),
                Split(images: "ISIC2018_Task1-2_Validation_Input", masks: "ISIC2018_Task1_Validation_GroundTruth", role: .validation),
                Split(images: "ISIC2018_Task1-2_Test_Input", masks: "ISIC2018_Task1_Test_GroundTruth", role: .test)]
    }

    struct Entry {
        let id: String
        let image: URL
        let mask: URL?
        let test: Bool
    }

    static func run(year: Int, _ sink: ImportSink) throws {
        sink.labels = ["background": 0, "lesion": 1]
        sink.channelNames = ["R", "G", "B"]
        sink.name = "ISIC\(year)"
        sink.datasetDescription = "ISIC \(year) skin lesion segmentation (Task 1), imported by medseg"
        let all = splits(year: year)
        let training = all[0]
        guard let trainImages = ImportIO.subfolder(sink.source, training.images) else {
            throw DataError(file: sink.source, "not an ISIC \(year) folder: expected sub-folder \(training.images)/ with ISIC_0000000.jpg images "
                            + "and \(training.masks)/ with ISIC_0000000_segmentation.png masks")
        }
        guard let trainMasks = ImportIO.subfolder(sink.source, training.masks) else {
            throw DataError(file: sink.source, "not an ISIC \(year) folder: expected sub-folder \(training.masks)/ with "
                            + "ISIC_0000000_segmentation.png masks next to \(training.images)/")
        }
        var entries = pair(images: trainImages, masks: trainMasks, needMasks: true, test: false, sink)
        for split in all.dropFirst() {
            guard let images = ImportIO.subfolder(sink.source, split.images) else {
                if ImportIO.subfolder(sink.source, split.masks) != nil {
                    sink.warn("\(split.masks)/ has no images folder \(split.images)/ beside it: ignored")
                }
                continue
            }
            let masks = ImportIO.subfolder(sink.source, split.masks)
            let asTraining = split.role == .validation && sink.options.validationAsTraining
            if asTraining && masks == nil {
                sink.warn("\(split.images)/: no \(split.masks)/, so the validation split cannot join training; imported as test cases")
            }
            entries += pair(images: images, masks: masks, needMasks: asTraining && masks != nil,
                            test: !(asTraining && masks != nil), sink)
        }
        sink.total = entries.count
        for entry in entries {
            defer { sink.step() }
            let image: MedicalImage, label: MedicalImage?
            do {
                image = try ImportIO.read(entry.image)
                label = try entry.mask.map { ImportIO.binarize(try ImportIO.read($0)) }
            } catch let error as DataError {
                sink.skip(entry.image, unreadable: error)
                continue
            }
            try sink.add(identifier: entry.id, image: image, label: label, test: entry.test, from: entry.image)
        }
    }

    /// "ISIC_0000000" for ISIC names: "ISIC_" and digits.
    static func isID(_ stem: String) -> Bool {
        stem.hasPrefix("ISIC_") && stem.count > 5 && stem.dropFirst(5).allSatisfy(\.isNumber)
    }

    /// Images of one split matched with their `_segmentation` masks; everything that does not pair
    /// is reported. `needMasks`: an image without a mask is skipped (else imported without label).
    static func pair(images: URL, masks: URL?, needMasks: Bool, test: Bool, _ sink: ImportSink) -> [Entry] {
        var maskByID: [String: URL] = [:]
        if let masks {
            for name in ImportIO.list(masks) ?? [] where ImportIO.isImage(name) {
                let url = masks.appendingPathComponent(name)
                let stem = ImageIO.stem(of: url)
                guard stem.hasSuffix("_segmentation"), isID(String(stem.dropLast("_segmentation".count))) else {
                    sink.skip(url, "not an ISIC mask name (ISIC_0000000_segmentation.png)")
                    continue
                }
                maskByID[String(stem.dropLast("_segmentation".count))] = url
            }
        }
        var entries: [Entry] = []
        var seen: Set<String> = []
        for name in ImportIO.list(images) ?? [] where ImportIO.isImage(name) {
            let url = images.appendingPathComponent(name)
            let stem = ImageIO.stem(of: url)
            if stem.hasSuffix("_superpixels") { continue }  // ISIC 2017's superpixel maps, not images
            guard isID(stem) else {
                sink.skip(url, "not an ISIC image name (ISIC_0000000.jpg)")
                continue
            }
            guard !seen.contains(stem) else {
                sink.skip(url, "second image for \(stem)")
                continue
            }
            seen.insert(stem)
            let mask = maskByID[stem]
            if mask == nil, let masks {
                if needMasks {
                    sink.skip(url, "no mask \(stem)_segmentation.png in \(sink.relative(masks))/")
                    continue
                }
                sink.warn("\(sink.relative(url)): no mask \(stem)_segmentation.png in \(sink.relative(masks))/; imported without label")
            }
            entries.append(Entry(id: stem, image: url, mask: mask, test: test))
        }
        for (id, url) in maskByID.sorted(by: { $0.key < $1.key }) where !seen.contains(id) {
            sink.skip(url, "mask without image: no \(id).jpg in \(sink.relative(images))/")
        }
        return entries
    }
}
