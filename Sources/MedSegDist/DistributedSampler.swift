import MedSegData

/// Splits indices among ranks with the semantics of torch.utils.data.DistributedSampler: the
/// same shuffled order on every rank for an epoch (seeded by seed + epoch), padded by repeating
/// from the start to a multiple of the number of replicas (or cut, with dropLast), then every
/// `replicas`-th index starting at `rank`.
public struct DistributedSampler: Sendable {
    public let count: Int
    public let replicas: Int
    public let rank: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let dropLast: Bool
    public private(set) var epoch = 0

    public init(count: Int, replicas: Int, rank: Int, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false) {
        precondition(replicas >= 1 && (0..<replicas).contains(rank), "rank must be in 0..<replicas")
        self.count = count; self.replicas = replicas; self.rank = rank
        self.shuffle = shuffle; self.seed = seed; self.dropLast = dropLast
    }

    public mutating func setEpoch(_ epoch: Int) { self.epoch = epoch }

    /// Samples per rank.
    public var numSamples: Int {
        dropLast && count % replicas != 0 ? count / replicas : (count + replicas - 1) / replicas
    }

    public var totalSize: Int { numSamples * replicas }

    public func indices() -> [Int] {
        var order = Array(0..<count)
        if shuffle {
            var rng = SplitMix64(seed: seed &+ UInt64(epoch))
            order.shuffle(using: &rng)
        }
        if dropLast {
            order = Array(order.prefix(totalSize))
        } else if !order.isEmpty {
            var k = 0
            while order.count < totalSize { order.append(order[k % count]); k += 1 }
        }
        return stride(from: rank, to: totalSize, by: replicas).map { order[$0] }
    }
}
