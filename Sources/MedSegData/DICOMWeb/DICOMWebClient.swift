import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Torch

/// A series a DICOMweb server lists for a study (QIDO-RS).
public struct DICOMWebSeries: Equatable, Sendable {
    public let uid: String
    public let number: String
    public let modality: String
    public let description: String
    public let instances: Int?

    public var summary: String {
        "series \(number.isEmpty ? "-" : number)  \(modality.isEmpty ? "?" : modality)  \"\(description)\"  \(instances.map { "\($0) instance(s)" } ?? "")  \(uid)"
    }
}

/// The DICOMweb services MedSeg uses, over HTTP: QIDO-RS to list a study's series, WADO-RS to
/// fetch a series' instances, STOW-RS to send results back. Each request has a timeout; requests
/// that fail for the network's sake (no connection, no answer, 502/503/504) are tried again with a
/// growing pause, others fail at once; every failure is one line naming the address.
public final class DICOMWebClient: @unchecked Sendable {
    public let timeout: TimeInterval
    public let retries: Int
    private let session: URLSession

    public init(timeout: TimeInterval = 60, retries: Int = 2) {
        self.timeout = timeout
        self.retries = retries
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = max(timeout, 3600)
        session = URLSession(configuration: configuration)
    }

    deinit { session.finishTasksAndInvalidate() }

    // MARK: QIDO-RS

    /// The series of the study at `location`.
    public func series(of location: DICOMWebLocation) throws -> [DICOMWebSeries] {
        let url = location.url(series: nil).appendingPathComponent("series")
        let (data, _) = try send(url, accept: "application/dicom+json")
        guard !data.isEmpty else { return [] }  // 204: none
        guard let items = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else {
            throw DataError(file: url, "the server's answer is not a DICOM JSON list of series")
        }
        func text(_ item: [String: Any], _ tag: String) -> String {
            guard let value = (item[tag] as? [String: Any])?["Value"] as? [Any], let first = value.first else { return "" }
            return first as? String ?? (first as? NSNumber)?.stringValue ?? ""
        }
        return items.compactMap { item in
            let uid = text(item, "0020000E")
            guard DICOMWebLocation.isUID(uid) else { return nil }
            return DICOMWebSeries(uid: uid, number: text(item, "00200011"), modality: text(item, "00080060"), description: text(item, "0008103E"),
                                  instances: Int(text(item, "00201209")))
        }
    }

    /// Modalities of objects derived from images rather than images (DICOM's SEG, RT, SR, PR, KO, REG).
    static let derivedModalities: Set<String> = ["SEG", "RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD", "SR", "PR", "KO", "REG"]

    /// The series `location` names, or the one `choice` (number or UID) names among its study's,
    /// or the study's only image series; several without a choice are refused with the list.
    public func selectSeries(_ location: DICOMWebLocation, choice: String?) throws -> String {
        if let series = location.series { return series }
        let all = try series(of: location)
        guard !all.isEmpty else { throw DataError(file: location.url(), "the server lists no series in this study") }
        if let choice {
            let matches = all.filter { $0.uid == choice || (!$0.number.isEmpty && Int($0.number) != nil && Int($0.number) == Int(choice)) }
            guard matches.count == 1 else {
                throw DataError(file: location.url(), "no single series '\(choice)' in this study; it has:\n" + all.map(\.summary).joined(separator: "\n"))
            }
            return matches[0].uid
        }
        // Results stored beside the images (SEG, RT objects, reports) are not images to predict.
        let images = all.filter { !Self.derivedModalities.contains($0.modality) }
        guard images.count == 1 else {
            throw DataError(file: location.url(), "the study holds \(images.count) image series; choose one by number or UID (\(Setting.named("series", value: "N"))) or give its /series/UID address:\n"
                            + all.map(\.summary).joined(separator: "\n"))
        }
        return images[0].uid
    }

    // MARK: WADO-RS

    /// Fetches every instance of `series` into `folder` (created; one `.dcm` file each) and returns the files.
    @discardableResult
    public func retrieve(_ location: DICOMWebLocation, series: String, into folder: URL) throws -> [URL] {
        let url = location.url(series: series)
        let (data, response) = try send(url, accept: "multipart/related; type=\"application/dicom\"")
        let contentType = response.value(forHTTPHeaderField: "Content-Type") ?? ""
        guard contentType.lowercased().hasPrefix("multipart/related"), let boundary = MultipartRelated.boundary(of: contentType) else {
            throw DataError(file: url, "the server answered '\(contentType)', not the multipart/related DICOM instances WADO-RS returns")
        }
        let parts: [Data]
        do { parts = try MultipartRelated.parts(of: data, boundary: boundary) } catch let error as DataError { throw error.about(url) }
        guard !parts.isEmpty else { throw DataError(file: url, "the server returned no instances for this series") }
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return try parts.enumerated().map { i, part in
            // Part 10 files carry "DICM" after their 128-byte preamble.
            guard part.count > 132, part.subdata(in: 128..<132) == Data("DICM".utf8) else {
                throw DataError(file: url, "instance \(i + 1) of the answer is not a DICOM file")
            }
            let file = folder.appendingPathComponent(String(format: "%05d.dcm", i))
            try part.write(to: file, options: .atomic)
            return file
        }
    }

