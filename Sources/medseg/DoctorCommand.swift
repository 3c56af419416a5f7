import ArgumentParser
import Foundation
import MedSegDist
import MedSegTrain
import Torch

/// Prints what MedSeg runs on, so a user can see at a glance why something is slow or missing.
struct DoctorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract: "Show the libtorch build, threads, BLAS, CUDA and distributed back-ends in use.")

    @Option(help: "Intra-op threads to use (default: all cores).")
    var threads: Int?

    func validate() throws { try checkThreads(threads) }

    func run() throws {
        if let threads { Torch.threads = threads }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        var rows: [(String, String)] = [
            ("MedSeg", MedSegVersion.string),
            ("libtorch", Torch.version),
            ("engine", engineDescription()),
            ("intra-op threads", "\(Torch.threads) (\(cores) cores)"),
            ("OpenMP waiting", ProcessInfo.processInfo.environment["OMP_WAIT_POLICY"].map { "OMP_WAIT_POLICY=\($0)" } ?? "default (spinning)"),
            ("BLAS", describeBLAS(Torch.blasLibrary)),
            ("compute peak (CPU)", try peakText(.cpu)),
        ]
        if Torch.cudaAvailable {
            let names = (0..<Torch.cudaDeviceCount).map { "cuda:\($0) \(Torch.cudaDeviceName($0))" }
            rows.append(("CUDA", "\(Torch.cudaDeviceCount) device(s): " + names.joined(separator: ", ")))
            rows.append(("cuDNN", Torch.cudnnAvailable ? "available" : "not available"))
            rows.append(("compute peak (cuda:0)", try peakText(.cuda(0))))
            // Loading the scan's kernels compiles them with NVRTC: the fallback here means NVRTC or
            // the driver API could not be loaded.
            let probe = try Tensor.zeros([1, 1, 1]).to(device: .cuda(0))
            rows.append(("selective scan", "cuda:0 " + F.selectiveScanBackend(probe)))
        } else {
            rows.append(("CUDA", "not available (CPU build or no GPU)"))
            rows.append(("selective scan", F.selectiveScanBackend(try Tensor.zeros([1, 1, 1]))))
        }
        rows.append(("Gloo (CPU collectives)", Torch.glooAvailable ? "available" : "not available"))
        rows.append(("NCCL (GPU collectives)", Torch.ncclAvailable ? "available" : "not available"))
        rows.append(("launcher", DistributedEnvironment.launcherDescription()))
        let width = rows.map(\.0.count).max() ?? 0
        for (key, value) in rows {
            print(key.padding(toLength: width + 2, withPad: " ", startingAt: 0) + value)
        }
    }

    /// CPU or CUDA libtorch, where it was loaded from, and why the set-up chose it.
    private func engineDescription() -> String {
        // /proc files report size 0: read them to the end rather than by their size.
        let maps = FileHandle(forReadingAtPath: "/proc/self/maps").map { String(decoding: $0.readDataToEndOfFile(), as: UTF8.self) } ?? ""
        let libs = Set(maps.split(separator: "\n").compactMap { line -> String? in
            guard let slash = line.firstIndex(of: "/") else { return nil }
            return String(line[slash...])
        })
        let cpuLib = libs.first { $0.hasSuffix("/libtorch_cpu.so") || $0.contains("/libtorch_cpu.so.") }
        let cuda = libs.contains { $0.hasSuffix("/libtorch_cuda.so") }
        let folder = cpuLib.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path } ?? "unknown path"
        let env = ProcessInfo.processInfo.environment
        let why: String
        if let forced = env["MEDSEG_ENGINE"], !forced.isEmpty {
            why = "MEDSEG_ENGINE=\(forced) (environment override)"
        } else if FileManager.default.fileExists(atPath: "/proc/driver/nvidia/version") {
            why = "NVIDIA driver detected (/proc/driver/nvidia/version)"
        } else {
            why = "no NVIDIA driver"
        }
        return "\(cuda ? "CUDA" : "CPU") libtorch \(Torch.version) in \(folder); \(why)"
    }

    private func describeBLAS(_ path: String) -> String {
        let lower = path.lowercased()
        if lower.contains("openblas") { return "OpenBLAS (\(path))" }
        if lower.contains("mkl") { return "MKL (\(path))" }
        if lower.contains("blas/libblas") || lower.hasSuffix("libblas.so.3") {
            return "reference BLAS (\(path)) - slow: install libopenblas0-pthread"
        }
        return path
    }

    /// A GEMM and a convolution timed: reveals a slow BLAS or a wrong thread count, and is the
    /// measured peak `medseg benchmark` compares its steps with (and a card's nominal peaks).
    private func peakText(_ device: Device) throws -> String {
        let p = try HardwarePeak.measure(device: device)
        var text = String(format: "%.3f TFLOP/s float32 (GEMM 2048^3 %.3f, 3D conv %.3f)", p.measured_tflops, p.gemm_tflops, p.conv_tflops)
        if let fp32 = p.nominal_fp32_tflops, let bf16 = p.nominal_bf16_tflops { text += String(format: "; nominal %.0f float32, %.0f bf16", fp32, bf16) }
        return text
    }
}
