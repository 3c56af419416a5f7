import Foundation
import Torch

/// Any pair of folders: images (any readable format, 2D or 3D) and masks matched by file stem.
/// A mask is named like its image, optionally with a suffix (`_mask`, `_segmentation`, `_label`,
/// ... or `maskSuffixes`), in any readable format: `a.jpg` pairs with `a.png`, `a_mask.png` or
/// `a_segmentation.tif`. Images and masks may share one folder (masks are then the files whose
/// stem carries a suffix). Images named `CASE_0000`, `CASE_0001`, ... (every image in the folder)
/// are the channels of case CASE, as in the raw layout. An image may also be a folder holding one
/// DICOM series (CT, MR), named like its mask: `images/patient7/` pairs with `masks/patient7.nii.gz`.
///
/// Masks with a colour palette are read as their indices, gray ones by value. 0/1 and 0/255 masks
/// are binary; more than `largestKeptLabel` whole-number values are an instance map (foreground =
/// value > 0, with a warning naming the file); other whole-number masks need `ImportOptions.labels`
/// (binary or multiclass) unless palette-indexed, else the import fails naming the file and its
/// values. JPEG and fractional masks are thresholded at half their maximum, colour masks on their
/// brightest channel.
/// dataset.json lists background 0 and "foreground" 1, or "label_1" ... "label_K".
enum FolderImporter {
    static let defaultMaskSuffixes = ["_mask", "_masks", "_segmentation", "_seg", "_label", "_labels", "_gt", "_lesion",
                                      "_Segmentation", "_Mask", "-mask", "_annotation"]
    /// Whole-number masks with more distinct values than this are instance maps (foreground = value > 0).
    static let largestKeptLabel = 32

    /// The images and masks folders an import reads (default SRC/images and SRC/masks or SRC/labels).
    static func folders(source: URL, options: ImportOptions) -> (images: URL, masks: URL?) {
        let images = options.images ?? source.appendingPathComponent("images")
        let masks = options.masks ?? ["masks", "labels", "mask", "label"].map { source.appendingPathComponent($0) }.first(where: ImportIO.isFolder)
        return (images.standardizedFileURL, masks?.standardizedFileURL)
    }

    struct Case {
        let id: String
        let images: [URL]
        let mask: URL?
    }

