import Foundation
import Torch

/// The spatial change of one sample; identity when every part is neutral.
public struct SpatialParameters: Equatable, Codable, Sendable {
    /// Rotation angles in radians: one for 2D; for 3D, about spatial axes 0, 1 and 2 (applied
    /// as R = R0 * R1 * R2). Missing entries count as 0.
    public var angles: [Double]
    /// Multipliers of the sampling coordinates per spatial axis (one value: every axis; empty: 1).
    public var scales: [Double]
    /// Optional elastic deformation (a smoothed random displacement field).
    public var elastic: ElasticField?

    public init(angles: [Double] = [], scales: [Double] = [], elastic: ElasticField? = nil) {
        self.angles = angles; self.scales = scales; self.elastic = elastic
    }

    public static let identity = SpatialParameters()

    public var isIdentity: Bool {
        angles.allSatisfy { $0 == 0 } && scales.allSatisfy { $0 == 1 } && elastic == nil
    }

    /// M for `dims` spatial axes (tensor axis order): input offset = M * output offset.
    public func matrix(dims: Int) -> [[Double]] {
        var m = Self.eye(dims)
        if dims == 2 {
            m = Self.planeRotation(dims: 2, 0, 1, angles.first ?? 0)
        } else {
            for axis in 0..<dims {
                let angle = axis < angles.count ? angles[axis] : 0
                guard angle != 0 else { continue }
                let plane = (0..<dims).filter { $0 != axis }
                m = Self.multiply(m, Self.planeRotation(dims: dims, plane[0], plane[1], angle))
            }
        }
        // S * R: scaling applied after the rotation, as batchgenerators (rotate, then scale coords).
        for a in 0..<dims {
            let s = scales.isEmpty ? 1 : (scales.count == 1 ? scales[0] : (a < scales.count ? scales[a] : 1))
            for b in 0..<dims { m[a][b] *= s }
        }
        return m
    }

    static func eye(_ n: Int) -> [[Double]] {
        (0..<n).map { i in (0..<n).map { $0 == i ? 1.0 : 0.0 } }
    }

    /// Rotation in the plane of axes (i, j): [[c, s], [-s, c]] on those axes.
    static func planeRotation(dims: Int, _ i: Int, _ j: Int, _ angle: Double) -> [[Double]] {
        var m = eye(dims)
        // Exact values at multiples of 90 degrees so that quarter turns land on voxel centres.
        let quarter = angle / (.pi / 2)
        var c = Foundation.cos(angle), s = Foundation.sin(angle)
        if abs(quarter - quarter.rounded()) < 1e-12 {
            switch ((Int(quarter.rounded()) % 4) + 4) % 4 {
            case 0: (c, s) = (1, 0)
            case 1: (c, s) = (0, 1)
            case 2: (c, s) = (-1, 0)
            default: (c, s) = (0, -1)
            }
        }
        m[i][i] = c; m[i][j] = s
        m[j][i] = -s; m[j][j] = c
        return m
    }

    static func multiply(_ a: [[Double]], _ b: [[Double]]) -> [[Double]] {
        let n = a.count
        return (0..<n).map { i in (0..<n).map { j in (0..<n).reduce(0.0) { $0 + a[i][$1] * b[$1][j] } } }
    }
}
