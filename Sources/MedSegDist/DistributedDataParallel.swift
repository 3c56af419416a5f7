import Foundation
import Torch

/// Data-parallel training of one model replica per process: identical start (parameters and
/// buffers broadcast from rank 0), gradients averaged in buckets during backward (frozen
/// parameters skipped), and helpers to reduce metrics.
public final class DistributedDataParallel {
    public let group: ProcessGroup
    public let model: Module
    public let reducer: GradientReducer

    public init(model: Module, group: ProcessGroup, bucketMegabytes: Double = 25, firstBucketMegabytes: Double = 1) throws {
        self.group = group
        self.model = model
        try withNoGrad {
            for t in model.parameters() + model.namedBuffers().map(\.tensor) { try group.broadcast(t, root: 0) }
        }
        reducer = try GradientReducer(group: group, parameters: model.trainableParameters(), bucketMegabytes: bucketMegabytes,
                                      firstBucketMegabytes: firstBucketMegabytes)
    }

    /// The forward pass, registered with the reducer so that backward averages the gradients.
    public func forward(_ x: Tensor) throws -> Tensor {
        let y = try model(x)
        if isGradEnabled { try reducer.prepareForBackward([y]) }
        return y
    }

    /// Every output of a multi-output model, registered with the reducer.
    public func outputs(_ x: Tensor) throws -> [Tensor] {
        guard let multi = model as? MultiOutputModel else { return [try forward(x)] }
        let ys = try multi.outputs(x)
        if isGradEnabled { try reducer.prepareForBackward(ys) }
        return ys
    }

    /// Sums of `values` over every rank.
    public func sum(_ values: [Double]) throws -> [Double] {
        let t = try Tensor(values, shape: [values.count])
        try group.allReduceSum(t)
        return try t.toArray(Double.self)
    }
}
