import Foundation
import Torch

/// A preprocessed case as stored in a preprocessed folder:
/// - `ID.bin`: the normalized image, raw little-endian float32, shape [C, (Z,) Y, X] (row-major);
/// - `ID_seg.bin`: the label, raw int8 class indices, shape [1, (Z,) Y, X];
/// - `ID.json`: `Properties` (shapes, spacings, geometry, crop box, class locations).
/// Loading memory-maps the two .bin files; every file is written atomically, the JSON last, so
/// a case whose JSON exists is complete.
public struct PreprocessedCase {
    public struct Properties: Codable, Equatable, Sendable {
        public var identifier: String
        /// Stored image shape [C, (Z,) Y, X].
        public var shape: [Int]
        /// Spacing of the stored arrays, array order ((z,) y, x).
        public var spacing: [Double]
        /// Spacing of the raw image, array order.
        public var originalSpacing: [Double]
        /// Raw image geometry (x-first, as read), to write predictions back in place.
        public var geometry: ImageGeometry
        /// nnU-Net's keys: spatial shape of the raw image, the crop box ([[start, end]] per axis,
        /// array order) and the shape after cropping, before resampling.
        public var shapeBeforeCropping: [Int]
        public var bboxUsedForCropping: [[Int]]
        public var shapeAfterCroppingAndBeforeResampling: [Int]
        /// Per foreground label ("1", "2", ...): up to 10,000 flat indices into the stored
        /// spatial array ((Z,) Y, X) of voxels of that label, evenly spaced in index order.
        public var classLocations: [String: [Int]]
        public var normalization: [IntensityNormalization]
        public var useMaskForNorm: [Bool]
        /// Target spacing the case was preprocessed for (array order); used to tell whether a
        /// stored case is still valid for a re-run.
        public var targetSpacing: [Double]
        /// The foreground statistics CT normalization used (nil where no channel is CT): stored
        /// cases are stale when the plans or fingerprint change them.
        public var ctStatistics: [IntensityStatistics]? = nil
        /// How images and labels were resampled (absent in older cases: nnU-Net's defaults).
        public var resampling: Resampling.Orders? = nil

        enum CodingKeys: String, CodingKey {
            case identifier, shape, spacing, geometry, normalization
            case originalSpacing = "original_spacing"
            case shapeBeforeCropping = "shape_before_cropping"
            case bboxUsedForCropping = "bbox_used_for_cropping"
            case shapeAfterCroppingAndBeforeResampling = "shape_after_cropping_and_before_resampling"
            case classLocations = "class_locations"
            case useMaskForNorm = "use_mask_for_norm"
            case targetSpacing = "target_spacing"
            case ctStatistics = "ct_statistics"
            case resampling
        }

        public var channels: Int { shape[0] }
        /// Spatial shape in array order ((Z,) Y, X).
        public var spatialShape: [Int] { Array(shape.dropFirst()) }
        /// The crop box in the raw image's x-first order.
        public var cropBox: CropBox { CropBox(nnunetBoundingBox: bboxUsedForCropping, originalShape: shapeBeforeCropping) }
    }

    public let properties: Properties
    /// Memory-mapped float32 image bytes.
    public let imageData: Data
    /// Memory-mapped int8 label bytes (nil when the case has no label file).
    public let labelData: Data?

    public var identifier: String { properties.identifier }
    public var voxelCount: Int { properties.spatialShape.reduce(1, *) }

    /// The three files of case `identifier` in `folder`.
    public static func files(_ identifier: String, in folder: URL) -> (image: URL, label: URL, properties: URL) {
        (folder.appendingPathComponent(identifier + ".bin"), folder.appendingPathComponent(identifier + "_seg.bin"),
         folder.appendingPathComponent(identifier + ".json"))
    }

