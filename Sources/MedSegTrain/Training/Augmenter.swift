import Foundation
import MedSegData
import Torch

/// Per-sample augmentation of training patches ([C, spatial...] image, [1, spatial...] label) as
/// tensor operations (so it runs wherever the tensors live), driven by a seeded generator so that a
/// batch is the same whoever makes it and whenever.
///
/// Presets:
/// - "nnunet" (nnU-Net v2 defaults): rotation p 0.2 (2D: +-180 degrees; 3D: +-30 degrees per axis) and
///   scaling p 0.2 (0.7-1.4), combined into one sampling grid (bilinear for the image, nearest
///   for the label); Gaussian noise p 0.1 (variance up to 0.1); Gaussian blur p 0.2 (sigma
///   0.5-1); brightness p 0.15 (x 0.75-1.25); contrast p 0.15 (0.75-1.25, range kept); simulated
///   low resolution p 0.25 (zoom 0.5-1); gamma p 0.3 (0.7-1.5, inverted p 0.1, mean and std kept);
///   mirroring on every axis (p 0.5 each).
/// - "flip_rotate" (UltraLight VM-UNet): flips and in-plane quarter turns (p 0.5 each) and a rotation of
///   20-80 degrees either way (p 0.5).
/// - "flip_rotate_scale" (SETR): flips, rotation p 0.5 (+-30 degrees), scaling p 0.5 (0.75-1.25).
/// - "flip": mirroring only. "none".
struct Augmenter {
    let preset: String
    let dims: Int

    static let presets = ["nnunet", "flip_rotate", "flip_rotate_scale", "flip", "none"]

    /// The random decisions for one sample; `nil` means the step is not applied.
    struct Plan: Equatable {
        var angles: [Double]? = nil      // radians; 2D: one angle, 3D: about x, y, z
        var scale: Double? = nil
        var mirrorAxes: [Int] = []       // spatial axes in tensor order (0 = first spatial)
        var quarterTurn = false
        var noiseVariance: Double? = nil
        var blurSigma: Double? = nil
        var brightness: Double? = nil
        var contrast: Double? = nil
        var lowResolutionZoom: Double? = nil
        var gamma: (value: Double, inverted: Bool)? = nil

        static func == (a: Plan, b: Plan) -> Bool {
            a.angles == b.angles && a.scale == b.scale && a.mirrorAxes == b.mirrorAxes && a.quarterTurn == b.quarterTurn
                && a.noiseVariance == b.noiseVariance && a.blurSigma == b.blurSigma && a.brightness == b.brightness
                && a.contrast == b.contrast && a.lowResolutionZoom == b.lowResolutionZoom
                && a.gamma?.value == b.gamma?.value && a.gamma?.inverted == b.gamma?.inverted
        }
    }

    init(preset: String, dims: Int) throws {
        guard Self.presets.contains(preset) else {
            throw ConfigError("key 'augmentation': unknown preset '\(preset)'; available: \(Self.presets.joined(separator: ", "))")
        }
        self.preset = preset
        self.dims = dims
    }

    func draw(_ rng: inout SplitMix64) -> Plan {
        var p = Plan()
        func chance(_ probability: Double) -> Bool { rng.uniform() < probability }
        func angles(_ maxDegrees: Double, minDegrees: Double = 0) -> [Double] {
            (0..<(dims == 2 ? 1 : 3)).map { _ in
                let magnitude = rng.uniform(minDegrees, maxDegrees) * .pi / 180
                return rng.uniform() < 0.5 ? -magnitude : magnitude
            }
        }
        switch preset {
        case "nnunet":
            if chance(0.2) { p.angles = angles(dims == 2 ? 180 : 30) }
            if chance(0.2) { p.scale = rng.uniform(0.7, 1.4) }
            if chance(0.1) { p.noiseVariance = rng.uniform(0, 0.1) }
            if chance(0.2) { p.blurSigma = rng.uniform(0.5, 1) }
            if chance(0.15) { p.brightness = rng.uniform(0.75, 1.25) }
            if chance(0.15) { p.contrast = rng.uniform(0.75, 1.25) }
            if chance(0.25) { p.lowResolutionZoom = rng.uniform(0.5, 1) }
            if chance(0.1) { p.gamma = (rng.uniform() < 0.5 ? rng.uniform(0.7, 1) : rng.uniform(1, 1.5), true) }
            if chance(0.3) { p.gamma = (rng.uniform() < 0.5 ? rng.uniform(0.7, 1) : rng.uniform(1, 1.5), false) }
        case "flip_rotate":
            p.quarterTurn = chance(0.5)
            if chance(0.5) { p.angles = angles(80, minDegrees: 20) }
        case "flip_rotate_scale":
            if chance(0.5) { p.angles = angles(30) }
            if chance(0.5) { p.scale = rng.uniform(0.75, 1.25) }
        default:
            break
        }
        if preset != "none" { p.mirrorAxes = (0..<dims).filter { _ in chance(0.5) } }
        return p
    }

    func apply(_ image: inout Tensor, _ label: inout Tensor, _ rng: inout SplitMix64) throws {
        guard preset != "none" else { return }
        let plan = draw(&rng)
        try apply(plan, &image, &label, &rng)
    }

