import Foundation
import Torch

/// The seedable generator behind every random decision of augmentation and patch sampling
/// (probabilities, angles, scales, crop positions, shuffles) and behind their tensor noise.
///
/// xoshiro256** (Blackman & Vigna) with its 256-bit state filled from the seed by SplitMix64, as
/// the authors recommend. Every derived quantity (uniform doubles, bounded integers, Gaussian
/// samples, shuffles) is computed here with fixed algorithms rather than with the standard
/// library's `random(in:using:)` / `shuffle(using:)`, whose algorithms are not promised to stay the
/// same across Swift releases: a seed gives the same numbers on every platform and toolchain.
///
/// libtorch's global generator is never used: it is shared by all threads, so loader workers
/// drawing from it would interleave nondeterministically. Tensor noise (Gaussian noise, the
/// elastic displacement field) is generated from this generator on the CPU
/// (`gaussianTensor`, `uniformTensor`) and moved to the target device.
public struct RandomSource: RandomNumberGenerator, Hashable, Codable, Sendable {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    /// SplitMix64's output function applied to `state` after advancing it.
    @inline(__always)
    static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public init(seed: UInt64) {
        var sm = seed
        s0 = Self.splitMix(&sm)
        s1 = Self.splitMix(&sm)
        s2 = Self.splitMix(&sm)
        s3 = Self.splitMix(&sm)
        // All-zero is xoshiro's only invalid state; SplitMix64 cannot give four zeros in a row,
        // but keep the guarantee explicit.
        if s0 | s1 | s2 | s3 == 0 { s0 = 0x9E37_79B9_7F4A_7C15 }
    }

    /// A generator for a position in a hierarchy of streams, e.g. (seed, epoch, batch): the
    /// components are hashed in order with SplitMix64's mixer, so (s, 1, 2) and (s, 2, 1) differ
    /// and neighbouring positions give unrelated streams.
    public static func derived(seed: UInt64, _ components: Int...) -> RandomSource {
        derived(seed: seed, components: components)
    }

    public static func derived(seed: UInt64, components: [Int]) -> RandomSource {
        var h = seed
        var mixed = splitMix(&h)
        for c in components {
            var state = mixed ^ UInt64(bitPattern: Int64(c))
            mixed = splitMix(&state) &+ 0x632B_E59B_D9B4_E019
        }
        return RandomSource(seed: mixed)
    }

    @inline(__always)
    private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = Self.rotl(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = Self.rotl(s3, 45)
        return result
    }

    /// An independent child generator (seeded from this one's next output), for handing a
    /// sub-task its own stream without tying its consumption to the parent's.
    public mutating func split() -> RandomSource { RandomSource(seed: next()) }

    // MARK: scalars

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Uniform in [low, high) (exactly `low` when the range is empty).
    public mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * uniform() }

    public mutating func uniform(in range: ClosedRange<Double>) -> Double { uniform(range.lowerBound, range.upperBound) }

    /// True with probability `p`. Always consumes one draw, so the stream stays aligned
    /// whatever the probabilities (p <= 0: never, p >= 1: always).
    public mutating func chance(_ p: Double) -> Bool { uniform() < p }

    /// batchgenerators' draw for multiplicative ranges straddling 1 (contrast, gamma, scale):
    /// with probability 0.5 (when the range reaches below 1) uniform in [low, 1), otherwise
    /// uniform in [max(low, 1), high), so shrinking and growing are equally likely.
    public mutating func balanced(in range: ClosedRange<Double>) -> Double {
        if uniform() < 0.5 && range.lowerBound < 1 { return uniform(range.lowerBound, Swift.min(1, range.upperBound)) }
        return uniform(Swift.max(range.lowerBound, 1), range.upperBound)
    }

    /// Uniform integer in 0..<n without bias (Lemire's multiply-and-reject); 0 when n <= 1.
    public mutating func int(below n: Int) -> Int {
        guard n > 1 else { return 0 }
        let bound = UInt64(n)
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return Int(product.high)
    }

    /// Uniform integer in the closed range.
    public mutating func int(in range: ClosedRange<Int>) -> Int { range.lowerBound + int(below: range.count) }

    /// A uniformly chosen element (nil when empty).
    public mutating func element<T>(of array: [T]) -> T? { array.isEmpty ? nil : array[int(below: array.count)] }

    /// Standard normal sample (Box-Muller, one value per call).
    public mutating func gaussian() -> Double {
        let u = 1 - uniform()            // (0, 1]: log is finite
        let v = uniform()
        return (-2 * Foundation.log(u)).squareRoot() * Foundation.cos(2 * .pi * v)
    }

    /// Fisher-Yates shuffle (same permutation for the same state on every platform).
    public mutating func shuffle<T>(_ array: inout [T]) {
        guard array.count > 1 else { return }
        for i in stride(from: array.count - 1, to: 0, by: -1) {
            let j = int(below: i + 1)
            if i != j { array.swapAt(i, j) }
        }
    }

    public mutating func shuffled<T>(_ array: [T]) -> [T] {
        var copy = array
        shuffle(&copy)
        return copy
    }

    // MARK: bulk samples and tensors

    /// `count` normal samples N(mean, std^2) as Float (Box-Muller, both values of each pair used).
    public mutating func gaussians(count: Int, mean: Double = 0, std: Double = 1) -> [Float] {
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            var i = 0
            while i < count {
                let u = 1 - uniform(), v = uniform()
                let r = (-2 * Foundation.log(u)).squareRoot() * std
                let a = 2 * Double.pi * v
                buffer[i] = Float(mean + r * Foundation.cos(a))
                if i + 1 < count { buffer[i + 1] = Float(mean + r * Foundation.sin(a)) }
                i += 2
            }
            initialized = count
        }
    }

    /// `count` samples uniform in [low, high) as Float.
    public mutating func uniforms(count: Int, _ low: Double = 0, _ high: Double = 1) -> [Float] {
        guard count > 0 else { return [] }
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            for i in 0..<count { buffer[i] = Float(uniform(low, high)) }
            initialized = count
        }
    }

    /// A tensor of N(mean, std^2) samples from this generator, made on the CPU and moved to
    /// `device` (float32 unless `dtype` says otherwise).
    public mutating func gaussianTensor(_ shape: [Int], mean: Double = 0, std: Double = 1,
                                        dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let values = gaussians(count: shape.reduce(1, *), mean: mean, std: std)
        return try Tensor(values, shape: shape).movedIfNeeded(device: device, dtype: dtype)
    }

    /// A tensor of samples uniform in [low, high) from this generator.
    public mutating func uniformTensor(_ shape: [Int], _ low: Double = 0, _ high: Double = 1,
                                       dtype: DType = .float32, device: Device = .cpu) throws -> Tensor {
        let values = uniforms(count: shape.reduce(1, *), low, high)
        return try Tensor(values, shape: shape).movedIfNeeded(device: device, dtype: dtype)
    }
}

extension Tensor {
    /// This tensor on `device` with `dtype`, without a copy when it already is.
    func movedIfNeeded(device: Device, dtype: DType) throws -> Tensor {
        if self.device == device && self.dtype == dtype { return self }
        return try to(device: device, dtype: dtype)
    }
}
