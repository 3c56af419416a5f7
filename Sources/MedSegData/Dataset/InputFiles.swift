import Foundation

/// The files a command reads, so that none of its outputs lands on one of them: every output is
/// checked before anything is written, by resolved path (symbolic links followed) and, for files
/// that exist, by device and inode (hard links).
public struct InputFiles {
    private struct Identity: Hashable { let device: UInt64, inode: UInt64 }
    private var roles: [String: String] = [:]
    private var identities: [Identity: String] = [:]

    public init() {}

    /// Records `urls` as inputs, described as `role` in a refusal (e.g. "an input image").
    public mutating func add(_ urls: [URL], as role: String) {
        for url in urls {
            let path = Self.canonicalPath(url)
            roles[path] = roles[path] ?? role
            if let id = Self.identity(url) { identities[id] = identities[id] ?? role }
        }
    }

    /// Throws, naming `output` and the option that chose it, when it is one of the inputs.
    public func refuseOverwriting(_ output: URL, option: String) throws {
        let role = roles[Self.canonicalPath(output)] ?? Self.identity(output).flatMap { identities[$0] }
        guard let role else { return }
        throw DataError(file: output, "is \(role) of this command; writing there would destroy it: choose another \(option)")
    }

    /// Throws when the output folder is the input folder (or the same folder through a link):
    /// outputs would be written among, and where names match over, the inputs.
    public static func refuseSameFolder(output: URL, outputOption: String, input: URL, inputOption: String) throws {
        let same = canonicalPath(output) == canonicalPath(input)
            || (identity(output).map { $0 == identity(input) } ?? false)
        guard same else { return }
        throw DataError(file: output, "is also the \(inputOption) folder: the outputs would be written among (and over) its files; choose another \(outputOption)")
    }

    /// The absolute path with every symbolic link of its existing part resolved.
    static func canonicalPath(_ url: URL) -> String {
        let standard = url.standardizedFileURL
        if FileManager.default.fileExists(atPath: standard.path) { return standard.resolvingSymlinksInPath().path }
        let parent = standard.deletingLastPathComponent()
        guard parent.path != standard.path else { return standard.path }
        return URL(fileURLWithPath: canonicalPath(parent)).appendingPathComponent(standard.lastPathComponent).path
    }

    private static func identity(_ url: URL) -> Identity? {
        var info = stat()
        guard stat(url.path, &info) == 0 else { return nil }
        return Identity(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    }
}