    static func run(_ sink: ImportSink) throws {
        let (images, masksOrNil) = folders(source: sink.source, options: sink.options)
        guard ImportIO.isFolder(images) else {
            throw DataError(file: sink.options.images == nil ? sink.source : images,
                            sink.options.images == nil ? "not an images/masks folder: expected sub-folder images/ (or give \(Setting.named("images", value: "DIR")))" : "no such images folder")
        }
        guard let masks = masksOrNil, ImportIO.isFolder(masks) else {
            throw DataError(file: masksOrNil ?? sink.source,
                            masksOrNil == nil ? "not an images/masks folder: expected sub-folder masks/ or labels/ (or give \(Setting.named("masks", value: "DIR")))" : "no such masks folder")
        }
        sink.name = images.deletingLastPathComponent().lastPathComponent
        let suffixes = sink.options.maskSuffixes ?? defaultMaskSuffixes
        let sameFolder = images.path == masks.path
        let maskNames = (ImportIO.list(masks) ?? []).filter(ImportIO.isImage)
        var imageNames = (ImportIO.list(images) ?? []).filter { ImportIO.isImageOrSeries($0, in: images) }
        if sameFolder {
            imageNames = imageNames.filter { name in
                let stem = ImageIO.stem(of: URL(fileURLWithPath: name))
                return !suffixes.contains { !$0.isEmpty && stem.hasSuffix($0) }
            }
        }
        let (cases, usedMasks) = pair(imageNames, in: images, maskNames: maskNames, masks: masks, suffixes: suffixes, sink)
        for name in maskNames where !usedMasks.contains(name) && !(sameFolder && imageNames.contains(name)) {
            sink.skip(masks.appendingPathComponent(name), "mask without image in \(sink.relative(images))/")
        }
        var testCases: [Case] = []
        if let test = sink.options.testImages {
            guard ImportIO.isFolder(test) else { throw DataError(file: test, "no such test images folder") }
            testCases = group((ImportIO.list(test) ?? []).filter { ImportIO.isImageOrSeries($0, in: test) }, in: test, sink)
        }
        sink.total = cases.count + testCases.count

        var seenLabels: Set<Int> = [0]
        var binarized: [String] = []
        var instanceMaps: [(String, Int)] = []
        var dims: Int?
        for (c, isTest) in cases.map({ ($0, false) }) + testCases.map({ ($0, true) }) {
            defer { sink.step() }
            let image: MedicalImage
            var label: MedicalImage?
            do {
                image = try readChannels(c.images)
                if let maskURL = c.mask {
                    // Gray (or gray-palette) masks by value; colour-palette masks (VOC style) by index.
                    var mask = try ImportIO.read(maskURL)
                    var fromPalette = false
                    if mask.channels > 1 {
                        let indexed = try ImportIO.read(maskURL, palette: .indices)
                        if indexed.channels == 1 { mask = indexed; fromPalette = true }
                    }
                    if mask.channels > 1 {
                        let n = mask.voxelCount
                        let equal = (1..<mask.channels).allSatisfy { ch in (0..<n).allSatisfy { mask.voxels[ch * n + $0] == mask.voxels[$0] } }
                        mask = equal ? mask.channel(0) : ImportIO.binarize(mask)
                    }
                    switch try maskKind(mask, file: maskURL, labels: sink.options.labels, palette: fromPalette) {
                    case .classes(let values):
                        seenLabels.formUnion(values)
                    case .foreground(let instances):
                        mask = ImportIO.foreground(mask)
                        if instances > 0 { instanceMaps.append((maskURL.lastPathComponent, instances)) }
                        seenLabels.insert(1)
                    case .threshold:
                        mask = ImportIO.binarize(mask)
                        binarized.append(maskURL.lastPathComponent)
                        seenLabels.insert(1)
                    }
                    if mask.size == image.size && [".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"].contains(ImageIO.fileEnding(of: maskURL)) {
                        mask.geometry = image.geometry  // planar formats carry no geometry of their own
                    }
                    label = mask
                }
            } catch let error as DataError {
                if error.problem.hasPrefix(ambiguousPrefix) { throw error }
                sink.skip(c.images[0], unreadable: error)
                continue
            }
            if let d = dims, d != image.dims {
                sink.skip(c.images[0], "\(image.dims)D image in a \(d)D data set")
                continue
            }
            if try sink.add(identifier: c.id, image: image, label: label, test: isTest, from: c.images[0]) {
                dims = image.dims
            }
        }
        let top = seenLabels.max() ?? 1
        var labels = ["background": 0]
        if top <= 1 {
            labels["foreground"] = 1
        } else {
            for v in 1...top { labels["label_\(v)"] = v }
        }
        sink.labels = labels
        for (name, count) in instanceMaps.prefix(5) {
            sink.warn("\(name): \(count) distinct whole-number values: read as an instance map, foreground = value > 0")
        }
        if instanceMaps.count > 5 { sink.warn("... and \(instanceMaps.count - 5) more instance map(s) read as foreground = value > 0") }
        if !binarized.isEmpty {
            sink.warn("\(binarized.count) mask(s) hold values other than whole numbers 0-\(largestKeptLabel) (e.g. \(binarized[0])): "
                      + "binarized, values above half the mask's maximum = 1")
        }
    }

    static let ambiguousPrefix = "ambiguous mask"

    /// How one mask's values are read.
    enum MaskKind: Equatable {
        /// Values kept as classes.
        case classes(Set<Int>)
        /// Foreground = value > 0; `instances` > 0 when it was read as an instance map of that many values.
        case foreground(instances: Int)
        /// Lossy or non-integer values: above half the maximum = 1.
        case threshold
    }

    /// Whole-number masks: 0/1 and 0/255 are binary, more than `largestKeptLabel` values an instance
    /// map (foreground > 0), a palette's indices classes; other sets of values need `labels` and are
    /// an error naming the file and its values without it. Lossy (JPEG) and fractional masks are thresholded.
    static func maskKind(_ mask: MedicalImage, file: URL, labels: MaskLabels?, palette: Bool) throws -> MaskKind {
        var values: Set<Float> = []
        var whole = true
        for v in mask.voxels where values.insert(v).inserted {
            if v < 0 || v != v.rounded() { whole = false; break }
        }
        let ending = ImageIO.fileEnding(of: file)
        guard whole, ending != ".jpg", ending != ".jpeg" else { return .threshold }
        let ints = Set(values.map { Int($0) })
        if ints.count > largestKeptLabel { return .foreground(instances: ints.count) }
        if ints.isSubset(of: [0, 1]) { return .classes(ints) }
        if ints.isSubset(of: [0, 255]) && labels != .multiclass { return .foreground(instances: 0) }
        switch labels {
        case .binary: return .foreground(instances: 0)
        case .multiclass: return .classes(ints)
        case nil:
            if palette { return .classes(ints) }
            let shown = ints.sorted().prefix(12).map(String.init).joined(separator: ", ") + (ints.count > 12 ? ", ..." : "")
            throw DataError(file: file, "\(ambiguousPrefix): \(ints.count) whole-number values (\(shown)); give \(Setting.named("labels", value: "multiclass")) "
                            + "to keep them as classes or \(Setting.named("labels", value: "binary")) for foreground = value > 0")
        }
    }

