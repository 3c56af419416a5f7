import Torch

/// A loss from network logits and a label map.
///
/// Logits are [B, K, spatial...]. Labels are [B, 1, spatial...] (or [B, spatial...]) holding class
/// indices for multi-class losses, or 0/1 (float) for single-channel binary losses.
public protocol SegmentationLoss {
    func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor
}

/// How per-class soft Dice is pooled.
public enum DiceReduction: String, Codable, Sendable {
    /// One Dice over the whole batch per class (nnU-Net's batch Dice).
    case batch
    /// Dice per sample and class, then averaged (UltraLight VM-UNet's per-sample Dice).
    case sample
}

/// Soft Dice loss, 1 - mean Dice over classes.
///
/// Binary (K = 1): probabilities are sigmoid(logits). Multi-class: softmax over K, labels one-hot,
/// and the background class is left out unless `includeBackground`.
public struct SoftDiceLoss: SegmentationLoss {
    public var smooth: Double
    public var reduction: DiceReduction
    public var includeBackground: Bool
    /// Set when the model already outputs probabilities (sigmoid inside forward).
    public var inputsAreProbabilities: Bool

    public init(smooth: Double = 1e-5, reduction: DiceReduction = .batch, includeBackground: Bool = false, inputsAreProbabilities: Bool = false) {
        self.smooth = smooth
        self.reduction = reduction
        self.includeBackground = includeBackground
        self.inputsAreProbabilities = inputsAreProbabilities
    }

    public func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor {
        let (probs, target) = try probabilitiesAndTargets(logits, labels)
        let spatial = Array(2..<probs.rank)
        let axes = reduction == .batch ? [0] + spatial : spatial
        let intersection = try (probs * target).sum(dims: axes)
        let denominator = try probs.sum(dims: axes) + target.sum(dims: axes)
        let dice = try (intersection * 2 + smooth) / (denominator + smooth)
        return try 1 - dice.mean()
    }

    /// Probabilities and one-hot (or binary) targets of the same shape [B, K', spatial...].
    func probabilitiesAndTargets(_ logits: Tensor, _ labels: Tensor) throws -> (Tensor, Tensor) {
        let classes = logits.size(1)
        let labelMap = labels.rank == logits.rank ? labels : try labels.unsqueeze(1)
        if classes == 1 {
            let p = inputsAreProbabilities ? logits : try logits.sigmoid()
            return (p, try labelMap.to(dtype: p.dtype))
        }
        let p = inputsAreProbabilities ? logits : try logits.softmax(dim: 1)
        var oneHot = try F.oneHot(labelMap.squeeze(dim: 1).long(), numClasses: classes)
        oneHot = try oneHot.permute([0, oneHot.rank - 1] + Array(1..<(oneHot.rank - 1))).to(dtype: p.dtype)
        if includeBackground { return (p, oneHot) }
        return (try p.slice(dim: 1, start: 1), try oneHot.slice(dim: 1, start: 1))
    }
}

/// BCE with logits on single-channel outputs (the U-Net ISBI seed's loss).
public struct BCEWithLogitsLoss: SegmentationLoss {
    public var posWeight: Double?
    public init(posWeight: Double? = nil) { self.posWeight = posWeight }

    public func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor {
        let target = try (labels.rank == logits.rank ? labels : labels.unsqueeze(1)).to(dtype: logits.dtype)
        let weight = try posWeight.map { try Tensor.full([1], $0, dtype: logits.dtype, device: logits.device) }
        return try F.binaryCrossEntropyWithLogits(logits, target: target, posWeight: weight)
    }
}

/// Cross-entropy over class indices.
public struct CrossEntropyLoss: SegmentationLoss {
    public var ignoreIndex: Int
    public init(ignoreIndex: Int = -100) { self.ignoreIndex = ignoreIndex }

    public func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor {
        let target = try (labels.rank == logits.rank ? labels.squeeze(dim: 1) : labels).long()
        return try F.crossEntropy(logits, target: target, ignoreIndex: ignoreIndex)
    }
}

/// A weighted sum of losses: BCE + Dice (binary seeds) and Dice + CE (nnU-Net).
public struct CompoundLoss: SegmentationLoss {
    public var terms: [(weight: Double, loss: any SegmentationLoss)]
    public init(_ terms: [(weight: Double, loss: any SegmentationLoss)]) { self.terms = terms }

    public func callAsFunction(_ logits: Tensor, _ labels: Tensor) throws -> Tensor {
        var total: Tensor? = nil
        for (weight, loss) in terms where weight != 0 {
            let term = try loss(logits, labels) * weight
            total = try total.map { try $0 + term } ?? term
        }
        guard let total else { throw TorchError("a compound loss needs at least one term with a non-zero weight") }
        return total
    }

    /// nnU-Net's default: soft Dice (batch, foreground classes) + cross-entropy, weights 1:1.
    public static func diceCE(batchDice: Bool = true) -> CompoundLoss {
        CompoundLoss([(1, SoftDiceLoss(smooth: 1e-5, reduction: batchDice ? .batch : .sample)), (1, CrossEntropyLoss())])
    }

    /// BCE with logits + soft Dice on one output channel.
    public static func bceDice(diceReduction: DiceReduction = .sample, smooth: Double = 1) -> CompoundLoss {
        CompoundLoss([(1, BCEWithLogitsLoss()), (1, SoftDiceLoss(smooth: smooth, reduction: diceReduction, includeBackground: true))])
    }
}

/// Deep supervision: one loss per output resolution, with labels resized by nearest
/// neighbour and weights 1/2^i normalized to sum 1 (nnU-Net; the lowest resolution gets 0).
public struct DeepSupervisionLoss {
    public var base: any SegmentationLoss
    public var weights: [Double]?

    public init(_ base: any SegmentationLoss, weights: [Double]? = nil) {
        self.base = base
        self.weights = weights
    }

    /// nnU-Net's weights for `count` outputs, highest resolution first.
    public static func defaultWeights(count: Int) -> [Double] {
        var w = (0..<count).map { 1 / Double(1 << $0) }
        if count > 1 { w[count - 1] = 0 }
        let total = w.reduce(0, +)
        return w.map { $0 / total }
    }

    public func callAsFunction(_ outputs: [Tensor], _ labels: Tensor) throws -> Tensor {
        let w = weights ?? Self.defaultWeights(count: outputs.count)
        guard w.count == outputs.count else {
            throw TorchError("deep supervision has \(outputs.count) outputs but \(w.count) weights")
        }
        let labelMap = try labels.rank == outputs[0].rank ? labels : labels.unsqueeze(1)
        var total: Tensor? = nil
        for (output, weight) in zip(outputs, w) where weight != 0 {
            let size = Array(output.shape.dropFirst(2))
            let target = Array(labelMap.shape.dropFirst(2)) == size
                ? labelMap : try F.interpolate(labelMap.to(dtype: .float32), size: size, mode: .nearest)
            let term = try base(output, target) * weight
            total = try total.map { try $0 + term } ?? term
        }
        guard let total else { throw TorchError("deep supervision weights are all zero") }
        return total
    }
}
