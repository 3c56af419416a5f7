import Foundation

/// Counts the arithmetic of convolutions and matrix products as they run, from their operands'
/// shapes: 2 FLOPs per multiply-add, bias and activations left out (the convention of fvcore and
/// PyTorch's FlopCounterMode). Benchmarks divide it by their time to say how far a step is from
/// the hardware's peak.
public enum FLOPCounter {
    private static let lock = NSLock()
    private static var active = 0
    private static var total = 0

    /// The FLOPs of the convolutions and matrix products `body` runs (on any thread meanwhile).
    public static func count(_ body: () throws -> Void) rethrows -> Int {
        lock.lock(); active += 1; let before = total; lock.unlock()
        defer { lock.lock(); active -= 1; lock.unlock() }
        try body()
        lock.lock(); defer { lock.unlock() }
        return total - before
    }

    static var isCounting: Bool { lock.lock(); defer { lock.unlock() }; return active > 0 }

    static func add(_ flops: Int) {
        lock.lock(); if active > 0 { total += flops }; lock.unlock()
    }

    /// A convolution: each output element (each input element of a transposed one) takes
    /// weight.count / weight.shape[0] multiply-adds.
    static func convolution(input: Tensor, weight: Tensor, output: Tensor, transposed: Bool) {
        guard isCounting, let first = weight.shape.first, first > 0 else { return }
        add(2 * (transposed ? input.count : output.count) * (weight.count / first))
    }

    /// A matrix product whose operands share the inner dimension `inner`.
    static func product(output: Tensor, inner: Int) {
        guard isCounting else { return }
        add(2 * max(output.count, 1) * inner)
    }
}
