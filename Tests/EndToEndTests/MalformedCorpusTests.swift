import Foundation
import XCTest
import TestSupport

/// Every entry of the malformed-input corpus (scripts/malformed/make_corpus.py: lying, overflowing,
/// inflating and escaping headers for every image reader, broken data sets and configs) through
/// `medseg data info` or the command the entry names (data check, train, plan), under a 2 GB
/// address-space limit: no crash, no hang, no allocation its content does not need, one line that
/// names the file, and the expected reason where the corpus gives one.
final class MalformedCorpusTests: XCTestCase {
    private struct Entry: Decodable {
        let file: String
        let expect: String
        let fragment: String
        /// The command line (default: data info FILE); {file} is the entry's path, {tmp} a scratch folder.
        let args: [String]?
    }

    func testNoMalformedInputCrashesHangsOrOverAllocates() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let corpus = FileManager.default.temporaryDirectory.appendingPathComponent("corpus-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: corpus) }
        _ = try Python.run(String(contentsOf: root.appendingPathComponent("scripts/malformed/make_corpus.py"), encoding: .utf8),
                           [corpus.path], interpreter: "/usr/bin/python3")
        let entries = try JSONDecoder().decode([Entry].self, from: Data(contentsOf: corpus.appendingPathComponent("manifest.json")))
        XCTAssertGreaterThan(entries.count, 50)
        let medseg = try XCTUnwrap(Executables.medseg(), "the medseg executable is not built")
        let failures = Failures()
        DispatchQueue.concurrentPerform(iterations: entries.count) { i in
            let entry = entries[i]
            let file = corpus.appendingPathComponent(entry.file).path
            let scratch = corpus.appendingPathComponent("scratch-\(i)").path
            let args = (entry.args ?? ["data", "info", "{file}"]).map {
                $0.replacingOccurrences(of: "{file}", with: file).replacingOccurrences(of: "{tmp}", with: scratch)
            }
            let (status, signaled, output, seconds) = Self.run(medseg.path, args)
            let what = entry.args == nil ? entry.file : "\(entry.file) (\(entry.args!.prefix(2).joined(separator: " ")))"
            func fail(_ why: String) { failures.add("\(what): \(why)\n\(output.prefix(600))") }
            if signaled { return fail("killed by signal \(status) (a crash, or over the 2 GB limit)") }
            if seconds > 30 { return fail("took \(Int(seconds)) s") }
            if output.contains("Fatal error") || output.contains("Stack dump") { return fail("a trap") }
            // 1: refused; 64: a usage error (ArgumentParser's validation).
            guard [0, 1, 64].contains(status) else { return fail("exit status \(status)") }
            // `data check` lists every problem, one per line; everything else refuses in one line.
            if status != 0 && entry.args?.prefix(2) != ["data", "check"] {
                let errors = output.split(separator: "\n").filter { $0.hasPrefix("Error:") }
                if errors.count != 1 { return fail("\(errors.count) error lines") }
                // The file, or the file it pairs with (a .hdr's .img): the same name before its ending.
                let name = entry.file.split(separator: "/").last!
                let stem = name.split(separator: ".").first!
                let namesFile = entry.args.map { $0.contains("{file}") } ?? true
                if namesFile && !errors[0].contains(name) && !errors[0].contains("/\(stem).") { return fail("the error does not name the file") }
            }
            switch entry.expect {
            case "error":
                if status == 0 { return fail("was accepted") }
                if !entry.fragment.isEmpty && !output.contains(entry.fragment) { return fail("the error does not say \"\(entry.fragment)\"") }
            case "ok":
                if status != 0 { return fail("was refused") }
            default:
                break
            }
        }
        XCTAssertEqual(failures.all, [], "\(failures.all.count) of \(entries.count) malformed inputs:\n" + failures.all.joined(separator: "\n"))
    }

    private final class Failures: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [String] = []
        func add(_ s: String) { lock.lock(); items.append(s); lock.unlock() }
        var all: [String] { lock.lock(); defer { lock.unlock() }; return items.sorted() }
    }

    /// `medseg ARGS` under `ulimit -v` (2 GB) and a 60 s timeout.
    private static func run(_ medseg: String, _ args: [String]) -> (Int32, Bool, String, Double) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "ulimit -v 2000000; exec timeout -s KILL 60 \"$0\" \"$@\"", medseg] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        let start = Date()
        do { try p.run() } catch { return (-1, false, "cannot start: \(error)", 0) }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        // timeout reports a killed child as 128 + signal; the shell was replaced by timeout.
        let signaled = p.terminationReason == .uncaughtSignal || p.terminationStatus > 128
        return (p.terminationStatus, signaled, String(decoding: data, as: UTF8.self), Date().timeIntervalSince(start))
    }
}
