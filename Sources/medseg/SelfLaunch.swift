import ArgumentParser
import Foundation
import MedSegDist

/// medseg starting copies of itself: the data-parallel ranks of `train` and `benchmark`, and the
/// one restart that sets OpenMP's wait policy.
enum SelfLaunch {
    /// This very executable, whatever name or link it was started by.
    static let executablePath = "/proc/self/exe"

    /// This command line without `options` (each with its value, as `--opt V` or `--opt=V`).
    static func arguments(removing options: Set<String>) -> [String] {
        var args = Array(CommandLine.arguments.dropFirst())
        var i = 0
        while i < args.count {
            let a = args[i]
            if let eq = a.firstIndex(of: "="), options.contains(String(a[..<eq])) { args.remove(at: i); continue }
            if options.contains(a) { args.removeSubrange(i..<min(i + 2, args.count)); continue }
            i += 1
        }
        return args
    }

    /// Starts and supervises the ranks of this node; a failed group ends this process with its status.
    static func ranks(_ options: Launcher.Options, arguments: @escaping (_ restart: Int) -> [String]) throws {
        let launcher = Launcher(executable: URL(fileURLWithPath: executablePath).resolvingSymlinksInPath(), options: options, arguments: arguments)
        let status = try launcher.run()
        if status != 0 { throw ExitCode(status) }
    }
}
