import Foundation
import XCTest
import TestSupport
@testable import MedSegData

/// The DICOMweb client against a real Orthanc with its DICOMweb plugin, started on ports of its
/// own for these tests: STOW-RS stores a series written by pydicom, QIDO-RS lists it, WADO-RS
/// brings it back, and the series read from what came back is the one written.
final class DICOMWebTests: XCTestCase {
    private var temp: URL!
    private var orthanc: OrthancServer!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("dicomweb")
        orthanc = try OrthancServer()
    }

    override func tearDownWithError() throws {
        orthanc?.stop()
        try? FileManager.default.removeItem(at: temp)
    }

    func testStoreListAndRetrieveASeries() throws {
        let written = try DICOMFixtures.writeSeries(temp.appendingPathComponent("series"), ["--orientation", "oblique"])
        let files = try FileManager.default.contentsOfDirectory(at: temp.appendingPathComponent("series"), includingPropertiesForKeys: nil)
        let client = DICOMWebClient(timeout: 10)
        let study = try XCTUnwrap(try client.store(files, to: orthanc.dicomWeb), "the server names the stored study")
        let location = try DICOMWebLocation(parsing: study.absoluteString)
        XCTAssertEqual(location.service, orthanc.dicomWeb)
        let listed = try client.series(of: location)
        XCTAssertEqual(listed.map(\.uid), [written.uid])
        XCTAssertEqual(listed.first?.instances, files.count)
        XCTAssertEqual(try client.selectSeries(location, choice: nil), written.uid, "a study's only series")

        let fetched = temp.appendingPathComponent("fetched")
        XCTAssertEqual(try client.retrieve(location, series: written.uid, into: fetched).count, files.count)
        let image = try DICOM.read(folder: fetched)
        XCTAssertEqual(image.voxels.map(Double.init), written.values, "the series that came back is the one stored")
        for (a, b) in zip(image.geometry.spacing, written.spacing) { XCTAssertEqual(a, b, accuracy: 1e-9) }
    }

    /// Each failure is one line naming the address: nothing listening, an unknown series, a
    /// server that never answers, a study address that is not one.
    func testFailuresAreOneLineNamingTheAddress() throws {
        let port = try OrthancServer.freePort()
        let nobody = try DICOMWebLocation(parsing: "http://127.0.0.1:\(port)/dicom-web/studies/1.2.3")
        XCTAssertThrowsError(try DICOMWebClient(timeout: 2, retries: 1).series(of: nobody)) {
            XCTAssertTrue("\($0)".hasPrefix("http://127.0.0.1:\(port)/dicom-web/studies/1.2.3/series: GET failed: cannot connect"), "\($0)")
            XCTAssertTrue("\($0)".contains("2 attempt(s)"), "\($0)")
        }
        let unknown = DICOMWebLocation(service: orthanc.dicomWeb, study: "1.2.3")
        XCTAssertThrowsError(try DICOMWebClient(timeout: 5).retrieve(unknown, series: "1.2.3.4", into: temp.appendingPathComponent("none"))) {
            XCTAssertTrue("\($0)".contains("/studies/1.2.3/series/1.2.3.4: GET failed with HTTP 404"), "\($0)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: temp.appendingPathComponent("none").path), "nothing written for a failed fetch")
        // A listener that takes the connection and never answers.
        let silent = Process()
        silent.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        let ready = Pipe()
        silent.standardOutput = ready
        silent.arguments = ["-c", "import socket, time\ns = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(8)\nprint(s.getsockname()[1], flush=True)\ntime.sleep(60)"]
        try silent.run()
        defer { silent.terminate() }
        let silentPort = String(decoding: ready.fileHandleForReading.availableData, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let hanging = try DICOMWebLocation(parsing: "http://127.0.0.1:\(silentPort)/dicom-web/studies/1.2.3")
        let started = Date()
        XCTAssertThrowsError(try DICOMWebClient(timeout: 1, retries: 0).series(of: hanging)) {
            XCTAssertTrue("\($0)".contains("GET failed: no answer in time (1 attempt(s), 1 s timeout each)"), "\($0)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(started), 20)
        for bad in ["ftp://host/studies/1.2", "http://host/dicom-web/series/1.2", "http://host/studies/abc", "/tmp/folder"] {
            XCTAssertThrowsError(try DICOMWebLocation(parsing: bad), bad)
        }
    }

}

/// DICOMweb addresses and multipart bodies, without a server.
final class DICOMWebLocationTests: XCTestCase {
    func testAddressesParseIntoServiceStudyAndSeries() throws {
        let location = try DICOMWebLocation(parsing: "https://pacs.example.org:8443/orthanc/dicom-web/studies/1.2.840.1/series/1.2.840.1.2?x=1")
        XCTAssertEqual(location.service.absoluteString, "https://pacs.example.org:8443/orthanc/dicom-web")
        XCTAssertEqual(location.study, "1.2.840.1")
        XCTAssertEqual(location.series, "1.2.840.1.2")
        XCTAssertEqual(location.url().absoluteString, "https://pacs.example.org:8443/orthanc/dicom-web/studies/1.2.840.1/series/1.2.840.1.2")
        XCTAssertTrue(DICOMWebLocation.isWebAddress("http://x/studies/1"))
        XCTAssertFalse(DICOMWebLocation.isWebAddress("data/imagesTs"))
    }

    func testMultipartBodiesRoundTrip() throws {
        let parts = [Data("first\r\n--part".utf8), Data(), Data((0..<255).map(UInt8.init))]
        let (body, boundary) = MultipartRelated.body(parts, contentType: "application/dicom")
        XCTAssertEqual(try MultipartRelated.parts(of: body, boundary: boundary), parts)
        XCTAssertEqual(MultipartRelated.boundary(of: "multipart/related; type=\"application/dicom\"; boundary=\"abc\""), "abc")
        XCTAssertThrowsError(try MultipartRelated.parts(of: body.prefix(body.count / 2), boundary: boundary)) {
            XCTAssertTrue("\($0)".contains("cut short"), "\($0)")
        }
    }
}
