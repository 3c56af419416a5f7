import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import MedSegDist

/// Why a test's fixture could not be set up.
public struct FixtureError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// A private Orthanc (Debian's `orthanc` with its `orthanc-dicomweb` plugin, which the test
/// set-up installs) on loopback ports of its own, with its storage in a temporary folder; `stop()`
/// ends it and removes the folder.
public final class OrthancServer {
    public let folder: URL
    public let httpPort: Int
    private let process: Process

    public static let executable = "/usr/sbin/Orthanc"
    public static let dicomWebPlugin = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"

    /// The DICOMweb root, e.g. http://127.0.0.1:PORT/dicom-web.
    public var dicomWeb: URL { URL(string: "http://127.0.0.1:\(httpPort)/dicom-web")! }

    public init() throws {
        for path in [Self.executable, Self.dicomWebPlugin] where !FileManager.default.fileExists(atPath: path) {
            throw FixtureError("\(path) is missing: scripts/setup.sh installs Debian's orthanc and orthanc-dicomweb")
        }
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("orthanc-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("db"), withIntermediateDirectories: true)
        httpPort = try Self.freePort()
        let dicomPort = try Self.freePort()
        let config: [String: Any] = [
            "Name": "MedSegTest", "StorageDirectory": folder.appendingPathComponent("db").path, "IndexDirectory": folder.appendingPathComponent("db").path,
            "HttpPort": httpPort, "DicomPort": dicomPort, "RemoteAccessAllowed": false, "AuthenticationEnabled": false,
            "Plugins": [Self.dicomWebPlugin], "DicomWeb": ["Enable": true, "Root": "/dicom-web/"],
        ]
        let configFile = folder.appendingPathComponent("orthanc.json")
        try JSONSerialization.data(withJSONObject: config).write(to: configFile)
        process = Process()
        process.executableURL = URL(fileURLWithPath: Self.executable)
        process.arguments = [configFile.path]
        process.currentDirectoryURL = folder
        _ = FileManager.default.createFile(atPath: folder.appendingPathComponent("log.txt").path, contents: nil)
        let log = try FileHandle(forWritingTo: folder.appendingPathComponent("log.txt"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // Ready once its REST API answers.
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if !process.isRunning { break }
            if (try? Data(contentsOf: URL(string: "http://127.0.0.1:\(httpPort)/system")!)) != nil { return }
            Thread.sleep(forTimeInterval: 0.2)
        }
        let text = (try? String(contentsOf: folder.appendingPathComponent("log.txt"), encoding: .utf8)) ?? ""
        stop()
        throw FixtureError("Orthanc did not start on port \(httpPort): \(text.suffix(500))")
    }

    public func stop() {
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: folder)
    }

    deinit { stop() }

    /// A free TCP port (the launcher's finder).
    public static func freePort() throws -> Int { try Launcher.freePort() }
}
