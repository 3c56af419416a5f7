import Foundation
import XCTest
import TestSupport

/// The decisions of scripts/torch-cuda.sh (the CUDA set-up and `make gpu-bundle`), taken with
/// `--dry-run` on targets in each state a machine can be in. A fresh machine has no target at all:
/// the script once stopped there under `set -euo pipefail` before installing anything.
final class SetupScriptTests: XCTestCase {
    private var temp: URL!

    override func setUpWithError() throws {
        temp = try makeTemporaryFolder("setup-script")
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: temp) }

    private func dryRun(_ target: URL, torchVersion: String = "2.11.0") throws -> (status: Int32, output: String) {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [root.appendingPathComponent("scripts/torch-cuda.sh").path, "--dry-run", target.path]
        process.environment = ProcessInfo.processInfo.environment.merging(["MEDSEG_TORCH_VERSION": torchVersion]) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    private func write(_ text: String, to path: String, in target: URL) throws {
        let url = target.appendingPathComponent(path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(text.utf8).write(to: url)
    }

    func testCUDAWheelScriptInstallsIntoAFreshTarget() throws {
        for target in [temp.appendingPathComponent("missing"), temp!] {
            let (status, output) = try dryRun(target)
            XCTAssertEqual(status, 0, output)
            XCTAssertEqual(output, "torch-cuda: would install torch==2.11.0 into \(target.path)\n")
        }
    }

    func testCUDAWheelScriptAddsOnlyWhatIsMissing() throws {
        try write("", to: "torch/lib/libtorch_cuda.so", in: temp)
        try write("Name: torch\nVersion: 2.11.0+cu130\n", to: "torch-2.11.0+cu130.dist-info/METADATA", in: temp)
        try write("Name: cuda-toolkit\nVersion: 13.0.2\n", to: "cuda_toolkit-13.0.2.dist-info/METADATA", in: temp)
        var run = try dryRun(temp)
        XCTAssertEqual(run.status, 0, run.output)
        XCTAssertEqual(run.output, "torch-cuda: would add the CUDA 13.0.2 crt/cccl headers to \(temp.path)\n")

        try write("", to: "nvidia/cu13/include/crt/host_defines.h", in: temp)
        run = try dryRun(temp)
        XCTAssertEqual(run.output, "torch-cuda: \(temp.path) is complete (torch 2.11.0+cu130)\n")

        // Another torch version asked for replaces the wheel.
        run = try dryRun(temp, torchVersion: "2.10.0")
        XCTAssertEqual(run.output, "torch-cuda: would install torch==2.10.0 into \(temp.path)\n")
    }

    /// `make demo` runs `scripts/setup.sh --runtime`: what building and running medseg needs, none
    /// of the test references (python3-torch, nnU-Net, MONAI, SLURM, NVRTC) that `make test` adds.
    func testRuntimeSetUpInstallsOnlyWhatMedSegNeeds() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        func plan(_ args: [String]) throws -> [String: [String]] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [root.appendingPathComponent("scripts/setup.sh").path] + args + ["--print-plan"]
            let pipe = Pipe()
            process.standardOutput = pipe
            try process.run()
            let data = pipe.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            XCTAssertEqual(process.terminationStatus, 0)
            var lines: [String: [String]] = [:]
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                let parts = line.split(separator: ":", maxSplits: 1)
                lines[String(parts[0])] = parts[1].split(separator: " ").map(String.init)
            }
            return lines
        }
        let runtime = try plan(["--runtime"]), full = try plan([])
        for needed in ["libtorch-dev", "libgloo-dev", "libopenblas0-pthread", "libtiff-dev", "libgdcm-dev", "libdcmtk-dev"] {
            XCTAssertTrue(runtime["debian"]!.contains(needed), needed)
            XCTAssertTrue(full["debian"]!.contains(needed), needed)
        }
        for testOnly in ["python3-torch", "python3-scipy", "dcm2niix", "python3-pydicom"] {
            XCTAssertFalse(runtime["debian"]!.contains(testOnly), testOnly)
            XCTAssertTrue(full["debian"]!.contains(testOnly), testOnly)
        }
        XCTAssertEqual(runtime["python"], ["none"])
        XCTAssertEqual(runtime["extras"], ["none"])
        XCTAssertTrue(full["python"]!.contains("nnunetv2") && full["python"]!.contains("nibabel"))
        XCTAssertTrue(["highdicom==0.22.0", "dicom3tools", "dcmqi", "rt-utils"].allSatisfy(full["python"]!.contains))
        // The ONNX tests run exported models in onnxruntime and check them with onnx's checker.
        XCTAssertTrue(full["python"]!.contains("onnxruntime") && full["python"]!.contains("onnx"))
        XCTAssertEqual(full["extras"], ["slurm", "munge", "nvrtc", "monai-1.6-mednext"])
        // The Makefile asks for the runtime set for the demo only.
        let makefile = try String(contentsOf: root.appendingPathComponent("Makefile"), encoding: .utf8)
        XCTAssertTrue(makefile.contains("SETUP_FLAGS := $(if $(filter-out demo build setup,$(MAKECMDGOALS)),,--runtime)"))
    }
}
