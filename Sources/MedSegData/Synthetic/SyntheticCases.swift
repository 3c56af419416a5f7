import Foundation

/// Generates the built-in synthetic data set: images with textured background, a smooth bias
/// field, noise, and blob-shaped foreground classes of varying size and contrast that a network
/// learns in minutes on a CPU. 3D cases have anisotropic spacing (thick slices along z).
public struct SyntheticCases {
    public struct Options: Codable, Equatable, Sendable {
        public var dims = 2
        /// Spatial size, x fastest ([x, y] or [x, y, z]).
        public var size: [Int]
        /// Foreground classes (labels 1...classes).
        public var classes = 1
        /// Image channels (3 for colour-like, 4 for multi-modal MRI-like data); each sees the same
        /// structures with its own contrast and noise.
        public var channels = 1
        public var seed: UInt64 = 0

        public init(dims: Int = 2, size: [Int]? = nil, classes: Int? = nil, channels: Int = 1, seed: UInt64 = 0) {
            self.dims = dims
            self.size = size ?? (dims == 2 ? [128, 128] : [64, 64, 32])
            self.classes = classes ?? (dims == 2 ? 1 : 2)
            self.channels = channels
            self.seed = seed
        }

        /// Voxel spacing in millimetres: isotropic in 2D, thick slices in 3D.
        public var spacing: [Double] { dims == 2 ? [1, 1] : [0.8, 0.8, 2.5] }
    }

    public let options: Options

    public init(_ options: Options) throws {
        guard options.dims == 2 || options.dims == 3, options.size.count == options.dims else {
            throw DataError("synthetic data: size \(options.size) does not have \(options.dims) dimensions")
        }
        guard options.size.allSatisfy({ $0 >= 16 }) else {
            throw DataError("synthetic data: every axis needs at least 16 voxels, got \(options.size)")
        }
        guard (1...8).contains(options.channels) else {
            throw DataError("synthetic data: channels must be 1 to 8, got \(options.channels)")
        }
        guard (1...8).contains(options.classes) else {
            throw DataError("synthetic data: classes must be 1 to 8, got \(options.classes)")
        }
        self.options = options
    }

    /// Case `index` (deterministic in seed and index): the image and its label map.
    public func makeCase(_ index: Int) -> (image: MedicalImage, label: MedicalImage) {
        var rng = SplitMix64(seed: options.seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(index) &+ 1)
        let size = options.size, dims = options.dims
        let count = size.reduce(1, *)
        let spacing = options.spacing
        // Physical coordinates keep blobs round in millimetres despite anisotropic voxels.
        let extent = zip(size, spacing).map { Double($0) * $1 }

        // Background: a few low-frequency waves (texture) plus a smooth bias field.
        var waves: [(k: [Double], phase: Double, amp: Double)] = []
        for _ in 0..<4 {
            waves.append(((0..<dims).map { _ in rng.uniform(-0.25, 0.25) }, rng.uniform(0, 2 * .pi), rng.uniform(0.1, 0.35)))
        }
        let bias = (0..<dims).map { _ in rng.uniform(-0.3, 0.3) }

        // Foreground blobs: ellipsoids with a wobbly boundary, per class 1-3 of them.
        struct Blob { var center: [Double]; var radii: [Double]; var harmonics: [(Double, Double)]; var label: Int }
        var blobs: [Blob] = []
        let smallest = extent.min()!
        for label in 1...options.classes {
            for _ in 0..<Int(rng.uniform(1, 3.999)) {
                let r = rng.uniform(0.08, 0.2) * smallest
                let radii = (0..<dims).map { _ in r * rng.uniform(0.7, 1.3) }
                let center = (0..<dims).map { extent[$0] * rng.uniform(0.2, 0.8) }
                blobs.append(Blob(center: center, radii: radii,
                                  harmonics: (1...3).map { _ in (rng.uniform(0, 0.15), rng.uniform(0, 2 * .pi)) }, label: label))
            }
        }
        let contrast = (0...options.classes).map { $0 == 0 ? 0 : rng.uniform(1.2, 2.5) * (rng.uniform(0, 1) < 0.25 ? -1 : 1) }
        let noise = rng.uniform(0.15, 0.35)
        let baseIntensity = rng.uniform(80, 120), scale = rng.uniform(15, 30)

        var image = [Float](repeating: 0, count: count)
        var label = [Float](repeating: 0, count: count)
        var coords = [Int](repeating: 0, count: dims)
        for i in 0..<count {
            var rest = i
            for a in 0..<dims { coords[a] = rest % size[a]; rest /= size[a] }
            let p = (0..<dims).map { (Double(coords[$0]) + 0.5) * spacing[$0] }
            var value = 0.0
            for w in waves {
                var phase = w.phase
                for a in 0..<dims { phase += w.k[a] * p[a] }
                value += w.amp * sin(phase)
            }
            for a in 0..<dims { value += bias[a] * (p[a] / extent[a] - 0.5) }
            var l = 0
            for b in blobs {
                var r2 = 0.0
                for a in 0..<dims { let d = (p[a] - b.center[a]) / b.radii[a]; r2 += d * d }
                if r2 > 2.5 { continue }
                let angle = atan2(p[1] - b.center[1], p[0] - b.center[0])
                var boundary = 1.0
                for (k, h) in b.harmonics.enumerated() { boundary += h.0 * sin(Double(k + 2) * angle + h.1) }
                if r2.squareRoot() <= boundary { l = b.label }
            }
            value += contrast[l]
            value += noise * rng.gaussian()
            image[i] = Float(baseIntensity + scale * value)
            label[i] = Float(l)
        }
        let geometry = ImageGeometry(spacing: spacing)
        var voxels = image
        for _ in 1..<options.channels {
            // Further channels: the same anatomy with another gain, offset and noise.
            let gain = rng.uniform(0.6, 1.4), offset = rng.uniform(-20, 20)
            voxels += image.map { Float(Double($0) * gain + offset + 3 * rng.gaussian()) }
        }
        return (MedicalImage(size: size, channels: options.channels, voxels: voxels, pixelType: .float32, geometry: geometry),
                MedicalImage(size: size, voxels: label, pixelType: .uint8, geometry: geometry))
    }
}
