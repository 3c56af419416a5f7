import Foundation

/// `multipart/related` bodies (RFC 2387), as DICOMweb sends instances (WADO-RS) and takes them
/// (STOW-RS): parts separated by `--BOUNDARY` lines, each with its own headers.
enum MultipartRelated {
    /// The boundary of a `Content-Type: multipart/related; ...; boundary=X` header.
    static func boundary(of contentType: String) -> String? {
        for parameter in contentType.split(separator: ";").dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if pair.count == 2, pair[0].lowercased() == "boundary" { return pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
        }
        return nil
    }

    /// The bodies of the parts (their headers dropped), in order.
    static func parts(of body: Data, boundary: String) throws -> [Data] {
        let delimiter = Data("--\(boundary)".utf8)
        let headerEnd = Data("\r\n\r\n".utf8)
        var parts: [Data] = []
        guard var start = body.range(of: delimiter)?.upperBound else { throw DataError("no part delimited by '--\(boundary)' in the response") }
        while true {
            // "--" right after a delimiter closes the body.
            if body[start...].starts(with: Data("--".utf8)) { return parts }
            guard let headers = body.range(of: headerEnd, in: start..<body.endIndex),
                  let next = body.range(of: Data("\r\n".utf8) + delimiter, in: headers.upperBound..<body.endIndex) else {
                throw DataError("the response ends inside part \(parts.count + 1) (cut short?)")
            }
            parts.append(body.subdata(in: headers.upperBound..<next.lowerBound))
            start = next.upperBound
        }
    }

    /// A body of `parts`, each of `contentType`, with a boundary that none of them contains.
    static func body(_ parts: [Data], contentType: String) -> (body: Data, boundary: String) {
        var boundary = "MedSeg-" + UUID().uuidString
        while parts.contains(where: { $0.range(of: Data(boundary.utf8)) != nil }) { boundary = "MedSeg-" + UUID().uuidString }
        var body = Data()
        for part in parts {
            body += Data("--\(boundary)\r\nContent-Type: \(contentType)\r\n\r\n".utf8)
            body += part
            body += Data("\r\n".utf8)
        }
        body += Data("--\(boundary)--\r\n".utf8)
        return (body, boundary)
    }
}
