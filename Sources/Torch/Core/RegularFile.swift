import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Whether a path names a file that can be read to its end: a folder, a named pipe (FIFO), a
/// device or a socket where a file is expected would make a reader fail late, hang waiting for a
/// writer, or read without end. Readers ask first and refuse at once in one line.
public enum RegularFile {
    /// nil for a regular file (symbolic links followed), else what the path is instead.
    public static func problem(_ url: URL) -> String? {
        var info = stat()
        guard stat(url.path, &info) == 0 else {
            return errno == ENOENT ? "no such file" : "cannot open: \(String(cString: strerror(errno)))"
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return nil
        case S_IFDIR: return "is a folder, not a file"
        case S_IFIFO: return "is a named pipe (FIFO), not a file"
        case S_IFCHR, S_IFBLK: return "is a device, not a file"
        case S_IFSOCK: return "is a socket, not a file"
        default: return "is not a regular file"
        }
    }

    /// Why a file cannot be read (without its name: callers say which file).
    public struct Failure: Error, CustomStringConvertible, LocalizedError {
        public let description: String
        public var errorDescription: String? { description }
    }

    /// The bytes of a regular file of at most `limit` bytes (a settings file, a manifest): a
    /// folder, pipe or device, or a file over the limit, is refused before reading.
    public static func contents(_ url: URL, limit: Int = 256 << 20) throws -> Data {
        if let problem = problem(url) { throw Failure(description: problem) }
        var info = stat()
        if stat(url.path, &info) == 0, Int(info.st_size) > limit {
            throw Failure(description: "is \(Int(info.st_size) >> 20) MiB, more than such a file holds (\(limit >> 20) MiB)")
        }
        do { return try Data(contentsOf: url) } catch {
            throw Failure(description: "cannot be read (\((error as NSError).localizedDescription))")
        }
    }
}
