import Foundation
import Torch

/// nnU-Net's cross-validation splits: scikit-learn's KFold(n_splits, shuffle=True,
/// random_state=12345) over the sorted case identifiers, stored in `splits_final.json` as
/// [{"train": [...], "val": [...]}, ...]. The shuffle reproduces numpy's legacy RandomState
/// (MT19937 + Fisher-Yates), so the folds equal those nnU-Net makes for the same cases.
public struct CrossValidationSplits: Codable, Equatable, Sendable {
    public struct Fold: Codable, Equatable, Sendable {
        public var train: [String]
        public var val: [String]
    }

    public var folds: [Fold]

    public init(folds: [Fold]) { self.folds = folds }

    public init(identifiers: [String], folds count: Int = 5, seed: UInt32 = 12345) throws {
        let keys = identifiers.sorted()
        guard count >= 2 else { throw DataError("cross-validation needs at least 2 folds, got \(count)") }
        guard keys.count >= count else {
            throw DataError("\(keys.count) training cases cannot be split into \(count) folds")
        }
        var rng = MersenneTwister(seed: seed)
        var order = Array(0..<keys.count)
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            order.swapAt(i, Int(rng.interval(UInt32(i))))
        }
        var folds: [Fold] = []
        var start = 0
        for f in 0..<count {
            let size = keys.count / count + (f < keys.count % count ? 1 : 0)
            // As KFold: validation cases in shuffled order, training cases in sorted order.
            let valIdx = Array(order[start..<(start + size)])
            let valSet = Set(valIdx)
            folds.append(Fold(train: keys.indices.filter { !valSet.contains($0) }.map { keys[$0] },
                              val: valIdx.map { keys[$0] }))
            start += size
        }
        self.folds = folds
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(folds)
    }

    public init(from decoder: Decoder) throws {
        folds = try decoder.singleValueContainer().decode([Fold].self)
    }

    /// Reads an existing `splits_final.json`.
    public static func load(_ url: URL) throws -> CrossValidationSplits {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw DataError(file: url, "does not exist: the cross-validation was not trained here")
        }
        do { return try JSONFile.decode(CrossValidationSplits.self, from: RegularFile.contents(url)) } catch let error as DataError {
            throw DataError(file: url, "not a valid splits file: \(error.problem)")
        } catch {
            throw DataError(file: url, "cannot read: \(error.localizedDescription)")
        }
    }

    /// Loads `splits_final.json`, or creates it from `identifiers` when it does not exist.
    public static func loadOrCreate(_ url: URL, identifiers: [String], folds: Int = 5) throws -> CrossValidationSplits {
        if FileManager.default.fileExists(atPath: url.path) {
            let splits = try load(url)
            let known = Set(identifiers)
            for (i, fold) in splits.folds.enumerated() {
                if let unknown = (fold.train + fold.val).first(where: { !known.contains($0) }) {
                    throw DataError(file: url, "fold \(i) lists case '\(unknown)', which is not in the data set")
                }
            }
            return splits
        }
        let splits = try CrossValidationSplits(identifiers: identifiers, folds: folds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted]
        try encoder.encode(splits).write(to: url, options: .atomic)
        return splits
    }
}

/// MT19937 with numpy's legacy seeding and bounded-integer rule (masked rejection sampling).
struct MersenneTwister {
    private var state = [UInt32](repeating: 0, count: 624)
    private var index = 624

    init(seed: UInt32) {
        state[0] = seed
        for i in 1..<624 {
            state[i] = 1_812_433_253 &* (state[i - 1] ^ (state[i - 1] >> 30)) &+ UInt32(i)
        }
    }

    mutating func next() -> UInt32 {
        if index >= 624 { twist() }
        var y = state[index]
        index += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C_5680
        y ^= (y << 15) & 0xEFC6_0000
        y ^= y >> 18
        return y
    }

    private mutating func twist() {
        for i in 0..<624 {
            let y = (state[i] & 0x8000_0000) | (state[(i + 1) % 624] & 0x7FFF_FFFF)
            state[i] = state[(i + 397) % 624] ^ (y >> 1) ^ (y & 1 == 0 ? 0 : 0x9908_B0DF)
        }
        index = 0
    }

    /// A uniform integer in [0, max], as numpy's legacy `random_interval`.
    mutating func interval(_ max: UInt32) -> UInt32 {
        if max == 0 { return 0 }
        var mask = max
        mask |= mask >> 1; mask |= mask >> 2; mask |= mask >> 4; mask |= mask >> 8; mask |= mask >> 16
        while true {
            let value = next() & mask
            if value <= max { return value }
        }
    }
}
