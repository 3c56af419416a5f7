import Foundation
import Torch

/// How fast the device computes at best, so a benchmark can say how far its step is from it: a
/// large float32 matrix product and a large 3D convolution, each timed (best of a few runs) on
/// the device, and on a GPU also the card's nominal float32 and bf16 peaks where MedSeg knows them.
public struct HardwarePeak: Codable, Sendable {
    public var device: String
    /// TFLOP/s of a 2048 x 2048 x 2048 float32 product.
    public var gemm_tflops: Double
    /// TFLOP/s of a 3^3 convolution of 32 to 32 channels on 32 x 64 x 64 voxels (batch 2), float32.
    public var conv_tflops: Double
    /// The card's published dense peaks (TFLOP/s), where known.
    public var nominal_fp32_tflops: Double?
    public var nominal_bf16_tflops: Double?

    /// The better of the two measured figures: the peak a step is compared with.
    public var measured_tflops: Double { max(gemm_tflops, conv_tflops) }

    public static func measure(device: Device = .cpu, runs: Int = 3) throws -> HardwarePeak {
        func best(_ flops: Double, _ body: () throws -> Void) throws -> Double {
            try body()
            try Torch.synchronize(device)
            var fastest = Double.infinity
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                try body()
                try Torch.synchronize(device)
                fastest = min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            return flops / fastest / 1e12
        }
        return try withNoGrad {
            let n = 2048
            let a = try Tensor.randn([n, n], device: device), b = try Tensor.randn([n, n], device: device)
            let gemm = try best(2 * pow(Double(n), 3)) { _ = try a.matmul(b) }
            let x = try Tensor.randn([2, 32, 32, 64, 64], device: device), w = try Tensor.randn([32, 32, 3, 3, 3], device: device)
            let convFLOPs = try FLOPCounter.count { _ = try F.conv(x, weight: w, padding: [1]) }
            let conv = try best(Double(convFLOPs)) { _ = try F.conv(x, weight: w, padding: [1]) }
            var name = "CPU, \(Torch.threads) thread(s)"
            if case .cuda(let index) = device { name = Torch.cudaDeviceName(index) }
            let nominal = Self.nominal(name)
            return HardwarePeak(device: name, gemm_tflops: gemm, conv_tflops: conv, nominal_fp32_tflops: nominal?.fp32, nominal_bf16_tflops: nominal?.bf16)
        }
    }

    /// Published dense peaks of the cards MedSeg is run on (float32 without tensor cores, bf16 with).
    static func nominal(_ name: String) -> (fp32: Double, bf16: Double)? {
        let table: [(String, Double, Double)] = [("H200", 67, 989), ("H100 PCIe", 51, 756), ("H100", 67, 989), ("A100", 19.5, 312), ("L40S", 91.6, 362), ("A10G", 31.2, 70)]
        return table.first { name.contains($0.0) }.map { ($0.1, $0.2) }
    }
}
