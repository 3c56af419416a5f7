import Foundation
import MedSegData

/// A series of a DICOMweb server fetched (WADO-RS) into a temporary folder named by its series
/// UID, so that `predict` reads it as it reads a series folder, and removed afterwards.
struct DICOMWebStaging {
    let root: URL
    let folder: URL

    static func fetch(_ address: String, series choice: String?, timeout: Double) throws -> DICOMWebStaging {
        let location = try DICOMWebLocation(parsing: address)
        let client = DICOMWebClient(timeout: timeout)
        let series = try client.selectSeries(location, choice: choice)
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("medseg-dicomweb-\(UUID().uuidString)")
        let staging = DICOMWebStaging(root: root, folder: root.appendingPathComponent(series))
        do {
            let files = try client.retrieve(location, series: series, into: staging.folder)
            FileHandle.standardError.write(Data("fetched \(files.count) instance(s) of series \(series) from \(location.service.absoluteString)\n".utf8))
        } catch {
            staging.remove()
            throw error
        }
        return staging
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}
