import Foundation
import Torch

/// A Medical Segmentation Decathlon task folder (Task03_Liver, Task01_BrainTumour, ...):
///
///     dataset.json   {"name", "description", "reference", "licence", "modality": {"0": "CT"},
///                     "labels": {"0": "background", "1": "liver", "2": "cancer"},
///                     "training": [{"image": "./imagesTr/liver_0.nii.gz", "label": "./labelsTr/liver_0.nii.gz"}],
///                     "test": ["./imagesTs/liver_132.nii.gz"]}
///     imagesTr/liver_0.nii.gz   3D, or 4D with one volume per modality (BrainTumour, Prostate)
///     labelsTr/liver_0.nii.gz
///     imagesTs/liver_132.nii.gz
///
/// As nnU-Net's Decathlon conversion does: 4D images are split into channel files (_0000, _0001,
/// ...), 3D images re-written (NIfTI, geometry kept), `modality` becomes channel_names and the
/// value→name `labels` become nnU-Net v2's name→value. macOS `._` files are ignored. Cases come
/// from dataset.json's lists (the folders when it has none); identifiers are the file names (liver_0).
enum MSDImporter {
    static func run(_ sink: ImportSink) throws {
        let jsonURL = sink.source.appendingPathComponent("dataset.json")
        guard FileManager.default.fileExists(atPath: jsonURL.path) else {
            throw DataError(file: sink.source, "not a Decathlon task folder: expected dataset.json (modality, labels, training) "
                            + "with imagesTr/ and labelsTr/ (e.g. Task03_Liver/)")
        }
        let object: Any
        do { object = try JSONSerialization.jsonObject(with: RegularFile.contents(jsonURL)) } catch {
            throw DataError(file: jsonURL, "not valid JSON (\(error.localizedDescription))")
        }
        guard let json = object as? [String: Any] else { throw DataError(file: jsonURL, "expected a JSON object") }
        let modalities = try channelNames(json, jsonURL)
        sink.channelNames = modalities
        sink.labels = try labels(json, jsonURL)
        sink.name = json["name"] as? String
        sink.datasetDescription = json["description"] as? String
        sink.reference = json["reference"] as? String
        sink.licence = (json["licence"] ?? json["license"]) as? String

        let training = try trainingPairs(json, sink, jsonURL)
        let test = testImages(json, sink)
        sink.total = training.count + test.count
        for (imageURL, labelURL) in training {
            defer { sink.step() }
            guard FileManager.default.fileExists(atPath: imageURL.path) else {
                sink.skip(imageURL, "listed in dataset.json but missing")
                continue
            }
            guard FileManager.default.fileExists(atPath: labelURL.path) else {
                sink.skip(imageURL, "its label \(sink.relative(labelURL)) is missing")
                continue
            }
            let image: MedicalImage, label: MedicalImage
            do {
                image = try ImageIO.read(imageURL)
                label = try ImageIO.read(labelURL)
            } catch let error as DataError {
                sink.skip(imageURL, unreadable: error)
                continue
            }
            guard image.channels == modalities.count else {
                sink.skip(imageURL, "\(image.channels) volume(s) but dataset.json lists \(modalities.count) modality(ies)")
                continue
            }
            guard label.channels == 1 else {
                sink.skip(imageURL, "its label \(sink.relative(labelURL)) has \(label.channels) volumes")
                continue
            }
            if label.size == image.size && !DatasetChecker.sameGeometry(image.geometry, label.geometry) {
                sink.warn("\(sink.relative(labelURL)): geometry differs from its image's (spacing \(label.geometry.spacing) vs \(image.geometry.spacing))")
            }
            try sink.add(identifier: ImageIO.stem(of: imageURL), image: image, label: label, from: imageURL)
        }
        for imageURL in test {
            defer { sink.step() }
            let image: MedicalImage
            do { image = try ImageIO.read(imageURL) } catch let error as DataError {
                sink.skip(imageURL, unreadable: error)
                continue
            }
            guard image.channels == modalities.count else {
                sink.skip(imageURL, "\(image.channels) volume(s) but dataset.json lists \(modalities.count) modality(ies)")
                continue
            }
            try sink.add(identifier: ImageIO.stem(of: imageURL), image: image, label: nil, test: true, from: imageURL)
        }
    }

