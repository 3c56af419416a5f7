import Foundation
import MedSegData
import Torch

/// The last steps of a case's prediction done slab by slab, as the sliding window finishes the
/// logits of each range of the first spatial axis (array order; z of a volume): resampled back to
/// the raw grid, softmax (or sigmoids), labels, placed in the uncropped image, and the
/// probabilities written plane by plane when asked. Holds the label map, at most two resampled
/// slices of logits (the neighbours the interpolation along the first axis needs) and one slab.
///
/// On the CPU the slices are resampled in Double arrays, channel by channel on every core. Given a
/// device (a GPU whose logits add up there), the same taps are applied there with libtorch's ops
/// (index_select, multiply, add, in Double: the same sums in the same order, so the resampled logits
/// are equal bit for bit) and only labels and asked-for probabilities come back: the slab never
/// crosses to the CPU. `deviceBytes` bounds what that takes on the device.
///
/// The values equal `CaseInference.probabilities(of:)` followed by its labels: the in-plane axes
/// resampled as there, in Double, then the first axis from the same Double slices, the same taps in
/// the same order. (With the plan's separate axis in plane, the axes are taken in another order
/// than there, so values may differ in the last bits.) Only nearest and linear resampling stream:
/// a cubic spline filters whole lines, and `CaseInference` resamples such plans on whole volumes.
final class SlabExport {
    private let sigmoid: Bool
    private let regionsClassOrder: [Int]?
    private let classes: Int
    /// x first: the network's grid, the raw grid inside the crop box, the whole raw grid.
    private let stored: [Int], cropped: [Int]
    let fullSize: [Int]
    private let lower: [Int]
    private let orders: [Resampling.Order]
    private let taps: (width: Int, indices: [Int], weights: [Double])?
    /// Along a nearest first axis (or one that keeps its size) each output slice is one input slice
    /// as it is: kept in float (what the whole-volume path rounds it to in the end); linear taps add up in Double.
    private let copiesSlices: Bool
    /// Where the slices are resampled with tensor ops; nil: in Double arrays on the CPU.
    let device: Device?
    /// On `device`: each in-plane axis's taps (x first), nil where the axis keeps its size.
    private let planeTaps: [DeviceTaps?]
    private let probabilities: ProbabilityFile.Writer?
    /// The label map, x first, in the whole raw grid: 16 bits a voxel while the sliding window still
    /// holds its slab (a quarter of floats'; labels stay below 65,536).
    private var labels: [UInt16]
    /// In-plane resampled logits [K][plane] of the network grid's slices still needed.
    private var slices: [Int: ResampledSlice] = [:]
    private var nextOutput = 0
    /// Seconds spent here (resampling, softmax, labels, writing).
    private(set) var seconds = 0.0

    /// `stored`, `cropped` and `box` are x first; `box` nil: no crop. `orders[a]` resamples axis a.
    /// `device`: resample with tensor ops there (nil: Double arrays on the CPU).
    init(classes: Int, sigmoid: Bool, regionsClassOrder: [Int]?, stored: [Int], cropped: [Int], box: CropBox?,
         orders: [Resampling.Order], probabilities url: URL?, probabilitiesDType: DType, device: Device? = nil) throws {
        precondition(!orders.contains(.cubic), "cubic resampling does not stream")
        self.classes = classes
        self.sigmoid = sigmoid
        self.regionsClassOrder = regionsClassOrder
        self.stored = stored
        self.cropped = cropped
        fullSize = box?.originalSize ?? cropped
        lower = box?.lower ?? cropped.map { _ in 0 }
        self.orders = orders
        let d = stored.count
        taps = stored[d - 1] == cropped[d - 1] ? nil : Resampling.lineTaps(from: stored[d - 1], to: cropped[d - 1], order: orders[d - 1])
        copiesSlices = taps.map { $0.width == 1 } ?? true
        self.device = device
        planeTaps = try (0..<(d - 1)).map { a in
            guard let device, stored[a] != cropped[a] else { return nil }
            return try DeviceTaps(Resampling.lineTaps(from: stored[a], to: cropped[a], order: orders[a]), dim: d - 1 - a, rank: d, device: device)
        }
        let fullSize = box?.originalSize ?? cropped
        labels = [UInt16](repeating: 0, count: fullSize.reduce(1, *))
        probabilities = try url.map {
            try ProbabilityFile.Writer($0, shape: [classes] + fullSize.reversed(), dtype: probabilitiesDType, regionsClassOrder: regionsClassOrder)
        }
    }

    /// The probability outside the crop box: 1 for a softmax's background, else 0.
    private func background(_ channel: Int) -> Float { !sigmoid && channel == 0 ? 1 : 0 }

    /// The most memory (bytes) the export takes on a device for `classes` over planes of `stored`
    /// and `cropped` (x first, the first axis last): the resampled slices it keeps (three at most in
    /// Double) and one slice's temporaries while it is resampled and turned into labels.
    static func deviceBytes(classes: Int, stored: [Int], cropped: [Int]) -> Int {
        8 * 8 * classes * max(stored.dropLast().reduce(1, *), cropped.dropLast().reduce(1, *))
    }

