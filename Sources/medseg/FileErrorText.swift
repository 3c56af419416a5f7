import Foundation

/// Foundation's file errors print as `Error Domain=NSCocoaErrorDomain Code=512 "(null)"UserInfo=…`;
/// this turns them into one line: the path and what the system said about it.
enum FileErrorText {
    static func readable(_ error: Error) -> Error? {
        let ns = error as NSError
        guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return nil }
        let path = ns.userInfo[NSFilePathErrorKey] as? String ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
        let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? Error).map { $0 as NSError }
        var reason: String
        if let underlying, underlying.domain == NSPOSIXErrorDomain, let text = strerror(Int32(underlying.code)) {
            reason = String(cString: text)
        } else if ns.domain == NSPOSIXErrorDomain, let text = strerror(Int32(ns.code)) {
            reason = String(cString: text)
        } else {
            switch ns.code {
            case NSFileWriteFileExistsError: reason = "already exists"
            case NSFileNoSuchFileError, NSFileReadNoSuchFileError: reason = "no such file or folder"
            case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: reason = "permission denied"
            case NSFileWriteOutOfSpaceError: reason = "no space left on the device"
            default: reason = ns.localizedDescription
            }
        }
        // "Not a directory" names the usual cause: a file given where a folder is expected.
        if reason == "Not a directory" { reason = "a file is in the way where a folder is expected (not a directory)" }
        return FileError(description: "\(path ?? "file"): \(reason)")
    }

    struct FileError: Error, CustomStringConvertible {
        let description: String
    }
}
