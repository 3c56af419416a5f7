import XCTest
@testable import Torch

final class TensorTests: XCTestCase {
    /// Device names come from the CUDA driver (no CUDA runtime header at build time): a real name
    /// with its compute capability where a GPU is, else a line that says the driver cannot name it.
    func testCUDADeviceNameComesFromTheDriver() throws {
        let name = Torch.cudaDeviceName(0)
        if Torch.cudaAvailable {
            XCTAssertTrue(name.contains("(compute "), name)
            XCTAssertFalse(name.hasPrefix("(unnamed"), name)
        } else if !FileManager.default.fileExists(atPath: "/proc/driver/nvidia/version") {
            XCTAssertEqual(name, "(unnamed: the CUDA driver (libcuda.so.1) cannot name device 0)")
        }
    }

    /// torch.cuda.max_memory_allocated's figure: a 64 MiB tensor made after a reset raises the peak
    /// by at least that much; the CPU has no such figure.
    func testCUDAPeakMemoryCountsTensors() throws {
        XCTAssertNil(Torch.cudaPeakMemoryBytes(.cpu))
        XCTAssertNil(Torch.cudaTotalMemoryBytes(.cpu))
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        // The driver's total (predict's default logits budget is a quarter of it): more than any tensor here.
        XCTAssertGreaterThan(try XCTUnwrap(Torch.cudaTotalMemoryBytes(.cuda(0))), 1 << 30)
        Torch.resetCUDAPeakMemory(.cuda(0))
        let before = try XCTUnwrap(Torch.cudaPeakMemoryBytes(.cuda(0)))
        let t = try Tensor.zeros([16, 1024, 1024], device: .cuda(0))
        let after = try XCTUnwrap(Torch.cudaPeakMemoryBytes(.cuda(0)))
        XCTAssertGreaterThanOrEqual(after - before, 64 << 20)
        withExtendedLifetime(t) {}
    }

    /// --device values: a CUDA device the machine lacks is one clear error, not libtorch's dump.
    func testDeviceResolution() throws {
        XCTAssertEqual(try Device.resolve("cpu"), .cpu)
        XCTAssertEqual(try Device.resolve("auto"), Torch.cudaAvailable ? .cuda(0) : .cpu)
        XCTAssertThrowsError(try Device.resolve("tpu")) { XCTAssertTrue("\($0)".contains("unknown device 'tpu'"), "\($0)") }
        if Torch.cudaAvailable {
            XCTAssertEqual(try Device.resolve("cuda"), .cuda(0))
            XCTAssertThrowsError(try Device.resolve("cuda:99")) { XCTAssertTrue("\($0)".contains("cuda:99 does not exist"), "\($0)") }
        } else {
            for text in ["cuda", "cuda:1"] {
                XCTAssertThrowsError(try Device.resolve(text)) { XCTAssertTrue("\($0)".contains("no CUDA device is visible"), "\($0)") }
            }
        }
    }

    func testCreationAndReadBack() throws {
        let t = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        XCTAssertEqual(t.shape, [2, 3])
        XCTAssertEqual(t.strides, [3, 1])
        XCTAssertEqual(t.dtype, .float32)
        XCTAssertEqual(t.device, .cpu)
        XCTAssertEqual(try t.floats(), [1, 2, 3, 4, 5, 6])
        XCTAssertThrowsError(try Tensor([1, 2, 3] as [Float], shape: [2, 2]))
        XCTAssertEqual(try Tensor.zeros([2, 2]).floats(), [0, 0, 0, 0])
        XCTAssertEqual(try Tensor.ones([3], dtype: .int32).toArray(Int32.self), [1, 1, 1])
        XCTAssertEqual(try Tensor.full([2], 2.5).floats(), [2.5, 2.5])
        XCTAssertEqual(try Tensor.arange(0, 5, step: 2, dtype: .int64).toArray(Int64.self), [0, 2, 4])
        XCTAssertEqual(try Tensor.eye(2).floats(), [1, 0, 0, 1])
        XCTAssertEqual(try Tensor.linspace(0, 1, steps: 3).floats(), [0, 0.5, 1])
    }

    func testRandomIsSeededAndInRange() throws {
        Torch.manualSeed(7)
        let a = try Tensor.rand([100]).floats()
        Torch.manualSeed(7)
        let b = try Tensor.rand([100]).floats()
        XCTAssertEqual(a, b)
        XCTAssertTrue(a.allSatisfy { $0 >= 0 && $0 < 1 })
        let n = try Tensor.randn([20000])
        XCTAssertEqual(try n.mean().item(), 0, accuracy: 0.05)
        XCTAssertEqual(try n.std().item(), 1, accuracy: 0.05)
        let r = try Tensor.randint(3, 6, [500]).toArray(Int64.self)
        XCTAssertEqual(Set(r), [3, 4, 5])
        XCTAssertEqual(try Tensor.randperm(6).sort().values.toArray(Int64.self), [0, 1, 2, 3, 4, 5])
    }

