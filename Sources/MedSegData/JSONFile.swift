import Foundation

/// Decoding of the JSON files users write or edit (dataset.json, plans.json, splits, post-processing),
/// with what is wrong in one line a user can act on: where the text stops being JSON (line and
/// column), or which key is missing or has the wrong type. Swift's own DecodingError text names
/// neither the line nor the key path in a readable form.
public enum JSONFile {
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        do { return try JSONDecoder().decode(type, from: data) } catch let error as DecodingError {
            throw DataError(problem(error, in: data))
        }
    }

    /// The reason `error` gives for `data`, without the file's name.
    public static func problem(_ error: DecodingError, in data: Data) -> String {
        func path(_ context: DecodingError.Context, _ last: CodingKey? = nil) -> String {
            let keys = context.codingPath + (last.map { [$0] } ?? [])
            return keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".").replacingOccurrences(of: ".[", with: "[")
        }
        switch error {
        case .dataCorrupted(let context) where context.codingPath.isEmpty:
            return data.allSatisfy({ [9, 10, 13, 32].contains($0) }) ? "the file is empty" : "not valid JSON\(location(in: data))"
        case .dataCorrupted(let context):
            return "\(path(context)): \(context.debugDescription)"
        case .keyNotFound(let key, let context):
            return "missing key \"\(path(context, key))\""
        case .typeMismatch(let type, let context):
            // Foundation's own wording varies between versions; a decoder's own explanation is kept.
            let why = context.debugDescription.hasPrefix("Expected to decode") ? "expected \(kind(type))" : context.debugDescription
            return "wrong type at \(path(context)): \(why)"
        case .valueNotFound(_, let context):
            return "\(path(context)) is null where a value is needed"
        @unknown default:
            return "\(error)"
        }
    }

    private static func kind(_ type: Any.Type) -> String {
        switch type {
        case is Int.Type, is Int8.Type, is Int32.Type, is Int64.Type, is UInt.Type, is UInt64.Type: return "a whole number"
        case is Double.Type, is Float.Type: return "a number"
        case is String.Type: return "text in quotes"
        case is Bool.Type: return "true or false"
        default:
            let name = String(describing: type)
            if name.hasPrefix("Array") { return "a list" }
            if name.hasPrefix("Dictionary") { return "an object" }
            return name
        }
    }

    /// " at line L, column C (reason)" where Foundation's parser says where it stopped.
    private static func location(in data: Data) -> String {
        do { _ = try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) } catch {
            let reason = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String ?? ""
            guard let match = reason.range(of: #"character (\d+)"#, options: .regularExpression),
                  let offset = Int(reason[match].dropFirst("character ".count)) else { return reason.isEmpty ? "" : " (\(reason))" }
            let prefix = data.prefix(offset)
            let line = prefix.filter { $0 == UInt8(ascii: "\n") }.count + 1
            let column = offset - (prefix.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
            let what = reason.components(separatedBy: " around").first ?? reason
            return " at line \(line), column \(column) (\(what.lowercased()))"
        }
        return ""
    }
}
