import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// How much memory this process can still take, checked before a reader holds a whole image: an
/// image too large for it is refused in one line that says how much it needs, instead of an abort
/// halfway through its allocation.
public enum MemoryBudget {
    /// Bytes this process can still allocate: the smallest of free memory (MemAvailable and free
    /// swap), its control group's remaining limit and its address-space limit (`ulimit -v`) less
    /// what it has mapped already. nil where none of these can be read.
    public static func available() -> Int? {
        var limits: [Int] = []
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            let fields = kilobyteFields(meminfo)
            if let free = fields["MemAvailable"] { limits.append((free + (fields["SwapFree"] ?? 0)) * 1024) }
        }
        if let max = number(atPath: "/sys/fs/cgroup/memory.max"), let current = number(atPath: "/sys/fs/cgroup/memory.current") {
            limits.append(Swift.max(0, max - current))
        }
        var limit = rlimit()  // RLIM_INFINITY is all ones: rlim_t.max
        if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,
           let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").first.flatMap({ Int($0) }) {
            let cap = Int(clamping: limit.rlim_cur)
            limits.append(Swift.max(0, cap - pages * Int(sysconf(Int32(_SC_PAGESIZE)))))
        }
        return limits.min()
    }

    /// Throws, naming `file`, when `bytes` exceed what is available: "`what` needs N GB of memory,
    /// M GB are available".
    public static func require(_ bytes: Int, for what: String, file: URL, hint: String? = nil) throws {
        guard let available = available(), bytes > available else { return }
        throw DataError(file: file, "\(what) needs \(gigabytes(bytes)) of memory, \(gigabytes(available)) are available "
            + "(free memory, or this process's limit)" + (hint.map { ": \($0)" } ?? ""))
    }

    /// Bytes as "4.3 GB" (decimal, as `free -h` and the benchmarks print them).
    public static func gigabytes(_ bytes: Int) -> String {
        String(format: bytes >= 100_000_000 ? "%.1f GB" : "%.2f GB", Double(bytes) / 1e9)
    }

    /// "Name:  123 kB" lines as [Name: 123].
    private static func kilobyteFields(_ text: String) -> [String: Int] {
        var fields: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            if parts.count >= 2, let value = Int(parts[1]) { fields[String(parts[0])] = value }
        }
        return fields
    }

    /// A file holding one whole number ("max" and unreadable files give nil).
    private static func number(atPath path: String) -> Int? {
        (try? String(contentsOfFile: path, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }
}