    func testDTypesRoundTrip() throws {
        let x = try Tensor([0.5, -1.25, 3] as [Float])
        for dtype in [DType.float16, .bfloat16, .float64] {
            XCTAssertEqual(try x.to(dtype: dtype).to(dtype: .float32).floats(), [0.5, -1.25, 3], "\(dtype)")
        }
        XCTAssertEqual(try x.to(dtype: .int64).toArray(Int64.self), [0, -1, 3])
        XCTAssertEqual(try x.gt(0).toArray(Bool.self), [true, false, true])
        XCTAssertEqual(try x.to(dtype: .uint8).dtype, .uint8)
        XCTAssertEqual(DType.bfloat16.byteSize, 2)
        XCTAssertEqual(try Tensor([true, false]).dtype, .bool)
    }

    func testArithmeticAndBroadcasting() throws {
        let a = try Tensor([1, 2, 3, 4] as [Float], shape: [2, 2])
        let b = try Tensor([10, 20] as [Float])
        XCTAssertEqual(try (a + b).floats(), [11, 22, 13, 24])
        XCTAssertEqual(try (a - 1).floats(), [0, 1, 2, 3])
        XCTAssertEqual(try (2 * a).floats(), [2, 4, 6, 8])
        XCTAssertEqual(try (a / b).floats(), [0.1, 0.1, 0.3, 0.2])
        XCTAssertEqual(try (1 - a).floats(), [0, -1, -2, -3])
        XCTAssertEqual(try (-a).floats(), [-1, -2, -3, -4])
        XCTAssertEqual(try a.pow(2).floats(), [1, 4, 9, 16])
        XCTAssertEqual(try a.matmul(a).floats(), [7, 10, 15, 22])
        XCTAssertEqual(try a.clamp(min: 2, max: 3).floats(), [2, 2, 3, 3])
        XCTAssertEqual(try Tensor.where(a.gt(2), a, a * 0).floats(), [0, 0, 3, 4])
        XCTAssertEqual(try a.maskedFill(a.lt(2), -1).floats(), [-1, 2, 3, 4])
        let i = try Tensor([1, 2] as [Int64])
        XCTAssertEqual(try (i + 1).dtype, .int64, "integer tensors stay integer with integral scalars")
        XCTAssertEqual(try (Tensor(scalar: 2, dtype: .float32) + 0.3).dtype, .float32, "a Swift number never widens a tensor, as in PyTorch")
        XCTAssertEqual(try (Tensor(scalar: 2, dtype: .float16) * 0.5).dtype, .float16)
        XCTAssertEqual(try (i * 0.5).dtype, .float32, "an integer tensor times a fraction is float32, as in PyTorch")
        XCTAssertEqual(try a.sqrt().square().floats().map { ($0 * 1000).rounded() / 1000 }, [1, 2, 3, 4])
        XCTAssertEqual(try (a .== a).all().item(), 1)
    }

    func testReductions() throws {
        let a = try Tensor([1, 2, 3, 4, 5, 6] as [Float], shape: [2, 3])
        XCTAssertEqual(try a.sum().item(), 21)
        XCTAssertEqual(try a.sum(dim: 0).floats(), [5, 7, 9])
        XCTAssertEqual(try a.mean(dim: 1, keepDim: true).shape, [2, 1])
        XCTAssertEqual(try a.mean(dims: [1]).floats(), [2, 5])
        XCTAssertEqual(try a.max().item(), 6)
        XCTAssertEqual(try a.min(dims: [1]).floats(), [1, 4])
        let (values, idx) = try a.max(dim: 1)
        XCTAssertEqual(try values.floats(), [3, 6])
        XCTAssertEqual(try idx.toArray(Int64.self), [2, 2])
        XCTAssertEqual(try a.variance(dims: [1]).floats(), [1, 1])
        XCTAssertEqual(try a.norm().item(), 91.0.squareRoot(), accuracy: 1e-5)
        XCTAssertEqual(try a.cumsum(dim: 1).floats(), [1, 3, 6, 4, 9, 15])
        XCTAssertEqual(try a.prod().item(), 720)
        XCTAssertEqual(try a.logsumexp().item(), Foundation.log((1...6).map { Foundation.exp(Double($0)) }.reduce(0, +)), accuracy: 1e-4)
        XCTAssertEqual(try Tensor([3, 1, 3, 2] as [Int64]).unique().toArray(Int64.self), [1, 2, 3])
        XCTAssertEqual(try Tensor([0, 2, 2] as [Int64]).bincount(minLength: 4).toArray(Int64.self), [1, 0, 2, 0])
    }

