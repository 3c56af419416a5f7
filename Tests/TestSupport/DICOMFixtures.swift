import Foundation

/// DICOM series written by pydicom (scripts/fixtures/make_dicom_series.py) from a known volume.
public enum DICOMFixtures {
    /// What the script wrote: the volume's values (z, y, x order, rescaled), spacing, first position, UID.
    public struct Written: Decodable {
        public let values: [Double]
        public let spacing: [Double]
        public let ipp0: [Double]
        public let uid: String
    }

    static var script: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/fixtures/make_dicom_series.py").path
    }

    /// Writes a series into `folder` with the script's `options` (Debian's python3, which has pydicom).
    @discardableResult
    public static func writeSeries(_ folder: URL, _ options: [String] = []) throws -> Written {
        let output = try Python.run("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')",
                                    [script, folder.path] + options, interpreter: "/usr/bin/python3")
        return try JSONDecoder().decode(Written.self, from: Data(output.utf8))
    }
}
