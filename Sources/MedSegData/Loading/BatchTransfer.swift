import Torch

extension Batch {
    /// This batch on `device`. To a GPU, each tensor is first copied into pinned host memory and
    /// then queued as a non-blocking copy on the current stream (PyTorch's `pin_memory=True` with
    /// `non_blocking=True`): the loader's worker returns without waiting for the transfer, and the
    /// GPU reads the batch by DMA while it computes. On the CPU (or when already there) the batch
    /// is returned as it is, without a copy.
    public func moved(to device: Device) throws -> Batch {
        Batch(image: try Self.move(image, to: device), label: try Self.move(label, to: device), caseIdentifiers: caseIdentifiers)
    }

    static func move(_ tensor: Tensor, to device: Device) throws -> Tensor {
        guard tensor.device != device else { return tensor }
        guard device.isCUDA, tensor.device == .cpu else { return try tensor.to(device: device) }
        let pinned = tensor.isPinned ? tensor : try tensor.contiguous().pinnedMemory()
        return try pinned.to(device: device, nonBlocking: true)
    }
}
