import XCTest
@testable import Torch

final class MemoryFormatTests: XCTestCase {
    func testTensorsConvertToChannelsLast() throws {
        let x = try Tensor.randn([2, 3, 4, 5])
        XCTAssertTrue(x.isContiguous(memoryFormat: .contiguous))
        XCTAssertFalse(x.isContiguous(memoryFormat: .channelsLast))
        let cl = try x.contiguous(memoryFormat: .channelsLast)
        XCTAssertTrue(cl.isContiguous(memoryFormat: .channelsLast))
        XCTAssertEqual(cl.strides, [60, 1, 15, 3])
        XCTAssertEqual(cl.shape, x.shape)
        XCTAssertTrue(try cl.equal(x))
        let v = try Tensor.randn([2, 3, 4, 5, 6]).contiguous(memoryFormat: .channelsLast3d)
        XCTAssertTrue(v.isContiguous(memoryFormat: .channelsLast3d))
        XCTAssertEqual(v.strides, [360, 1, 90, 18, 3])
        XCTAssertEqual(MemoryFormat.channelsLast(rank: 5), .channelsLast3d)
        XCTAssertEqual(MemoryFormat.channelsLast(rank: 4), .channelsLast)
    }

    func testCuDNNBenchmarkSwitch() {
        let before = Torch.cudnnBenchmark
        Torch.cudnnBenchmark = true
        XCTAssertTrue(Torch.cudnnBenchmark)
        Torch.cudnnBenchmark = false
        XCTAssertFalse(Torch.cudnnBenchmark)
        Torch.cudnnBenchmark = before
    }

    func testChannelsLast2DNetMatchesContiguous() throws {
        try checkChannelsLast(dims: 2)
    }

    func testChannelsLast3DNetMatchesContiguous() throws {
        try checkChannelsLast(dims: 3)
    }

    /// On the GPU (cuDNN's channels-last kernels, 2D and 3D), against the default layout there and
    /// against the CPU. cuDNN convolutions may use TF32, hence the looser tolerance.
    func testChannelsLastOnCUDAMatchesContiguous() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device") }
        for dims in [2, 3] { try checkChannelsLast(dims: dims, device: .cuda(0)) }
    }

    /// The same net and batch, once in the default layout and once channels-last (weights and
    /// input): outputs and every gradient agree (to 1e-5 on the CPU); on a GPU both also agree
    /// with the CPU.
    private func checkChannelsLast(dims: Int, device: Device = .cpu) throws {
        Torch.manualSeed(11)
        func net() throws -> Sequential {
            if dims == 2 {
                return Sequential(try Conv2d(3, 8, kernelSize: 3, padding: 1), try BatchNorm2d(8), ReLU(),
                                  try Conv2d(8, 4, kernelSize: 3, stride: 2, padding: 1), ReLU(), try Conv2d(4, 2, kernelSize: 1))
            }
            return Sequential(try Conv3d(3, 8, kernelSize: 3, padding: 1), try BatchNorm3d(8), ReLU(),
                              try Conv3d(8, 4, kernelSize: 3, stride: 2, padding: 1), ReLU(), try Conv3d(4, 2, kernelSize: 1))
        }
        let plain = try net(), last = try net(), reference = try net()
        try withNoGrad {
            for (a, b) in zip(plain.parameters(), last.parameters()) { try b.copy_(a) }
            for (a, b) in zip(plain.parameters(), reference.parameters()) { try b.copy_(a) }
        }
        try plain.to(device: device)
        try last.to(device: device)
        let (rtol, atol) = device.isCUDA ? (1e-2, 2e-3) : (1e-5, 1e-5)
        let format: MemoryFormat = dims == 2 ? .channelsLast : .channelsLast3d
        try last.to(memoryFormat: format)
        let convWeights = last.namedParameters().filter { $0.tensor.rank == dims + 2 }
        XCTAssertEqual(convWeights.count, 3)
        for (name, w) in convWeights {
            XCTAssertTrue(w.isContiguous(memoryFormat: format), name)
            XCTAssertTrue(w.requiresGrad, name)
        }
        XCTAssertEqual(Set(last.namedParameters().map(\.name)), Set(plain.namedParameters().map(\.name)))

        let shape = dims == 2 ? [2, 3, 10, 10] : [2, 3, 6, 8, 8]
        let x = try Tensor.randn(shape)
        let xPlain = try x.to(device: device, copy: true), xLast = try x.to(device: device).contiguous(memoryFormat: format)
        xPlain.requiresGrad = true
        xLast.requiresGrad = true
        let yPlain = try plain(xPlain), yLast = try last(xLast)
        if dims == 2 || device.isCUDA {
            // (libtorch 1.13's CPU 3D convolutions return the default layout; cuDNN's keep channels-last.)
            XCTAssertTrue(yLast.isContiguous(memoryFormat: format), "channels-last convolutions keep the layout")
        }
        XCTAssertTrue(try yLast.allClose(yPlain, rtol: rtol, atol: atol))
        let g = try Tensor.randn(yPlain.shape).to(device: device)
        try (yPlain * g).sum().backward()
        try (yLast * g).sum().backward()
        XCTAssertTrue(try xLast.grad!.allClose(xPlain.grad!, rtol: rtol, atol: atol))
        for ((name, a), (_, b)) in zip(plain.namedParameters(), last.namedParameters()) {
            XCTAssertTrue(try b.grad!.allClose(a.grad!, rtol: rtol, atol: atol), name)
        }
        guard device.isCUDA else { return }
        let xCPU = try x.clone()
        xCPU.requiresGrad = true
        let yCPU = try reference(xCPU)
        XCTAssertTrue(try yLast.to(device: .cpu).allClose(yCPU, rtol: rtol, atol: atol), "channels-last on \(device) vs the CPU")
        try (yCPU * g.to(device: .cpu)).sum().backward()
        for ((name, a), (_, b)) in zip(reference.namedParameters(), last.namedParameters()) {
            XCTAssertTrue(try b.grad!.to(device: .cpu).allClose(a.grad!, rtol: rtol, atol: atol), "\(name) on \(device) vs the CPU")
        }
    }
}
