import Foundation
import XCTest

/// Runs reference checks in Python (PyTorch, tensorboard, nibabel...), which scripts/setup.sh installs.
public enum Python {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs `script` with `python3` (or `interpreter`) and returns its standard output; a non-zero
    /// exit is an error carrying standard error.
    public static func run(_ script: String, _ arguments: [String] = [], interpreter: String = "python3") throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [interpreter, "-c", script] + arguments
        // Standard error goes to a file so that neither stream can block the other on a full pipe.
        let errorFile = FileManager.default.temporaryDirectory.appendingPathComponent("python-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errorFile) }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = try FileHandle(forWritingTo: errorFile)
        try process.run()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let err = (try? Data(contentsOf: errorFile)) ?? Data()
        guard process.terminationStatus == 0 else {
            throw Failure(description: "\(interpreter) failed (run scripts/setup.sh to install the reference packages): "
                          + String(decoding: err, as: UTF8.self))
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// The `medseg` executable built next to the test bundle (`swift build --build-tests` builds it).
public enum Executables {
    public static func medseg() -> URL? {
        var dir = Bundle.main.bundleURL
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("medseg")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }
}

extension Executables {
    /// Runs the built `medseg` with `args`; returns its exit status and stdout + stderr.
    /// `environment` sets variables (nil removes one); with `expectSuccess`, a non-zero status
    /// fails the calling test with the output.
    @discardableResult
    public static func runMedSeg(_ args: [String], expectSuccess: Bool = true, environment: [String: String?] = [:],
                                 file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = try XCTUnwrap(medseg(), "the medseg executable is not built", file: file, line: line)
        process.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        if expectSuccess {
            XCTAssertEqual(process.terminationStatus, 0, "medseg \(args.joined(separator: " ")):\n\(output)", file: file, line: line)
        }
        return (process.terminationStatus, output)
    }
}

/// `medseg ARGS` for tests (`Executables.runMedSeg`), failing at the caller's line.
@discardableResult
public func medseg(_ args: [String], expectSuccess: Bool = true, environment: [String: String?] = [:],
                   file: StaticString = #filePath, line: UInt = #line) throws -> (status: Int32, output: String) {
    try Executables.runMedSeg(args, expectSuccess: expectSuccess, environment: environment, file: file, line: line)
}

/// A fresh, empty folder under the temporary directory, named `prefix-UUID`; the caller removes it.
public func makeTemporaryFolder(_ prefix: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}
