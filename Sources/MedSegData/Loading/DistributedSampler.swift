import Foundation

/// Splits a data set's indices among ranks with the semantics of
/// torch.utils.data.DistributedSampler:
/// - `shuffle`: the full index list is permuted by a generator seeded with seed + epoch (a
///   `RandomSource` Fisher-Yates shuffle: not torch's permutation, but identical on every rank
///   and on every platform for the same seed and epoch); otherwise 0..<count in order;
/// - without `dropLast` the list is padded by repeating it from the start up to
///   `totalSize` = numSamples * replicas, numSamples = ceil(count / replicas);
/// - with `dropLast` (and count not divisible) numSamples = ceil((count - replicas) / replicas)
///   = floor(count / replicas) and the tail beyond `totalSize` is dropped;
/// - rank r takes positions r, r + replicas, r + 2 * replicas, ... of that list.
/// Call `setEpoch` at the start of every epoch to get a new order.
public struct DistributedSampler: Codable, Equatable, Sendable {
    public let count: Int
    public let replicas: Int
    public let rank: Int
    public let shuffle: Bool
    public let seed: UInt64
    public let dropLast: Bool
    public private(set) var epoch: Int = 0

    public init(count: Int, replicas: Int, rank: Int, shuffle: Bool = true, seed: UInt64 = 0, dropLast: Bool = false) {
        precondition(count >= 0, "count must not be negative")
        precondition(replicas >= 1, "replicas must be at least 1")
        precondition(rank >= 0 && rank < replicas, "Invalid rank \(rank), rank should be in the interval [0, \(replicas - 1)]")
        self.count = count; self.replicas = replicas; self.rank = rank
        self.shuffle = shuffle; self.seed = seed; self.dropLast = dropLast
    }

    public mutating func setEpoch(_ epoch: Int) { self.epoch = epoch }

    /// Indices per rank (PyTorch's num_samples).
    public var numSamples: Int {
        if dropLast && count % replicas != 0 {
            // ceil((count - replicas) / replicas), which is 0 when count < replicas.
            return count / replicas
        }
        return (count + replicas - 1) / replicas
    }

    /// Length of the padded (or cut) list all ranks share (PyTorch's total_size).
    public var totalSize: Int { numSamples * replicas }

    /// The shared list of every rank for this epoch, before the split.
    public func allIndices() -> [Int] {
        var order = Array(0..<count)
        if shuffle {
            var rng = RandomSource(seed: seed &+ UInt64(bitPattern: Int64(epoch)))
            rng.shuffle(&order)
        }
        if dropLast {
            order = Array(order.prefix(totalSize))
        } else if !order.isEmpty {
            let base = order
            var k = 0
            while order.count < totalSize {
                order.append(base[k % base.count])
                k += 1
            }
        }
        return order
    }

    /// This rank's indices for the current epoch (numSamples of them).
    public func indices() -> [Int] {
        let order = allIndices()
        return Array(stride(from: rank, to: totalSize, by: replicas).map { order[$0] })
    }
}
