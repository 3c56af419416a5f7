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

    /// Sophia-G only: the Hessian estimate is refreshed after every `hessianInterval`-th step.
    public var hessianInterval = 10
    /// How labels are drawn from the model's predictions for that estimate: one sigmoid per
    /// channel (binary and region outputs) or a softmax over the channels.
    public enum PredictionKind: Sendable { case sigmoid, softmax }
    public var predictions: PredictionKind = .softmax
    private var stepsTaken = 0

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
        try callAsFunction(microBatches: [(input, target)])
    }

    /// One optimizer step on the gradients of several micro-batches (gradient accumulation):
    /// each contributes its loss divided by their number, so equal micro-batches step as one
    /// batch of all of them would (with per-sample losses and no batch statistics).
    @discardableResult
    public func callAsFunction(microBatches: [(image: Tensor, label: Tensor)]) throws -> Outcome {
        precondition(!microBatches.isEmpty, "a step needs at least one batch")
        let prepared = try microBatches.map { batch in
            (try memoryFormat.map { try batch.image.contiguous(memoryFormat: $0) } ?? batch.image, batch.label)
        }
        let outcome = try update(prepared)
        stepsTaken += 1
        if let sophia = optimizer as? SophiaG, stepsTaken % hessianInterval == 0 { try refreshHessian(sophia, prepared[prepared.count - 1].0) }
        return outcome
    }

    /// Sophia's Gauss-Newton-Bartlett estimate, as its reference training loop takes it after a
    /// step: a loss on labels drawn from the model's own predictions for the same batch, back-
    /// propagated (through the gradient all-reduce when data-parallel) and folded into the Hessian
    /// EMA; then the gradients are cleared. In float32, without loss scaling.
    func refreshHessian(_ sophia: SophiaG, _ x: Tensor) throws {
        try optimizer.zeroGrad()
        // Every output of a multi-output network, weighted as in training, so that every trained
        // parameter has a gradient (the data-parallel all-reduce needs them all).
        let outputs: [Tensor], weights: [Double]
        if let multi = model as? MultiOutputModel {
            outputs = try ddp?.outputs(x) ?? multi.outputs(x)
            weights = multi.outputWeights
        } else {
            outputs = [try ddp?.forward(x) ?? model(x)]
            weights = [1]
        }
        var loss: Tensor?
        for (output, weight) in zip(outputs, weights) {
            let logits = try output.to(dtype: .float32)
            let sampled: Tensor = try withNoGrad {
                switch predictions {
                case .sigmoid:
                    return try Tensor.rand(logits.shape, device: logits.device).lt(logits.sigmoid()).float()
                case .softmax:
                    // Gumbel-max: argmax(logits + Gumbel noise) is a draw from softmax(logits).
                    let u = try Tensor.rand(logits.shape, device: logits.device).clamp(min: 1e-20, max: 1 - 1e-7)
                    return try (logits.detach() - (u.log() * -1).log()).argmax(dim: 1)
                }
            }
            let term = try (predictions == .sigmoid ? F.binaryCrossEntropyWithLogits(logits, target: sampled)
                                                    : F.crossEntropy(logits, target: sampled)) * weight
            loss = try loss.map { try $0 + term } ?? term
        }
        try loss?.backward()
        try sophia.updateHessian()
        try optimizer.zeroGrad()
    }

    private func update(_ microBatches: [(Tensor, Tensor)]) throws -> Outcome {
        try optimizer.zeroGrad()
        let share = 1.0 / Double(microBatches.count)
        var value = skipNonFinite ? 0.0 : .nan
        for (x, target) in microBatches {
            var lossTensor = try Autocast.run(device: x.device, precision: precision) { try computeLoss(x, target) }
            if microBatches.count > 1 { lossTensor = try lossTensor * share }
            if skipNonFinite { value += try lossTensor.item() }
            // Backward runs on every rank (the gradient all-reduce needs all of them); a non-finite
            // loss anywhere makes the averaged gradient non-finite on every rank, and then no rank
            // steps: the weights never see it.
            try scaler.scale(lossTensor).backward()
        }
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