    func testShapeOperations() throws {
        let a = try Tensor.arange(0, 24).reshape([2, 3, 4])
        XCTAssertEqual(try a.permute([2, 0, 1]).shape, [4, 2, 3])
        XCTAssertFalse(try a.transpose(0, 2).isContiguous)
        XCTAssertTrue(try a.transpose(0, 2).contiguous().isContiguous)
        XCTAssertEqual(try a.flatten(start: 1).shape, [2, 12])
        XCTAssertEqual(try a.unsqueeze(1).shape, [2, 1, 3, 4])
        XCTAssertEqual(try a.unsqueeze(1).squeeze(dim: 1).shape, [2, 3, 4])
        XCTAssertEqual(try a.view([6, 4]).shape, [6, 4])
        XCTAssertEqual(try a[1].shape, [3, 4])
        XCTAssertEqual(try a[1][2].floats(), [20, 21, 22, 23])
        XCTAssertEqual(try a.slice(dim: 2, start: 1, end: 4, step: 2)[0][0].floats(), [1, 3])
        XCTAssertEqual(try a.narrow(dim: 1, start: 1, length: 1).shape, [2, 1, 4])
        XCTAssertEqual(try Tensor.cat([a, a], dim: 1).shape, [2, 6, 4])
        XCTAssertEqual(try Tensor.stack([a, a], dim: 0).shape, [2, 2, 3, 4])
        XCTAssertEqual(try a.split(3, dim: 2).map(\.shape), [[2, 3, 3], [2, 3, 1]])
        XCTAssertEqual(try a.split(sizes: [1, 2], dim: 1).map(\.shape), [[2, 1, 4], [2, 2, 4]])
        XCTAssertEqual(try a.chunk(2, dim: 2).count, 2)
        let v = try Tensor([1, 2, 3] as [Float])
        XCTAssertEqual(try v.flip([0]).floats(), [3, 2, 1])
        XCTAssertEqual(try v.roll(shifts: [1], dims: [0]).floats(), [3, 1, 2])
        XCTAssertEqual(try v.indexSelect(dim: 0, index: Tensor([2, 0] as [Int64])).floats(), [3, 1])
        XCTAssertEqual(try v.gather(dim: 0, index: Tensor([1, 1] as [Int64])).floats(), [2, 2])
        XCTAssertEqual(try v.expand([2, 3]).shape, [2, 3])
        XCTAssertEqual(try v.repeated([2]).floats(), [1, 2, 3, 1, 2, 3])
        XCTAssertEqual(try v.pad([1, 0]).floats(), [0, 1, 2, 3])
        XCTAssertEqual(try v.maskedSelect(v.gt(1)).floats(), [2, 3])
    }

    func testInPlaceOperations() throws {
        let t = try Tensor([1, 2] as [Float])
        try t.add_(Tensor([1, 1] as [Float]), alpha: 2)
        XCTAssertEqual(try t.floats(), [3, 4])
        try t.mul_(0.5)
        XCTAssertEqual(try t.floats(), [1.5, 2])
        try t.addcmul_(t, t, value: 1)
        XCTAssertEqual(try t.floats(), [3.75, 6])
        try t.zero_()
        XCTAssertEqual(try t.floats(), [0, 0])
        try t.fill_(3)
        XCTAssertEqual(try t.floats(), [3, 3])
    }

    func testLibtorchErrorsAreThrownWithTheirMessage() throws {
        let x = try Tensor.randn([1, 3, 8, 8])
        let w = try Tensor.randn([4, 5, 3, 3])  // expects 5 input channels
        XCTAssertThrowsError(try F.conv2d(x, weight: w)) { error in
            let message = (error as? TorchError)?.message ?? ""
            XCTAssertTrue(message.contains("expected input") && message.contains("channels"), message)
        }
        XCTAssertThrowsError(try Tensor.randn([2, 3]).matmul(Tensor.randn([4, 5]))) { error in
            XCTAssertTrue("\(error)".contains("shapes cannot be multiplied"), "\(error)")
        }
        XCTAssertThrowsError(try Tensor.randn([2, 3]).view([7]))
    }

    func testDescriptionAndDevice() throws {
        XCTAssertTrue(try Tensor([1.5] as [Float]).description.contains("1.5"))
        XCTAssertEqual(try Device(parsing: "cuda:1"), .cuda(1))
        XCTAssertThrowsError(try Device(parsing: "tpu"))
        XCTAssertFalse(Torch.version.isEmpty)
        XCTAssertGreaterThanOrEqual(Torch.threads, 1)
    }

    /// Pinned host memory needs CUDA: on a CPU build pinning is a clear error and nothing is
    /// pinned; with a GPU the pinned copy holds the same values and a non-blocking copy from it
    /// arrives intact once the stream is synchronized.
    func testPinnedMemoryAndNonBlockingGPUCopies() throws {
        let t = try Tensor.arange(0, 12).view([3, 4]).float()
        XCTAssertFalse(t.isPinned)
        // A copy to where the tensor already is, non-blocking or not, is the tensor itself.
        XCTAssertTrue(try t.to(device: .cpu, nonBlocking: true).equal(t))
        guard Torch.cudaAvailable else {
            XCTAssertThrowsError(try t.pinnedMemory())
            return
        }
        let pinned = try t.pinnedMemory()
        XCTAssertTrue(pinned.isPinned)
        XCTAssertTrue(try pinned.equal(t))
        let onGPU = try pinned.to(device: .cuda(0), nonBlocking: true)
        XCTAssertEqual(onGPU.device, .cuda(0))
        try Torch.synchronize(.cuda(0))
        XCTAssertTrue(try onGPU.to(device: .cpu).equal(t))
    }
}
