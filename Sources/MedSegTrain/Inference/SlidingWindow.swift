import Torch

/// Patch-wise inference over a whole image, as nnU-Net does it: windows of the training patch
/// size placed at a step of half a patch, each weighted by a Gaussian importance map (sigma =
/// patch / 8) so that window borders count less, optional mirror test-time augmentation
/// (average over every combination of flips), images smaller than the patch padded with zeros.
public struct SlidingWindow {
    public var patchSize: [Int]
    /// Step between windows as a fraction of the patch size.
    public var stepFraction = WindowSettings.defaultStepSize
    public var gaussian = true
    /// Spatial axes (0-based, in tensor order) to mirror for test-time augmentation.
    public var mirrorAxes: [Int] = []
    /// Windows evaluated per network call.
    public var batchSize = 1
    /// Where the logits of the whole image add up (nil: the image's device). A GPU that runs the
    /// network but cannot hold a large volume's float32 logits accumulates them on the CPU.
    public var accumulationDevice: Device?
    /// The type `stream` adds the logits up in: float32, or float16 to halve its buffer (as
    /// nnU-Net v2 accumulates).
    public var accumulationDType: DType = .float32

    public init(patchSize: [Int], stepFraction: Double = WindowSettings.defaultStepSize, gaussian: Bool = true, mirrorAxes: [Int] = [], batchSize: Int = 1) {
        self.patchSize = patchSize
        self.stepFraction = stepFraction
        self.gaussian = gaussian
        self.mirrorAxes = mirrorAxes
        self.batchSize = max(1, batchSize)
    }

    /// The step sizes (fractions of the patch) that `predict`, `export` and model files take:
    /// down to 0.05 (each voxel under at most 20 windows per axis), up to 1 (windows touching).
    public static let stepFractions: ClosedRange<Double> = 0.05...1

