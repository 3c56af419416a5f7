import CTorch
import Foundation

/// A group of processes that exchange tensors through libtorch's c10d: a TCPStore rendezvous at
/// the master address, Gloo collectives for CPU tensors and, with `nccl` (CUDA builds), NCCL for
/// CUDA tensors. Every collective waits at most `timeout`.
public final class ProcessGroup {
    let handle: mt_pg_t
    public let rank: Int
    public let worldSize: Int

    /// Joins the rendezvous at `masterAddress:masterPort`, which rank 0 hosts unless another
    /// process (torchrun's agent) already serves it: then every rank joins as a client and keeps
    /// its keys under `storePrefix`, as PyTorch's ranks do.
    public init(masterAddress: String, masterPort: Int, rank: Int, worldSize: Int, timeout: TimeInterval = 60, nccl: Bool = false,
                storeServedElsewhere: Bool = false, storePrefix: String = "") throws {
        Torch.initialize()
        guard (0..<worldSize).contains(rank) else { throw TorchError("rank \(rank) is outside the world of \(worldSize) processes") }
        guard let h = mt_pg_create(masterAddress, Int32(masterPort), Int32(rank), Int32(worldSize), Int32(timeout * 1000), nccl ? 1 : 0,
                                   rank == 0 && !storeServedElsewhere ? 1 : 0, storePrefix) else {
            let message = TorchError.last().message
            if rank == 0 && !storeServedElsewhere && (message.contains("Address already in use") || message.contains("EADDRINUSE")) {
                throw TorchError("cannot host the rendezvous on \(masterAddress):\(masterPort): the port is already in use (choose another \(Setting.named("master_port")), or 0 for a free one)")
            }
            if message.lowercased().contains("timed out") || message.lowercased().contains("timeout") || message.contains("Connection refused") {
                throw TorchError("rank \(rank) cannot reach the master at \(masterAddress):\(masterPort) within \(Int(timeout)) s (is rank 0 running, and is the address reachable?): \(message.split(separator: "\n").first ?? "")")
            }
            throw TorchError("rank \(rank) could not join the process group at \(masterAddress):\(masterPort): \(message.split(separator: "\n").first ?? "")")
        }
        handle = h
        self.rank = rank
        self.worldSize = worldSize
    }

    deinit { mt_pg_free(handle) }

    /// Sums `tensor` across ranks, in place.
    public func allReduceSum(_ tensor: Tensor) throws { try check(mt_pg_allreduce(handle, tensor.handle)) }

    /// Replaces `tensor` on every rank with root's.
    public func broadcast(_ tensor: Tensor, root: Int = 0) throws { try check(mt_pg_broadcast(handle, tensor.handle, Int32(root))) }

    /// Every rank's `tensor`, in rank order.
    public func allGather(_ tensor: Tensor) throws -> [Tensor] { try unpack(mt_pg_allgather(handle, tensor.handle)) }

    public func barrier() throws { try check(mt_pg_barrier(handle)) }

    /// The sum of `tensor` across ranks as a new tensor that autograd differentiates through: its
    /// backward all-reduces the gradient (every rank must run backward through the same calls).
    public func allReduceSumDifferentiable(_ tensor: Tensor) throws -> Tensor {
        try wrap(mt_pg_allreduce_differentiable(handle, tensor.handle))
    }
}

/// Averages gradients across a process group during backward, as PyTorch's DistributedDataParallel:
/// parameters are grouped into buckets (a small first bucket, then `bucketMegabytes`, in reverse
/// parameter order) and each bucket is all-reduced as soon as all its gradients are ready, so
/// communication overlaps the rest of the backward pass. Built on c10d's Reducer.
public final class GradientReducer {
    let handle: mt_reducer_t
    let group: ProcessGroup
    /// Parameters whose gradients are reduced (frozen ones are left out by the caller).
    public let parameters: [Tensor]

    public init(group: ProcessGroup, parameters: [Tensor], bucketMegabytes: Double = 25, firstBucketMegabytes: Double = 1,
                findUnusedParameters: Bool = false) throws {
        let handles: [mt_tensor_t?] = parameters.map { $0.handle }
        guard let h = mt_reducer_create(group.handle, handles, handles.count, Int64(bucketMegabytes * 1_048_576),
                                        Int64(firstBucketMegabytes * 1_048_576), findUnusedParameters ? 1 : 0) else {
            throw TorchError.last()
        }
        handle = h
        self.group = group
        self.parameters = parameters
    }

    deinit { mt_reducer_free(handle) }

    /// Call after the forward pass and before `backward()`, with the outputs the loss is computed from.
    public func prepareForBackward(_ outputs: [Tensor]) throws {
        let handles: [mt_tensor_t?] = outputs.map { $0.handle }
        try withExtendedLifetime(outputs) { try check(mt_reducer_prepare_for_backward(handle, handles, handles.count)) }
    }

    public var bucketCount: Int { Int(mt_reducer_bucket_count(handle)) }
}
