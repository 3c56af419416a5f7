import Foundation
import MedSegData
import Torch
import ZIPFoundation

/// The probabilities `nnUNetv2_predict --save_probabilities` writes beside each mask: `CASE.npz`
/// (numpy's savez_compressed, one array "probabilities" [K, (z,) y, x] in the raw image's grid,
/// as MedSeg's own files hold them) and `CASE.pkl`. `medseg ensemble` averages them with MedSeg's,
/// as nnUNetv2_ensemble does. A region-based model's channels paint the labels of the
/// `regions_class_order` in the dataset.json nnU-Net copies into its output folder.
enum NNUNetProbabilityFile {
    static let ending = ".npz"

    static func url(for identifier: String, in folder: URL) -> URL { folder.appendingPathComponent(identifier + ending) }

    /// Case identifiers with an `.npz` in `folder`.
    static func identifiers(in names: [String]) -> [String] {
        names.filter { $0.hasSuffix(ending) }.map { String($0.dropLast(ending.count)) }
    }

    static func load(_ url: URL) throws -> (probabilities: Tensor, regionsClassOrder: [Int]?) {
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw DataError(file: url, "not a readable .npz (numpy zip) file: \(error)")
        }
        guard let entry = archive["probabilities.npy"] else {
            throw DataError(file: url, "has no array 'probabilities' (nnU-Net's --save_probabilities file)")
        }
        var data = Data()
        do { _ = try archive.extract(entry) { data.append($0) } } catch { throw DataError(file: url, "cannot unpack 'probabilities': \(error)") }
        let array: NumpyArray
        do { array = try NumpyArray(data) } catch let error as DataError { throw DataError(file: url, "probabilities: \(error.problem)") }
        let probabilities = try Tensor(array.values, shape: array.shape)
        let description = try? DatasetDescription.load(url.deletingLastPathComponent().appendingPathComponent("dataset.json"))
        guard let order = description?.regions_class_order, description?.hasRegions == true else { return (probabilities, nil) }
        guard order.count == array.shape[0] else {
            throw DataError(file: url, "has \(array.shape[0]) channels, but dataset.json beside it orders \(order.count) regions")
        }
        return (probabilities, order)
    }
}