    /// Takes the logits [K, n, rest...] (array order, network grid, any device) of slices start..<start+n.
    func add(start: Int, logits: Tensor) throws {
        let began = Date()
        defer { seconds += Date().timeIntervalSince(began) }
        if let device { return try addOnDevice(start: start, logits: logits, device: device) }
        let n = logits.size(1)
        let values = try logits.to(device: .cpu).to(dtype: .float32).contiguous().floats()
        let d = stored.count
        let inPlane = Array(stored.prefix(d - 1)), plane = inPlane.reduce(1, *)
        let outPlane = cropped.prefix(d - 1).reduce(1, *)
        for i in 0..<n {
            var resampled = [Double](repeating: 0, count: copiesSlices ? 0 : classes * outPlane)
            var rounded = [Float](repeating: 0, count: copiesSlices ? classes * outPlane : 0)
            // Channel by channel (each line resampled as on the whole volume), on every core.
            values.withUnsafeBufferPointer { source in
                resampled.withUnsafeMutableBufferPointer { wide in
                    rounded.withUnsafeMutableBufferPointer { narrow in
                        DispatchQueue.concurrentPerform(iterations: classes) { c in
                            let from = (c * n + i) * plane
                            var data = (0..<plane).map { Double(source[from + $0]) }
                            var current = inPlane
                            for a in 0..<(d - 1) where cropped[a] != current[a] {
                                data = Resampling.resampleAxis(data, size: current, channels: 1, axis: a, to: cropped[a], order: orders[a])
                                current[a] = cropped[a]
                            }
                            if copiesSlices {
                                for v in 0..<outPlane { narrow[c * outPlane + v] = Float(data[v]) }
                            } else {
                                for v in 0..<outPlane { wide[c * outPlane + v] = data[v] }
                            }
                        }
                    }
                }
            }
            slices[start + i] = copiesSlices ? .copied(try Tensor(rounded, shape: [classes] + cropped.prefix(d - 1).reversed())) : .wide(resampled)
            try writeReadyOutputs()
        }
    }

    /// `add` with tensor ops on `device`: each slice (moved there one at a time, should the logits
    /// be elsewhere) resampled in plane in Double, axis by axis (x first) as the arrays are, and kept there.
    private func addOnDevice(start: Int, logits: Tensor, device: Device) throws {
        for i in 0..<logits.size(1) {
            var slice = try logits.select(dim: 1, index: i).to(device: device, dtype: .float64)
            for case let axisTaps? in planeTaps { slice = try axisTaps.apply(slice) }
            slices[start + i] = copiesSlices ? .copied(try slice.to(dtype: .float32)) : .wideOnDevice(slice)
            try writeReadyOutputs()
        }
    }

    /// A line resampling's taps (`Resampling.lineTaps`) on a device, for one dimension of a tensor.
    private struct DeviceTaps {
        /// Per tap: each output's input index.
        let indices: [Tensor]
        /// Per tap: each output's weight, shaped to broadcast along the dimension; nil: nearest (1).
        let weights: [Tensor]?
        let dim: Int

        init(_ taps: (width: Int, indices: [Int], weights: [Double]), dim: Int, rank: Int, device: Device) throws {
            let m = taps.indices.count / taps.width
            let shape = [m] + [Int](repeating: 1, count: rank - 1 - dim)
            indices = try (0..<taps.width).map { t in
                try Tensor((0..<m).map { Int64(taps.indices[$0 * taps.width + t]) }).to(device: device)
            }
            weights = taps.width == 1 ? nil : try (0..<taps.width).map { t in
                try Tensor((0..<m).map { taps.weights[$0 * taps.width + t] }, shape: shape).to(device: device)
            }
            self.dim = dim
        }

        /// As `Resampling.resampleAxis`: each output the sum of its taps in order, from the first product.
        func apply(_ x: Tensor) throws -> Tensor {
            guard let weights else { return try x.indexSelect(dim: dim, index: indices[0]) }
            var sum = try x.indexSelect(dim: dim, index: indices[0]) * weights[0]
            for t in 1..<indices.count { sum = try sum + x.indexSelect(dim: dim, index: indices[t]) * weights[t] }
            return sum
        }
    }

    /// An input slice resampled in plane: a float32 tensor [K, plane...] (on the CPU or the device)
    /// where it is copied as it is, else in Double: an array, or a tensor on the device.
    private enum ResampledSlice {
        case copied(Tensor), wide([Double]), wideOnDevice(Tensor)
    }

    /// The last output written, reused while the next outputs copy the same input slice.
    private var lastOutput: (source: Int, label: [Float], probabilities: [Float]?)?