    // MARK: STOW-RS

    /// Sends `files` (DICOM Part 10) to the server's studies in one request; any instance the
    /// server reports as failed fails the call, with the server's reasons. Returns the stored
    /// study's address where the server gives it (its RetrieveURL).
    @discardableResult
    public func store(_ files: [URL], to service: URL) throws -> URL? {
        let url = service.appendingPathComponent("studies")
        let instances = try files.map { file -> Data in
            do { return try Data(contentsOf: file) } catch { throw DataError(file: file, "cannot read it to send it: \(error.localizedDescription)") }
        }
        let (body, boundary) = MultipartRelated.body(instances, contentType: "application/dicom")
        let (data, _) = try send(url, method: "POST", body: body, contentType: "multipart/related; type=\"application/dicom\"; boundary=\(boundary)",
                                 accept: "application/dicom+json")
        // The answer lists failed instances in FailedSOPSequence (0008,1198) with a reason (0008,1197).
        if let answer = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let failed = (answer["00081198"] as? [String: Any])?["Value"] as? [[String: Any]], !failed.isEmpty {
            let reasons = failed.map { item -> String in
                let reason = ((item["00081197"] as? [String: Any])?["Value"] as? [Any])?.first.map { "\($0)" } ?? "?"
                return "reason \(reason)"
            }
            throw DataError(file: url, "the server refused \(failed.count) of \(files.count) instance(s) (\(reasons.joined(separator: ", ")))")
        }
        let answer = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        return ((answer?["00081190"] as? [String: Any])?["Value"] as? [String])?.first.flatMap(URL.init(string:))
    }

    // MARK: HTTP

    /// One request, tried again on network failures; the body of a 2xx answer.
    func send(_ url: URL, method: String = "GET", body: Data? = nil, contentType: String? = nil, accept: String) throws -> (Data, HTTPURLResponse) {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = method
        request.httpBody = body
        request.setValue(accept, forHTTPHeaderField: "Accept")
        if let contentType { request.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        var attempt = 0
        while true {
            attempt += 1
            let outcome = perform(request)
            let retryable: String
            switch outcome {
            case .success(let (data, response)):
                if (200..<300).contains(response.statusCode) { return (data, response) }
                let status = "HTTP \(response.statusCode) \(HTTPURLResponse.localizedString(forStatusCode: response.statusCode))"
                guard [502, 503, 504].contains(response.statusCode) else {
                    let detail = String(decoding: data.prefix(200), as: UTF8.self).split(whereSeparator: \.isNewline).first.map { ": \($0)" } ?? ""
                    throw DataError(file: url, "\(method) failed with \(status)\(detail)")
                }
                retryable = status
            case .failure(let error):
                guard let reason = Self.networkFailure(error) else { throw DataError(file: url, "\(method) failed: \(error.localizedDescription)") }
                retryable = reason
            }
            guard attempt <= retries else {
                throw DataError(file: url, "\(method) failed: \(retryable) (\(attempt) attempt(s), \(Int(timeout)) s timeout each)")
            }
            Thread.sleep(forTimeInterval: 0.5 * Double(1 << (attempt - 1)))
        }
    }

    private func perform(_ request: URLRequest) -> Result<(Data, HTTPURLResponse), Error> {
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: Result<(Data, HTTPURLResponse), Error> = .failure(URLError(.unknown))
        session.dataTask(with: request) { data, response, error in
            if let error {
                result = .failure(error)
            } else if let response = response as? HTTPURLResponse {
                result = .success((data ?? Data(), response))
            }
            done.signal()
        }.resume()
        done.wait()
        return result
    }

    /// A one-line reason for failures worth trying again (the network's, not the request's).
    static func networkFailure(_ error: Error) -> String? {
        guard let error = error as? URLError else { return nil }
        switch error.code {
        case .timedOut: return "no answer in time"
        case .cannotConnectToHost: return "cannot connect (nothing listens there?)"
        case .networkConnectionLost: return "the connection was lost"
        case .cannotFindHost, .dnsLookupFailed: return "cannot resolve the host"
        case .notConnectedToInternet: return "no network"
        default: return nil
        }
    }
}