    /// Several channel files of one case as one multi-channel image.
    static func readChannels(_ urls: [URL]) throws -> MedicalImage {
        let parts = try urls.map { try ImportIO.read($0) }
        guard parts.count > 1 else { return parts[0] }
        for (url, part) in zip(urls, parts) where part.size != parts[0].size {
            throw DataError(file: url, "size \(part.size) differs from channel 0's \(parts[0].size)")
        }
        let sameType = parts.allSatisfy { $0.pixelType == parts[0].pixelType }
        return MedicalImage(size: parts[0].size, channels: parts.reduce(0) { $0 + $1.channels }, voxels: parts.flatMap(\.voxels),
                            pixelType: sameType ? parts[0].channel(0).pixelType : .float32, geometry: parts[0].geometry)
    }

    /// Images grouped into cases: CASE_0000, CASE_0001, ... are one case's channels when every
    /// image is named so; otherwise each image is a case named by its stem.
    static func group(_ names: [String], in folder: URL, _ sink: ImportSink) -> [Case] {
        func channelSuffix(_ stem: String) -> Int? { ChannelFileName.parse(stem)?.channel }
        let stems = names.map { ImageIO.stem(of: URL(fileURLWithPath: $0)) }
        guard !stems.isEmpty, stems.allSatisfy({ channelSuffix($0) != nil }) else {
            var seen: [String: String] = [:]
            return zip(names, stems).compactMap { name, stem in
                if let other = seen[stem] {
                    sink.skip(folder.appendingPathComponent(name), "same name as \(other)")
                    return nil
                }
                seen[stem] = name
                return Case(id: stem, images: [folder.appendingPathComponent(name)], mask: nil)
            }
        }
        var byCase: [String: [Int: String]] = [:]
        for (name, stem) in zip(names, stems) {
            let (id, channel) = ChannelFileName.parse(stem)!
            byCase[id, default: [:]][channel] = name
        }
        let channelCount = byCase.values.map(\.count).max() ?? 1
        return byCase.keys.sorted().compactMap { id in
            let files = byCase[id]!
            guard files.count == channelCount, (0..<channelCount).allSatisfy({ files[$0] != nil }) else {
                sink.skip(folder.appendingPathComponent(files.values.sorted()[0]),
                          "case \(id) has channel files \(files.keys.sorted()), expected _0000 ... _\(String(format: "%04d", channelCount - 1))")
                return nil
            }
            return Case(id: id, images: (0..<channelCount).map { folder.appendingPathComponent(files[$0]!) }, mask: nil)
        }
    }

    /// Cases of the images folder with their masks; unmatched images are skipped with the names
    /// looked for. Returns the cases and the mask file names used.
    static func pair(_ imageNames: [String], in images: URL, maskNames: [String], masks: URL, suffixes: [String],
                     _ sink: ImportSink) -> ([Case], Set<String>) {
        var maskByStem: [String: [String]] = [:]
        for name in maskNames { maskByStem[ImageIO.stem(of: URL(fileURLWithPath: name)), default: []].append(name) }
        let sameFolder = images.path == masks.path
        var used: Set<String> = []
        var out: [Case] = []
        for c in group(imageNames, in: images, sink) {
            var found: String?
            var ambiguous: [String]?
            for suffix in [""] + suffixes where !(sameFolder && suffix.isEmpty) {
                guard let matches = maskByStem[c.id + suffix] else { continue }
                if matches.count == 1 { found = matches[0] } else { ambiguous = matches }
                break
            }
            if let ambiguous {
                sink.skip(c.images[0], "several masks match: \(ambiguous.joined(separator: ", "))")
                used.formUnion(ambiguous)
                continue
            }
            guard let found else {
                let shown = suffixes.prefix(3).map { c.id + $0 }.joined(separator: ", ")
                sink.skip(c.images[0], "no mask named \(sameFolder ? "" : c.id + ", ")\(shown)\(suffixes.count > 3 ? ", ..." : "") in \(sink.relative(masks))/")
                continue
            }
            used.insert(found)
            out.append(Case(id: c.id, images: c.images, mask: masks.appendingPathComponent(found)))
        }
        return (out, used)
    }
}
