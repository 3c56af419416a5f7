import Foundation

/// Every failure to read or write data: a one-line message naming the file (when there is one)
/// and the problem, e.g. "scan.nii.gz: truncated: header says 4194304 voxel bytes, file has 1000".
public struct DataError: Error, CustomStringConvertible, LocalizedError, Equatable, Sendable {
    /// The file the problem is about, as given (nil for problems not tied to one file).
    public let file: String?
    /// What went wrong, without the file name.
    public let problem: String

    public init(_ problem: String) {
        self.file = nil
        self.problem = problem
    }

    public init(file: String, _ problem: String) {
        self.file = file
        self.problem = problem
    }

    public init(file: URL, _ problem: String) {
        self.init(file: file.isFileURL ? file.path : file.absoluteString, problem)
    }

    /// The same problem, reported against `file` unless it already names one.
    public func about(_ file: URL) -> DataError {
        self.file == nil ? DataError(file: file, problem) : self
    }

    public var message: String { file.map { "\($0): \(problem)" } ?? problem }
    public var description: String { message }
    public var errorDescription: String? { message }
}
