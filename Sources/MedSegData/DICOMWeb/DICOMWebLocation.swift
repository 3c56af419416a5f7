import Foundation

/// A study or series on a DICOMweb server, as its URL names it:
/// `http://HOST:PORT/dicom-web/studies/STUDY_UID[/series/SERIES_UID]`. `service` is everything
/// before `/studies` (the server's DICOMweb root).
public struct DICOMWebLocation: Equatable, Sendable {
    public let service: URL
    public let study: String
    public let series: String?

    /// Whether `text` is a web address rather than a path.
    public static func isWebAddress(_ text: String) -> Bool {
        text.hasPrefix("http://") || text.hasPrefix("https://")
    }

    public init(service: URL, study: String, series: String? = nil) {
        self.service = service
        self.study = study
        self.series = series
    }

    public init(parsing text: String) throws {
        guard let url = URL(string: text), let scheme = url.scheme, ["http", "https"].contains(scheme), url.host != nil else {
            throw DataError(file: text, "not an http(s) address of a DICOMweb study or series")
        }
        var parts = url.path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        var series: String?
        if parts.count >= 2, parts[parts.count - 2] == "series" {
            series = parts.removeLast()
            parts.removeLast()
        }
        guard parts.count >= 2, parts[parts.count - 2] == "studies", Self.isUID(parts.last!), series.map(Self.isUID) ?? true else {
            throw DataError(file: text, "not a DICOMweb study or series address; expected http://HOST:PORT/ROOT/studies/STUDY_UID[/series/SERIES_UID]")
        }
        let study = parts.removeLast()
        parts.removeLast()
        var components = URLComponents(url: url, resolvingAgainstBaseURL: false)!
        components.path = "/" + parts.joined(separator: "/")
        components.query = nil
        components.fragment = nil
        self.init(service: components.url!, study: study, series: series)
    }

    /// A DICOM UID: digits and dots, at most 64 characters.
    static func isUID(_ text: String) -> Bool {
        !text.isEmpty && text.count <= 64 && text.allSatisfy { $0 == "." || $0.isASCII && $0.isNumber }
    }

    /// The address of this study, or of one of its series.
    public func url(series: String? = nil) -> URL {
        var url = service.appendingPathComponent("studies").appendingPathComponent(study)
        if let series = series ?? self.series { url = url.appendingPathComponent("series").appendingPathComponent(series) }
        return url
    }

    public var description: String { url().absoluteString }
}
