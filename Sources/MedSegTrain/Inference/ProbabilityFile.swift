import Foundation
import MedSegData
import Torch

/// Class probabilities of one case, `CASE_probabilities.safetensors` beside its prediction: one
/// tensor "probabilities" [K, (z,) y, x] (float32, or float16 when asked) in the raw image's grid (K = 1 for a binary
/// model: the foreground probability; R sigmoid channels for a region-based model, whose
/// `regions_class_order` the file's metadata keeps so labels can be painted back). What `predict --save-probabilities` and validation write,
/// and what `medseg ensemble` and `find-best` average.
public enum ProbabilityFile {
    public static let suffix = "_probabilities.safetensors"

    public static func url(for identifier: String, in folder: URL) -> URL {
        folder.appendingPathComponent(identifier + suffix)
    }

    static let regionsKey = "regions_class_order"

    static func metadata(_ regionsClassOrder: [Int]?) -> [String: String] {
        regionsClassOrder.map { [regionsKey: $0.map(String.init).joined(separator: ",")] } ?? [:]
    }

    public static func write(_ probabilities: Tensor, regionsClassOrder: [Int]? = nil, dtype: DType = .float32, to url: URL) throws {
        try Safetensors.save(StateDict([("probabilities", try probabilities.to(device: .cpu).to(dtype: dtype).contiguous())]),
                             metadata: metadata(regionsClassOrder), to: url)
    }

    /// A probabilities file written plane by plane (channel, index along the first spatial axis),
    /// for volumes whose probabilities are never whole in memory. Planes never written read as 0.
    /// The file appears on `commit()`.
    public final class Writer {
        private let file: SafetensorsWriter
        public let shape: [Int]
        private let dtype: DType
        private let planeCount: Int

        /// `shape`: [K, spatial...] in array order; `dtype` float32 or float16.
        public init(_ url: URL, shape: [Int], dtype: DType = .float32, regionsClassOrder: [Int]? = nil) throws {
            guard dtype == .float32 || dtype == .float16 else { throw TrainingError("probabilities are written as float32 or float16") }
            file = try SafetensorsWriter(url, tensors: [("probabilities", dtype, shape)], metadata: ProbabilityFile.metadata(regionsClassOrder))
            self.shape = shape
            self.dtype = dtype
            planeCount = shape.dropFirst(2).reduce(1, *)
        }

        public func write(channel: Int, slice: Int, plane: [Float]) throws {
            precondition(plane.count == planeCount, "a plane of \(plane.count) values, expected \(planeCount)")
            let offset = ((channel * shape[1]) + slice) * planeCount * dtype.byteSize
            let bytes = dtype == .float16 ? plane.map(Float16.init).withUnsafeBytes { Data($0) } : plane.withUnsafeBytes { Data($0) }
            try file.write(bytes, tensor: 0, offset: offset)
        }

        public func commit() throws { try file.commit() }
    }

    public static func read(_ url: URL) throws -> Tensor { try load(url).probabilities }

    /// The probabilities and, for a region-based model, the label each channel paints.
    public static func load(_ url: URL) throws -> (probabilities: Tensor, regionsClassOrder: [Int]?) {
        let file: (tensors: StateDict, metadata: [String: String])
        do { file = try Safetensors.load(url) } catch { throw DataError(file: url, "not a readable probabilities file: \(error)") }
        guard let stored = file.tensors["probabilities"] else { throw DataError(file: url, "has no tensor 'probabilities'") }
        guard stored.dtype.isFloatingPoint, stored.rank >= 3, stored.shape.allSatisfy({ $0 > 0 }) else {
            throw DataError(file: url, "its probabilities are \(stored.dtype) of shape \(stored.shape); MedSeg writes floats [classes, (z,) y, x]")
        }
        let p = try stored.to(dtype: .float32)
        try checkValues(p, file: url)
        guard let text = file.metadata[regionsKey] else { return (p, nil) }
        let order = text.split(separator: ",").compactMap { Int($0) }
        guard order.count == p.size(0) else {
            throw DataError(file: url, "\(regionsKey) '\(text)' does not give one label per channel (\(p.size(0)))")
        }
        return (p, order)
    }

    /// Refuses probabilities that are not probabilities: NaN, infinite, or outside [0, 1] (beyond
    /// float16's rounding), which an average would otherwise spread without a word.
    static func checkValues(_ p: Tensor, file: URL) throws {
        guard try p.isfinite().all().item() != 0 else {
            throw DataError(file: file, "holds NaN or infinite probabilities (\(try p.isnan().sum().itemInt()) NaN)")
        }
        let low = try p.min().item(), high = try p.max().item()
        guard low >= -1e-3, high <= 1 + 1e-3 else {
            throw DataError(file: file, "holds values from \(low) to \(high), outside the probabilities' 0 to 1")
        }
    }

    /// Case identifiers with a probabilities file in `folder`, sorted.
    public static func identifiers(in folder: URL) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path) } catch {
            throw DataError(file: folder, "cannot list the folder: \(error)")
        }
        return names.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) }.sorted()
    }

    /// Labels from probabilities [K, spatial...]: argmax, or a 0.5 threshold of a single foreground
    /// channel, or for regions each channel over 0.5 painted in `regionsClassOrder`.
    public static func labels(_ p: Tensor, regionsClassOrder: [Int]? = nil) throws -> Tensor {
        if let regionsClassOrder { return try LabelTargets.paint(p.unsqueeze(0), regionsClassOrder: regionsClassOrder)[0][0] }
        return p.size(0) == 1 ? try p[0].gt(0.5).long() : try p.argmax(dim: 0)
    }
}
