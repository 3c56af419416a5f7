import CTorch

/// How a 4-D (N, C, H, W) or 5-D (N, C, D, H, W) tensor lays out its elements, as torch.memory_format.
/// Channels-last keeps a pixel's channels together (strides N, 1, W*C, C), the layout cuDNN's and
/// oneDNN's fastest convolution kernels (and tensor cores) work in.
public enum MemoryFormat: Int32, Codable, Sendable, CaseIterable {
    case contiguous = 0, preserve = 1, channelsLast = 2, channelsLast3d = 3

    /// Channels-last for a tensor of `rank` dimensions (4: channelsLast, 5: channelsLast3d), else contiguous.
    public static func channelsLast(rank: Int) -> MemoryFormat {
        rank == 5 ? .channelsLast3d : rank == 4 ? .channelsLast : .contiguous
    }
}

extension Tensor {
    /// A tensor laid out in `memoryFormat` (self when it already is), as Tensor.contiguous(memory_format=).
    public func contiguous(memoryFormat: MemoryFormat) throws -> Tensor {
        try wrap(mt_contiguous_format(handle, memoryFormat.rawValue))
    }

    /// Whether the elements lie densely in `memoryFormat`'s order.
    public func isContiguous(memoryFormat: MemoryFormat) -> Bool {
        mt_is_contiguous_format(handle, memoryFormat.rawValue) == 1
    }
}

extension Module {
    /// Re-lays out, in place, every 4-D parameter and buffer (with `.channelsLast`) or 5-D one (with
    /// `.channelsLast3d`) — the convolution weights — as Module.to(memory_format=). The tensors keep
    /// their identities (optimizers and gradient reducers made before still hold them); call it
    /// before making those when gradients already exist, since these keep their old layout.
    public func to(memoryFormat: MemoryFormat) throws {
        let rank: Int? = memoryFormat == .channelsLast ? 4 : memoryFormat == .channelsLast3d ? 5 : nil
        try withNoGrad {
            for p in parameters() where rank == nil || p.rank == rank {
                try p.setData(p.contiguous(memoryFormat: memoryFormat))
            }
            for (_, b) in namedBuffers() where rank == nil || b.rank == rank {
                try b.setData(b.contiguous(memoryFormat: memoryFormat))
            }
        }
    }
}

extension Torch {
    /// cuDNN's autotuner (torch.backends.cudnn.benchmark): with fixed input shapes, the first
    /// convolution of each shape times the algorithms and later ones use the fastest. No effect on CPU.
    public static var cudnnBenchmark: Bool {
        get { initialize(); return mt_cudnn_benchmark() == 1 }
        set { initialize(); mt_set_cudnn_benchmark(newValue ? 1 : 0) }
    }
}