    /// Image values without copying the mapped bytes.
    public func withImage<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try imageData.withUnsafeBytes { raw in
            try body(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: Float.self), count: raw.count / 4))
        }
    }

    /// Image values (a copy).
    public var image: [Float] {
        #if _endian(big)
        return withImage { $0.map { Float(bitPattern: UInt32(littleEndian: $0.bitPattern)) } }
        #else
        return withImage { Array($0) }
        #endif
    }

    /// Label values (a copy).
    public var label: [Int8]? {
        labelData.map { data in data.withUnsafeBytes { Array($0.bindMemory(to: Int8.self)) } }
    }

    /// The image as a tensor [C, (Z,) Y, X].
    public func imageTensor() throws -> Tensor { try Tensor(image, shape: properties.shape) }

    /// The label as a float tensor of class indices [1, (Z,) Y, X], the training target: -1
    /// (background outside the non-zero mask, `Preprocessor.outsideNonZeroLabel`) is 0 here, as
    /// nnU-Net's training transforms map it.
    public func labelTensor() throws -> Tensor? {
        guard let label else { return nil }
        return try Tensor(label.map { Float(max($0, 0)) }, shape: [1] + properties.spatialShape)
    }

    /// Per foreground label (index 0 = label 1, up to the largest stored label), the class
    /// locations, as `LoadedCase.foreground` holds them.
    public var foreground: [[Int]] {
        let labels = properties.classLocations.keys.compactMap(Int.init)
        guard let top = labels.max(), top > 0 else { return [] }
        return (1...top).map { properties.classLocations[String($0)] ?? [] }
    }

    /// Memory-maps the files of case `identifier` in `folder`.
    public static func load(_ identifier: String, from folder: URL) throws -> PreprocessedCase {
        let (imageURL, labelURL, propertiesURL) = files(identifier, in: folder)
        let properties: Properties
        do {
            properties = try JSONDecoder().decode(Properties.self, from: Data(contentsOf: propertiesURL))
        } catch {
            throw DataError(file: propertiesURL, "not a readable preprocessed case: \(error)")
        }
        let count = properties.shape.reduce(1, *)
        let imageData: Data
        do { imageData = try Data(contentsOf: imageURL, options: .alwaysMapped) } catch { throw DataError(file: imageURL, "cannot read: \(error)") }
        guard imageData.count == count * 4 else {
            throw DataError(file: imageURL, "truncated: shape \(properties.shape) needs \(count * 4) bytes, file has \(imageData.count)")
        }
        var labelData: Data? = nil
        if FileManager.default.fileExists(atPath: labelURL.path) {
            let data: Data
            do { data = try Data(contentsOf: labelURL, options: .alwaysMapped) } catch { throw DataError(file: labelURL, "cannot read: \(error)") }
            let n = properties.spatialShape.reduce(1, *)
            guard data.count == n else { throw DataError(file: labelURL, "truncated: needs \(n) bytes, file has \(data.count)") }
            labelData = data
        }
        return PreprocessedCase(properties: properties, imageData: imageData, labelData: labelData)
    }

    /// Writes a case (image values [C, (Z,) Y, X] in row-major order, label class indices),
    /// each file atomically, the JSON last.
    public static func write(image: [Float], label: [Int8]?, properties: Properties, to folder: URL) throws {
        guard image.count == properties.shape.reduce(1, *) else {
            throw DataError("case \(properties.identifier): \(image.count) values for shape \(properties.shape)")
        }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let (imageURL, labelURL, propertiesURL) = files(properties.identifier, in: folder)
        do {
            #if _endian(big)
            let bytes = image.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Data($0) }
            #else
            let bytes = image.withUnsafeBytes { Data($0) }
            #endif
            try bytes.write(to: imageURL, options: .atomic)
        } catch { throw DataError(file: imageURL, "cannot write: \(error)") }
        if let label {
            guard label.count == properties.spatialShape.reduce(1, *) else {
                throw DataError("case \(properties.identifier): \(label.count) label values for shape \(properties.spatialShape)")
            }
            do { try label.withUnsafeBytes { Data($0) }.write(to: labelURL, options: .atomic) } catch {
                throw DataError(file: labelURL, "cannot write: \(error)")
            }
        } else {
            try? FileManager.default.removeItem(at: labelURL)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        do { try encoder.encode(properties).write(to: propertiesURL, options: .atomic) } catch {
            throw DataError(file: propertiesURL, "cannot write: \(error)")
        }
    }
}

extension LoadedCase {
    /// A preprocessed case for training: its stored (already normalized) image, label and class locations.
    public init(_ stored: PreprocessedCase) throws {
        self.init(identifier: stored.identifier, image: try stored.imageTensor(), label: try stored.labelTensor(),
                  foreground: stored.foreground, geometry: stored.properties.geometry, shape: stored.properties.spatialShape)
    }
}