    /// Writes every output slice whose inputs have all arrived, and forgets inputs no later output needs.
    private func writeReadyOutputs() throws {
        let d = stored.count, last = cropped[d - 1]
        while nextOutput < last {
            let j = nextOutput
            let needed = taps.map { t in (0..<t.width).map { t.indices[j * t.width + $0] } } ?? [j]
            guard needed.allSatisfy({ slices[$0] != nil }) else { return }
            switch slices[needed[0]]! {
            case .copied(let logits):
                if lastOutput?.source != needed[0] {
                    let (label, p) = try outputPlane(logits)
                    lastOutput = (needed[0], label, p)
                }
            case .wideOnDevice:
                // As the Double arrays below: each tap's product added in order.
                var logits: Tensor? = nil
                for t in 0..<taps!.width {
                    guard case .wideOnDevice(let s) = slices[needed[t]]! else { continue }
                    let product = try s * taps!.weights[j * taps!.width + t]
                    logits = try logits.map { try $0 + product } ?? product
                }
                let (label, p) = try outputPlane(logits!.to(dtype: .float32))
                lastOutput = (-1, label, p)
            case .wide(let first):
                // As Resampling.resampleAxis: from 0, each tap in order.
                var logits = [Double](repeating: 0, count: first.count)
                for t in 0..<taps!.width {
                    guard case .wide(let s) = slices[needed[t]]! else { continue }
                    let w = taps!.weights[j * taps!.width + t]
                    for k in 0..<logits.count { logits[k] += w * s[k] }
                }
                let (label, p) = try outputPlane(logits.map { Float($0) })
                lastOutput = (-1, label, p)
            }
            try place(j, label: lastOutput!.label, probabilities: lastOutput!.probabilities)
            nextOutput += 1
            let first = taps.map { t in (0..<t.width).map { t.indices[min(nextOutput, last - 1) * t.width + $0] }.min()! } ?? nextOutput
            for key in slices.keys where key < first { slices[key] = nil }
        }
    }

    /// Labels and (when written) probabilities of one output slice of the crop from its logits.
    private func outputPlane(_ logits: [Float]) throws -> (label: [Float], probabilities: [Float]?) {
        let d = cropped.count
        return try outputPlane(Tensor(logits, shape: [classes] + cropped.prefix(d - 1).reversed()))
    }

    /// The same from float32 logits [K, plane...] on any device; only the results come to the CPU.
    private func outputPlane(_ logits: Tensor) throws -> (label: [Float], probabilities: [Float]?) {
        let p = sigmoid ? try logits.sigmoid() : try logits.softmax(dim: 0)
        let label = try ProbabilityFile.labels(p, regionsClassOrder: regionsClassOrder).to(dtype: .float32).to(device: .cpu).floats()
        return (label, probabilities == nil ? nil : try p.to(device: .cpu).floats())
    }

    /// Output slice `j` of the crop put in place in the whole grid (and in the probabilities file).
    private func place(_ j: Int, label: [Float], probabilities values: [Float]?) throws {
        let d = cropped.count
        let z = lower[d - 1] + j
        let fullPlane = fullSize.prefix(d - 1).reduce(1, *)
        forEachRow(of: cropped.prefix(d - 1)) { source, target, length in
            for x in 0..<length { labels[z * fullPlane + target + x] = UInt16(label[source + x]) }
        }
        guard let probabilities, let values else { return }
        let plane = cropped.prefix(d - 1).reduce(1, *)
        for c in 0..<classes {
            var out = [Float](repeating: background(c), count: fullPlane)
            forEachRow(of: cropped.prefix(d - 1)) { source, target, length in
                for x in 0..<length { out[target + x] = values[c * plane + source + x] }
            }
            try probabilities.write(channel: c, slice: z, plane: out)
        }
    }

    /// Calls `body` for each x-row of the crop's plane: its start in the crop's plane, in the whole
    /// grid's plane, and its length.
    private func forEachRow(of plane: ArraySlice<Int>, _ body: (Int, Int, Int) -> Void) {
        let width = plane.first!, rows = plane.dropFirst().reduce(1, *)
        let fullWidth = fullSize[0]
        for r in 0..<rows {
            // The row's coordinates beyond x (y only, in a volume's plane).
            var rest = r, target = lower[0], stride = fullWidth
            for a in 1..<plane.count {
                let n = cropped[a]
                target += (rest % n + lower[a]) * stride
                rest /= n
                stride *= fullSize[a]
            }
            body(r * width, target, width)
        }
    }

    /// The finished label map, x first, in the whole raw grid; the probabilities file committed.
    func finish() throws -> [Float] {
        let d = cropped.count, last = cropped[d - 1]
        guard nextOutput == last else { throw TrainingError("prediction ended after \(nextOutput) of \(last) slices") }
        if let probabilities {
            let began = Date()
            // Slices outside the crop box along the first axis: background only.
            let fullPlane = fullSize.prefix(d - 1).reduce(1, *)
            for z in 0..<fullSize[d - 1] where !(lower[d - 1]..<(lower[d - 1] + last)).contains(z) {
                for c in 0..<classes where background(c) != 0 {
                    try probabilities.write(channel: c, slice: z, plane: [Float](repeating: background(c), count: fullPlane))
                }
            }
            try probabilities.commit()
            seconds += Date().timeIntervalSince(began)
        }
        return labels.map(Float.init)
    }
}
