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
        if let problem = RegularFile.problem(url) { throw DataError(file: url, problem) }
        let archive: Archive
        do { archive = try Archive(url: url, accessMode: .read) } catch {
            throw DataError(file: url, "not a readable .npz (numpy zip) file: \(error)")
        }
        guard let entry = archive["probabilities.npy"], entry.type == .file else {
            throw DataError(file: url, "has no array 'probabilities' (nnU-Net's --save_probabilities file)")
        }
        // Inflated no further than its .npy header says (a small header over a deflate stream that
        // inflates without end is refused at the first byte beyond it), and checked against its CRC-32.
        var data = Data(), header: NumpyArray.Header?
        struct BeyondHeader: Error { let length: Int }
        let checksum: CRC32
        do {
            checksum = try archive.extract(entry) { chunk in
                data.append(chunk)
                if header == nil { header = try NumpyArray.header(data) }
                if let header, data.count > header.fileLength { throw BeyondHeader(length: header.fileLength) }
            }
        } catch let error as BeyondHeader {
            throw DataError(file: url, "probabilities.npy inflates beyond the \(error.length) bytes its header declares")
        } catch let error as DataError {
            throw DataError(file: url, "probabilities: \(error.problem)")
        } catch {
            throw DataError(file: url, "cannot unpack 'probabilities': \(error)")
        }
        guard checksum == entry.checksum else {
            throw DataError(file: url, "probabilities.npy fails its CRC-32 check (the file is damaged)")
        }
        let array: NumpyArray
        do { array = try NumpyArray(data) } catch let error as DataError { throw DataError(file: url, "probabilities: \(error.problem)") }
        data = Data()
        guard array.shape.count >= 3, array.shape.allSatisfy({ $0 > 0 }) else {
            throw DataError(file: url, "probabilities of shape \(array.shape); nnU-Net writes [classes, (z,) y, x]")
        }
        let probabilities = try Tensor(array.values, shape: array.shape)
        try ProbabilityFile.checkValues(probabilities, file: url)
        let description = try? DatasetDescription.load(url.deletingLastPathComponent().appendingPathComponent("dataset.json"))
        guard let order = description?.regions_class_order, description?.hasRegions == true else { return (probabilities, nil) }
        guard order.count == array.shape[0] else {
            throw DataError(file: url, "has \(array.shape[0]) channels, but dataset.json beside it orders \(order.count) regions")
        }
        return (probabilities, order)
    }
}
