import Foundation
import MedSegData
import Torch

/// Class probabilities of one case, `CASE_probabilities.safetensors` beside its prediction: one
/// float32 tensor "probabilities" [K, (z,) y, x] in the raw image's grid (K = 1 for a binary
/// model: the foreground probability). What `predict --save-probabilities` and validation write,
/// and what `medseg ensemble` and `find-best` average.
public enum ProbabilityFile {
    public static let suffix = "_probabilities.safetensors"

    public static func url(for identifier: String, in folder: URL) -> URL {
        folder.appendingPathComponent(identifier + suffix)
    }

    public static func write(_ probabilities: Tensor, to url: URL) throws {
        try Safetensors.save(StateDict([("probabilities", try probabilities.to(device: .cpu).to(dtype: .float32).contiguous())]), to: url)
    }

    public static func read(_ url: URL) throws -> Tensor {
        let tensors: StateDict
        do { tensors = try Safetensors.load(url).tensors } catch { throw DataError(file: url, "not a readable probabilities file: \(error)") }
        guard let p = tensors["probabilities"] else { throw DataError(file: url, "has no tensor 'probabilities'") }
        return p
    }

    /// Case identifiers with a probabilities file in `folder`, sorted.
    public static func identifiers(in folder: URL) throws -> [String] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: folder.path) } catch {
            throw DataError(file: folder, "cannot list the folder: \(error)")
        }
        return names.filter { $0.hasSuffix(suffix) }.map { String($0.dropLast(suffix.count)) }.sorted()
    }

    /// Labels from probabilities: argmax, or a 0.5 threshold of a single foreground channel.
    public static func labels(_ p: Tensor) throws -> Tensor {
        p.size(0) == 1 ? try p[0].gt(0.5).long() : try p.argmax(dim: 0)
    }
}
