import Torch

/// Patch-wise inference over a whole image, as nnU-Net does it: windows of the training patch
/// size placed at a step of half a patch, each weighted by a Gaussian importance map (sigma =
/// patch / 8) so that window borders count less, optional mirror test-time augmentation
/// (average over every combination of flips), images smaller than the patch padded with zeros.
public struct SlidingWindow {
    public var patchSize: [Int]
    /// Step between windows as a fraction of the patch size.
    public var stepFraction = 0.5
    public var gaussian = true
    /// Spatial axes (0-based, in tensor order) to mirror for test-time augmentation.
    public var mirrorAxes: [Int] = []
    /// Windows evaluated per network call.
    public var batchSize = 1
    /// Where the logits of the whole image add up (nil: the image's device). A GPU that runs the
    /// network but cannot hold a large volume's float32 logits accumulates them on the CPU.
    public var accumulationDevice: Device?

    public init(patchSize: [Int], stepFraction: Double = 0.5, gaussian: Bool = true, mirrorAxes: [Int] = [], batchSize: Int = 1) {
        self.patchSize = patchSize
        self.stepFraction = stepFraction
        self.gaussian = gaussian
        self.mirrorAxes = mirrorAxes
        self.batchSize = max(1, batchSize)
    }

    /// Window start positions along one axis (nnU-Net's compute_steps_for_sliding_window).
    public static func steps(imageSize: Int, patchSize: Int, stepFraction: Double) -> [Int] {
        guard imageSize > patchSize else { return [0] }
        let target = Double(patchSize) * stepFraction
        let count = Int((Double(imageSize - patchSize) / target).rounded(.up)) + 1
        let actual = Double(imageSize - patchSize) / Double(count - 1)
        return (0..<count).map { Int((actual * Double($0)).rounded()) }
    }

    /// The importance map: a Gaussian with sigma = patch / 8 centred on the patch, scaled to a
    /// maximum of 1, with zeros replaced by the smallest positive value.
    public static func importanceMap(patchSize: [Int], device: Device = .cpu) throws -> Tensor {
        var map: Tensor? = nil
        for (axis, size) in patchSize.enumerated() {
            let sigma = Double(size) / 8
            let center = Double(size / 2)
            let x = try Tensor.arange(0, Double(size), dtype: .float64, device: device)
            let g = try ((x - center).square() / (-2 * sigma * sigma)).exp()
            var shape = Array(repeating: 1, count: patchSize.count)
            shape[axis] = size
            let shaped = try g.reshape(shape)
            map = try map.map { try $0 * shaped } ?? shaped
        }
        var m = try map!.to(dtype: .float32)
        m = try m / m.max()
        let positive = try m.maskedSelect(m.gt(0)).min()
        return try Tensor.where(m.eq(0), positive.expand(m.shape), m)
    }

    /// Logits [K, spatial...] for an image [C, spatial...]; `network` maps [B, C, patch...] to
    /// [B, K, patch...].
    public func callAsFunction(_ image: Tensor, network: (Tensor) throws -> Tensor) throws -> Tensor {
        let spatial = Array(image.shape.dropFirst())
        guard spatial.count == patchSize.count else {
            throw TorchError("sliding window: image has \(spatial.count) spatial dimensions, patch size has \(patchSize.count)")
        }
        // Pad up to the patch size where the image is smaller (centred, as nnU-Net).
        var padding: [Int] = []
        var padded = spatial
        for axis in (0..<spatial.count).reversed() {
            let missing = max(0, patchSize[axis] - spatial[axis])
            padding += [missing / 2, missing - missing / 2]
            padded[axis] = spatial[axis] + missing
        }
        let input = padding.allSatisfy({ $0 == 0 }) ? image : try image.pad(padding)

        let positions = cartesian(padded.indices.map { Self.steps(imageSize: padded[$0], patchSize: patchSize[$0], stepFraction: stepFraction) })
        let target = accumulationDevice ?? image.device
        let weight = gaussian ? try Self.importanceMap(patchSize: patchSize, device: target) : try Tensor.ones(patchSize, device: target)
        var sum: Tensor? = nil
        let counts = try Tensor.zeros(padded, device: target)

        return try withNoGrad {
            var index = 0
            while index < positions.count {
                let chunk = Array(positions[index..<min(index + batchSize, positions.count)])
                index += chunk.count
                let windows = try Tensor.stack(chunk.map { try crop(input, at: $0, leading: 1) })
                var logits = try predictMirrored(windows, network: network)
                if target != image.device { logits = try logits.to(device: target) }
                if sum == nil { sum = try Tensor.zeros([logits.size(1)] + padded, device: target) }
                for (k, start) in chunk.enumerated() {
                    // One fused pass (sum += logits * weight) instead of a temporary and an add:
                    // every op on a 2-core machine also pays a thread-pool round trip.
                    try crop(sum!, at: start, leading: 1).addcmul_(logits[k], weight)
                    try crop(counts, at: start, leading: 0).add_(weight)
                }
            }
            var result = try sum! / counts
            // Remove the padding again.
            for axis in 0..<spatial.count {
                let before = padding[2 * (spatial.count - 1 - axis)]
                result = try result.narrow(dim: axis + 1, start: before, length: spatial[axis])
            }
            return try result.contiguous()
        }
    }

    /// Network output averaged over every combination of flips of `mirrorAxes`.
    func predictMirrored(_ batch: Tensor, network: (Tensor) throws -> Tensor) throws -> Tensor {
        var total = try network(batch)
        guard !mirrorAxes.isEmpty else { return total }
        var combinations = 1
        for mask in 1..<(1 << mirrorAxes.count) {
            let dims = mirrorAxes.enumerated().filter { mask & (1 << $0.offset) != 0 }.map { $0.element + 2 }
            let flipped = try network(batch.flip(dims)).flip(dims)
            // The first sum is a buffer of our own (the network's output may alias its input);
            // later ones accumulate into it instead of allocating a new one per combination.
            if combinations == 1 { total = try total + flipped } else { try total.add_(flipped) }
            combinations += 1
        }
        return try total / Double(combinations)
    }

    private func crop(_ t: Tensor, at start: [Int], leading: Int) throws -> Tensor {
        var view = t
        for (axis, s) in start.enumerated() {
            view = try view.narrow(dim: axis + leading, start: s, length: patchSize[axis])
        }
        return view
    }

    private func cartesian(_ axes: [[Int]]) -> [[Int]] {
        axes.reduce([[]]) { partial, values in partial.flatMap { p in values.map { p + [$0] } } }
    }
}
