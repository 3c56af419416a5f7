/// A problem with input data: a file that cannot be read, a data set that is inconsistent. The
/// message is one line that names the file and what is wrong with it.
public struct DataError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