    /// Why `step` is no step size, or nil.
    public static func stepProblem(_ step: Double) -> String? {
        stepFractions.contains(step) ? nil : "must be from \(stepFractions.lowerBound) to 1 (a fraction of the patch; nnU-Net's is 0.5), got \(step)"
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

    /// An image [C, spatial...] padded up to the patch size where it is smaller (centred, as
    /// nnU-Net), the padding before each spatial axis, and the padded spatial size.
    private func paddedToPatch(_ image: Tensor) throws -> (input: Tensor, before: [Int], padded: [Int]) {
        let spatial = Array(image.shape.dropFirst())
        guard spatial.count == patchSize.count else {
            throw TorchError("sliding window: image has \(spatial.count) spatial dimensions, patch size has \(patchSize.count)")
        }
        var padding: [Int] = []
        for axis in (0..<spatial.count).reversed() {
            let missing = max(0, patchSize[axis] - spatial[axis])
            padding += [missing / 2, missing - missing / 2]
        }
        let before = spatial.indices.map { padding[2 * (spatial.count - 1 - $0)] }
        let padded = spatial.indices.map { spatial[$0] + max(0, patchSize[$0] - spatial[$0]) }
        return (padding.allSatisfy({ $0 == 0 }) ? image : try image.pad(padding), before, padded)
    }

    /// Logits [K, spatial...] for an image [C, spatial...]; `network` maps [B, C, patch...] to
    /// [B, K, patch...].
    public func callAsFunction(_ image: Tensor, network: (Tensor) throws -> Tensor) throws -> Tensor {
        let spatial = Array(image.shape.dropFirst())
        let (input, before, padded) = try paddedToPatch(image)
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
                result = try result.narrow(dim: axis + 1, start: before[axis], length: spatial[axis])
            }
            return try result.contiguous()
        }
    }

    /// The same windows in the same order, for bounded memory: the logits are added up in a
    /// buffer one patch deep along the first spatial axis (instead of the whole image), and each
    /// range of that axis is handed to `emit` (its start in the image, logits [K, n, rest...],
    /// float32) as soon as no later window touches it, in pieces of at most `emitBytes`.
    /// `networks` are an ensemble's members, each mapping a batch of windows [B, C, patch...] to
    /// its (mirror-averaged) logits; their mean is emitted. One network gives exactly the values
    /// of `callAsFunction`.
    ///
    /// In float16, each window adds its logits times its share of the voxel's final weight (its
    /// Gaussian over the sum of all windows' there, known before any network runs), so the buffer
    /// holds running parts of the mean, at the logits' scale. Weight times logit would fall below
    /// float16's range where only a window's edge covers a voxel (the Gaussian is 4e-11 at a
    /// window's corners, which are the corners of the image): those sums rounded to zero and
    /// painted background there.
    public func stream(_ image: Tensor, networks: [(Tensor) throws -> Tensor], emitBytes: Int = 64 << 20,
                       emit: (_ start: Int, _ logits: Tensor) throws -> Void) throws {
        let spatial = Array(image.shape.dropFirst())
        let (input, before, padded) = try paddedToPatch(image)
        let rows = Self.steps(imageSize: padded[0], patchSize: patchSize[0], stepFraction: stepFraction)
        let plane = cartesian(padded.indices.dropFirst().map { Self.steps(imageSize: padded[$0], patchSize: patchSize[$0], stepFraction: stepFraction) })
        let target = accumulationDevice ?? image.device
        let weight = gaussian ? try Self.importanceMap(patchSize: patchSize, device: target) : try Tensor.ones(patchSize, device: target)
        let depth = patchSize[0], rest = Array(padded.dropFirst())
        var sum: Tensor? = nil
        let positions = rows.flatMap { row in plane.map { [row] + $0 } }
        // float32 sums the weights beside the logits, as `callAsFunction`; float16 needs each voxel's total first.
        let counts = accumulationDType == .float32 ? try Tensor.zeros([depth] + rest, device: target) : nil
        let totals = counts == nil ? try Tensor.zerosMapped(padded, dtype: .float32, device: target) : nil
        if let totals { for start in positions { try crop(totals, at: start, leading: 0).add_(weight) } }
        var base = 0   // the padded index of the buffers' first slice

        // Emits the padded slices [base, base + n), then moves the buffers on by n.
        func finish(_ n: Int) throws {
            guard n > 0, let s = sum else { return }
            let lo = max(base, before[0]), hi = min(base + n, before[0] + spatial[0])
            let sliceBytes = s.size(0) * rest.reduce(1, *) * 4
            var r = lo
            while r < hi {
                let m = min(max(1, emitBytes / sliceBytes), hi - r)
                var logits = try s.narrow(dim: 1, start: r - base, length: m).to(dtype: .float32)
                if let counts { logits = try logits / counts.narrow(dim: 0, start: r - base, length: m) }
                if networks.count > 1 { logits = try logits / Double(networks.count) }
                for axis in 1..<spatial.count {
                    logits = try logits.narrow(dim: axis + 1, start: before[axis], length: spatial[axis])
                }
                try emit(r - before[0], logits.contiguous())
                r += m
            }
            // Slice by slice, front to back: no copy overlaps its source.
            let keep = depth - n
            for j in 0..<keep {
                try s.select(dim: 1, index: j).copy_(s.select(dim: 1, index: j + n))
                try counts?.select(dim: 0, index: j).copy_(counts!.select(dim: 0, index: j + n))
            }
            try s.narrow(dim: 1, start: keep, length: n).zero_()
            try counts?.narrow(dim: 0, start: keep, length: n).zero_()
            base += n
        }

        try withNoGrad {
            // Batches as `callAsFunction` makes them (a batch may span two rows of windows, and
            // a network's numerics can depend on the batch); the buffers move on between windows.
            var index = 0
            while index < positions.count {
                let chunk = Array(positions[index..<min(index + batchSize, positions.count)])
                index += chunk.count
                let windows = try Tensor.stack(chunk.map { try crop(input, at: $0, leading: 1) })
                let outputs = try networks.map { network in
                    let logits = try network(windows)
                    return target != image.device ? try logits.to(device: target) : logits
                }
                if sum == nil { sum = try Tensor.zerosMapped([outputs[0].size(1), depth] + rest, dtype: accumulationDType, device: target) }
                for (k, start) in chunk.enumerated() {
                    try finish(start[0] - base)
                    let local = [start[0] - base] + start.dropFirst()
                    let region = try crop(sum!, at: local, leading: 1)
                    if let counts {
                        for logits in outputs { try region.addcmul_(logits[k], weight) }
                        try crop(counts, at: local, leading: 0).add_(weight)
                        continue
                    }
                    let share = try weight / crop(totals!, at: start, leading: 0)
                    for logits in outputs {
                        // Added up in float32 and stored rounded (libtorch's CPU kernels mix no types in place),
                        // a slice of the window at a time: a whole window's float32 copy would take as much
                        // as its logits (0.4 GB for a hundred classes in a 40 x 160 x 160 patch).
                        for z in 0..<depth {
                            let part = try region.select(dim: 1, index: z)
                            let widened = try part.to(dtype: .float32)
                            try widened.addcmul_(logits[k].select(dim: 1, index: z), share.select(dim: 0, index: z))
                            try part.copy_(widened)
                        }
                    }
                }
            }
            try finish(padded[0] - base)
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