    func apply(_ p: Plan, _ image: inout Tensor, _ label: inout Tensor, _ rng: inout SplitMix64) throws {
        if p.angles != nil || p.scale != nil {
            (image, label) = try Self.spatial(image, label, angles: p.angles ?? Array(repeating: 0, count: dims == 2 ? 1 : 3), scale: p.scale ?? 1)
        }
        if let v = p.noiseVariance {
            var noise = [Float](repeating: 0, count: image.count)
            let sd = v.squareRoot()
            for i in noise.indices { noise[i] = Float(rng.gaussian() * sd) }
            image = try image + Tensor(noise, shape: image.shape)
        }
        if let sigma = p.blurSigma { image = try Self.blur(image, sigma: sigma) }
        if let b = p.brightness { image = try image * b }
        if let c = p.contrast {
            let mean = try image.mean(dims: Array(1..<image.rank), keepDim: true)
            let lo = try image.min().item(), hi = try image.max().item()
            image = try ((image - mean) * c + mean).clamp(min: lo, max: hi)
        }
        if let zoom = p.lowResolutionZoom {
            let spatial = Array(image.shape.dropFirst())
            let small = spatial.map { max(1, Int((Double($0) * zoom).rounded())) }
            let down = try F.interpolate(image.unsqueeze(0), size: small, mode: .nearest)
            image = try F.interpolate(down, size: spatial, mode: dims == 2 ? .bilinear : .trilinear)[0]
        }
        if let g = p.gamma, image.count > 1 {
            // Gamma on the range-normalized image, keeping mean and standard deviation.
            var x = g.inverted ? try -image : image
            let mean = try x.mean(), std = try x.std()
            let lo = try x.min(), range = try x.max() - lo
            x = try ((x - lo) / (range + 1e-7)).pow(g.value) * (range + 1e-7) + lo
            x = try (x - x.mean()) / (x.std() + 1e-7) * std + mean
            image = g.inverted ? try -x : x
        }
        if !p.mirrorAxes.isEmpty {
            let axes = p.mirrorAxes.map { $0 + 1 }
            image = try image.flip(axes)
            label = try label.flip(axes)
        }
        if p.quarterTurn && image.size(-1) == image.size(-2) {
            image = try image.transpose(-1, -2).flip([image.rank - 1])
            label = try label.transpose(-1, -2).flip([label.rank - 1])
        }
    }

    /// Rotation and scaling about the patch centre as one sampling grid, in physical (voxel)
    /// units so that non-square patches rotate without shearing; bilinear for the image, nearest
    /// for the label, zeros outside.
    static func spatial(_ image: Tensor, _ label: Tensor, angles: [Double], scale: Double) throws -> (Tensor, Tensor) {
        let spatial = Array(image.shape.dropFirst())      // (D,) H, W
        let n = spatial.count
        let half = spatial.reversed().map { Double($0) / 2 } // x, y(, z)
        var r: [[Double]]
        if n == 2 {
            let a = angles[0]
            r = [[cos(a), -sin(a)], [sin(a), cos(a)]]
        } else {
            let (ax, ay, az) = (angles[0], angles[1], angles[2])
            let rx = [[1, 0, 0], [0, cos(ax), -sin(ax)], [0, sin(ax), cos(ax)]]
            let ry = [[cos(ay), 0, sin(ay)], [0, 1, 0], [-sin(ay), 0, cos(ay)]]
            let rz = [[cos(az), -sin(az), 0], [sin(az), cos(az), 0], [0, 0, 1]]
            r = multiply(rz, multiply(ry, rx))
        }
        // theta = D^-1 (s R) D in normalized grid coordinates (x, y(, z)).
        var theta: [Float] = []
        for i in 0..<n {
            for j in 0..<n { theta.append(Float(r[i][j] * scale * half[j] / half[i])) }
            theta.append(0)
        }
        let grid = try F.affineGrid(Tensor(theta, shape: [1, n, n + 1]), size: [1, image.size(0)] + spatial, alignCorners: false)
        let warped = try F.gridSample(image.unsqueeze(0), grid: grid, mode: .bilinear, paddingMode: .zeros)[0]
        let labels = try F.gridSample(label.unsqueeze(0), grid: grid, mode: .nearest, paddingMode: .zeros)[0]
        return (warped, labels)
    }

    /// Separable Gaussian blur of each channel (kernel radius 3 sigma, zero-padded edges replicated).
    static func blur(_ image: Tensor, sigma: Double) throws -> Tensor {
        let radius = max(1, Int((3 * sigma).rounded(.up)))
        let weights = (-radius...radius).map { Foundation.exp(-Double($0 * $0) / (2 * sigma * sigma)) }
        let total = weights.reduce(0, +)
        let kernel = weights.map { Float($0 / total) }
        let channels = image.size(0)
        let n = image.rank - 1
        var x = try image.unsqueeze(0)
        for axis in 0..<n {
            var shape = [channels, 1] + Array(repeating: 1, count: n)
            shape[2 + axis] = kernel.count
            let w = try Tensor(Array(repeating: kernel, count: channels).flatMap { $0 }, shape: shape)
            var pad = Array(repeating: 0, count: 2 * n)
            pad[2 * (n - 1 - axis)] = radius
            pad[2 * (n - 1 - axis) + 1] = radius
            x = try F.conv(x.pad(pad, mode: .replicate), weight: w, groups: channels)
        }
        return try x[0]
    }

    private static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        (0..<3).map { i in (0..<3).map { j in (0..<3).reduce(0) { $0 + a[i][$1] * b[$1][j] } } }
    }
}
