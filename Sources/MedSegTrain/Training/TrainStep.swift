import Foundation
import MedSegDist
import MedSegModels
import Torch

/// One optimization step: forward (every output of a deep-supervision network, weighted), loss,
/// backward (with the data-parallel gradient all-reduce when there is one), gradient clipping and
/// the optimizer step. The one step training, `medseg benchmark` and the data-parallel check run.
public final class TrainStep {
    public let model: Module
    public let ddp: DistributedDataParallel?
    public let optimizer: Optimizer
    public let loss: any SegmentationLoss
    /// Largest gradient norm (clipped to it); nil: no clipping and no check of the gradients.
    public var maxGradNorm: Double?
    /// Skip the update when the loss or the gradient norm is not finite (reads the loss back,
    /// which waits for the device; benchmarks turn it off as PyTorch's scripts do not read it).
    public var skipNonFinite: Bool
    /// Forward and loss under autocast for bf16/fp16; the weights stay float32.
    public var precision: Precision
    /// Loss scaling for fp16 (disabled otherwise); its state goes into checkpoints.
    public let scaler: GradScaler
    /// Batches are made channels-last in this format (the model's weights should be too).
    public var memoryFormat: MemoryFormat?

    public struct Outcome: Sendable {
        /// The loss (NaN when it was not read back).
        public var loss: Double
        public var gradNorm: Double?
        /// False when the update was skipped: `lossScaleOverflow` for fp16's expected overflows
        /// (the scaler backs off), else because the loss or gradients were not finite.
        public var stepped: Bool
        public var lossScaleOverflow = false
    }

    public init(model: Module, ddp: DistributedDataParallel? = nil, optimizer: Optimizer, loss: any SegmentationLoss,
                maxGradNorm: Double? = nil, skipNonFinite: Bool = true, precision: Precision = .fp32, memoryFormat: MemoryFormat? = nil,
                scaler: GradScaler? = nil) throws {
        self.model = model; self.ddp = ddp; self.optimizer = optimizer; self.loss = loss
        self.maxGradNorm = maxGradNorm; self.skipNonFinite = skipNonFinite
        self.precision = precision; self.memoryFormat = memoryFormat
        self.scaler = try scaler ?? GradScaler(enabled: precision.needsGradScaler)
    }

    /// The training loss of a batch, through the data-parallel wrapper when there is one.
    public func computeLoss(_ input: Tensor, _ target: Tensor) throws -> Tensor {
        if let multi = model as? MultiOutputModel {
            // Deep supervision / auxiliary heads: every output counts with its weight.
            let outputs = try ddp?.outputs(input) ?? multi.outputs(input)
            return try DeepSupervisionLoss(loss, weights: multi.outputWeights)(outputs, target)
        }
        return try loss(ddp?.forward(input) ?? model(input), target)
    }

    @discardableResult
    public func callAsFunction(_ input: Tensor, _ target: Tensor) throws -> Outcome {
        try optimizer.zeroGrad()
        let x = try memoryFormat.map { try input.contiguous(memoryFormat: $0) } ?? input
        let lossTensor = try Autocast.run(device: x.device, precision: precision) { try computeLoss(x, target) }
        let value = skipNonFinite ? try lossTensor.item() : .nan
        // Backward runs on every rank (the gradient all-reduce needs all of them); a non-finite
        // loss anywhere makes the averaged gradient non-finite on every rank, and then no rank
        // steps: the weights never see it.
        try scaler.scale(lossTensor).backward()
        if maxGradNorm != nil { try scaler.unscale(optimizer) }
        let norm = try maxGradNorm.map { try clipGradNorm(model.trainableParameters(), maxNorm: $0) }
        if skipNonFinite, !value.isFinite {
            if scaler.enabled {
                if maxGradNorm == nil { try scaler.unscale(optimizer) }
                try scaler.update()
            }
            return Outcome(loss: value, gradNorm: norm, stepped: false)
        }
        if scaler.enabled {
            // fp16: gradients that overflowed skip the step and halve the scale, as expected.
            let stepped = try scaler.step(optimizer)
            try scaler.update()
            return Outcome(loss: value, gradNorm: norm, stepped: stepped, lossScaleOverflow: !stepped)
        }
        if skipNonFinite, !(norm ?? 0).isFinite { return Outcome(loss: value, gradNorm: norm, stepped: false) }
        try optimizer.step()
        return Outcome(loss: value, gradNorm: norm, stepped: true)
    }
}