    /// `modality` ({"0": "CT"}) in index order; nnU-Net v2's `channel_names` is accepted too.
    static func channelNames(_ json: [String: Any], _ file: URL) throws -> [String] {
        guard let modality = (json["modality"] ?? json["channel_names"]) as? [String: Any], !modality.isEmpty else {
            throw DataError(file: file, "no \"modality\" object ({\"0\": \"CT\"})")
        }
        var names: [String] = []
        for i in 0..<modality.count {
            guard let name = modality[String(i)] as? String else {
                throw DataError(file: file, "\"modality\" must map \"0\" ... \"\(modality.count - 1)\" to names, got keys \(modality.keys.sorted())")
            }
            names.append(name)
        }
        return names
    }

    /// MSD's {"0": "background", "1": "liver"} inverted to {"background": 0, "liver": 1}; an
    /// nnU-Net v2 style {"background": 0} is taken as it is.
    static func labels(_ json: [String: Any], _ file: URL) throws -> [String: Int] {
        guard let raw = json["labels"] as? [String: Any], !raw.isEmpty else {
            throw DataError(file: file, "no \"labels\" object ({\"0\": \"background\", \"1\": \"liver\"})")
        }
        var out: [String: Int] = [:]
        for (key, value) in raw {
            if let name = value as? String, let v = Int(key) {
                out[out[name] == nil ? name : "\(name)_\(v)"] = v
            } else if let v = value as? Int {
                out[key] = v
            } else {
                throw DataError(file: file, "\"labels\": cannot read \"\(key)\": \(value)")
            }
        }
        guard out.values.contains(0) else { throw DataError(file: file, "\"labels\" has no value 0 (background)") }
        return out
    }

    private static func resolve(_ path: String, _ sink: ImportSink) -> URL {
        sink.source.appendingPathComponent(path).standardizedFileURL
    }

    /// (image, label) from `training`, or imagesTr/ paired with labelsTr/ by name when it has none.
    static func trainingPairs(_ json: [String: Any], _ sink: ImportSink, _ file: URL) throws -> [(URL, URL)] {
        let imagesTr = sink.source.appendingPathComponent("imagesTr")
        let labelsTr = sink.source.appendingPathComponent("labelsTr")
        let onDisk = (ImportIO.list(imagesTr) ?? []).filter(ImportIO.isImage)
        var pairs: [(URL, URL)] = []
        if let list = json["training"] as? [[String: Any]], !list.isEmpty {
            for (i, entry) in list.enumerated() {
                guard let image = entry["image"] as? String, let label = entry["label"] as? String else {
                    sink.skip(file, "training entry \(i) lacks \"image\" or \"label\"")
                    continue
                }
                pairs.append((resolve(image, sink), resolve(label, sink)))
            }
            let listed = Set(pairs.map { $0.0.path })
            let unlisted = onDisk.filter { !listed.contains(imagesTr.appendingPathComponent($0).standardizedFileURL.path) }
            if !unlisted.isEmpty {
                sink.warn("imagesTr/ holds \(unlisted.count) image(s) that dataset.json's training list does not name (not imported): "
                          + unlisted.prefix(5).joined(separator: ", ") + (unlisted.count > 5 ? ", ..." : ""))
            }
        } else {
            guard ImportIO.isFolder(imagesTr), ImportIO.isFolder(labelsTr) else {
                throw DataError(file: sink.source, "not a Decathlon task folder: dataset.json has no \"training\" list and imagesTr/ or labelsTr/ is missing")
            }
            sink.warn("dataset.json has no \"training\" list: cases paired by file name in imagesTr/ and labelsTr/")
            pairs = onDisk.map { (imagesTr.appendingPathComponent($0), labelsTr.appendingPathComponent($0)) }
        }
        return pairs
    }

    /// Test images from `test` (paths or {"image": path}), or imagesTs/ when it has none.
    static func testImages(_ json: [String: Any], _ sink: ImportSink) -> [URL] {
        if let list = json["test"] as? [Any], !list.isEmpty {
            return list.compactMap { item in
                if let path = item as? String { return resolve(path, sink) }
                if let entry = item as? [String: Any], let path = entry["image"] as? String { return resolve(path, sink) }
                return nil
            }.filter { url in
                guard FileManager.default.fileExists(atPath: url.path) else {
                    sink.skip(url, "listed in dataset.json's test list but missing")
                    return false
                }
                return true
            }
        }
        let imagesTs = sink.source.appendingPathComponent("imagesTs")
        return (ImportIO.list(imagesTs) ?? []).filter(ImportIO.isImage).map { imagesTs.appendingPathComponent($0) }
    }
}
