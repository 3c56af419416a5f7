import Foundation

/// NIfTI's orientation math: the voxel-to-world affine of a header (sform, qform or pixdim),
/// quaternions to rotations and back, and ITK's LPS origin and direction for an affine.
extension NIfTI {
    /// The affine the header describes (4x4 row-major, RAS).
    static func affine(_ h: Header) -> [Double] {
        let spacing = (1...3).map { i -> Double in
            let p = abs(h.pixdim[i])
            return p.isFinite && p > 0 ? p : 1
        }
        if h.sformCode > 0 {
            return h.srow[0] + h.srow[1] + h.srow[2] + [0, 0, 0, 1]
        }
        if h.qformCode > 0 {
            let qfac: Double = h.pixdim[0] < 0 ? -1 : 1
            let r = rotation(fromQuaternion: h.quatern)
            let scale = [spacing[0], spacing[1], qfac * spacing[2]]
            var m = [Double](repeating: 0, count: 16)
            for row in 0..<3 {
                for col in 0..<3 { m[row * 4 + col] = r[row * 3 + col] * scale[col] }
                m[row * 4 + 3] = h.qoffset[row]
            }
            m[15] = 1
            return m
        }
        return [spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0, 0, 0, 0, 1]
    }

    /// The geometry a header gives: spacing from pixdim, origin and direction from its affine.
    static func geometry(_ h: Header, dims: Int) -> ImageGeometry {
        let a = affine(h)
        let (origin, direction) = lpsOriginDirection(a)
        let spacing = (1...3).map { i -> Double in
            let p = abs(h.pixdim[i])
            return p.isFinite && p > 0 ? p : 1
        }
        if dims == 2 {
            return ImageGeometry(spacing: Array(spacing[0..<2]), origin: Array(origin[0..<2]),
                                 direction: [direction[0], direction[1], direction[3], direction[4]], niftiAffine: a,
                                 niftiSformCode: h.sformCode, niftiQformCode: h.qformCode)
        }
        return ImageGeometry(spacing: spacing, origin: origin, direction: direction, niftiAffine: a,
                             niftiSformCode: h.sformCode, niftiQformCode: h.qformCode)
    }

    /// ITK's origin and direction (LPS) for a RAS affine: the first two rows change sign and the
    /// columns of the 3x3 part are normalised.
    static func lpsOriginDirection(_ a: [Double]) -> (origin: [Double], direction: [Double]) {
        let flip: [Double] = [-1, -1, 1]
        let origin = (0..<3).map { flip[$0] * a[$0 * 4 + 3] }
        var direction = [Double](repeating: 0, count: 9)
        for col in 0..<3 {
            let column = (0..<3).map { flip[$0] * a[$0 * 4 + col] }
            let norm = (column.map { $0 * $0 }.reduce(0, +)).squareRoot()
            for row in 0..<3 { direction[row * 3 + col] = norm > 0 ? column[row] / norm : (row == col ? 1 : 0) }
        }
        return (origin, direction)
    }

    /// nifti1's quaternion to rotation matrix (row-major 3x3); a = sqrt(1 - b² - c² - d²).
    static func rotation(fromQuaternion q: [Double]) -> [Double] {
        var (b, c, d) = (q[0], q[1], q[2])
        var a = 1 - (b * b + c * c + d * d)
        if a < 1e-7 {
            let n = (b * b + c * c + d * d).squareRoot()
            if n > 0 { (b, c, d) = (b / n, c / n, d / n) }
            a = 0
        } else {
            a = a.squareRoot()
        }
        return [a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c),
                2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b),
                2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b]
    }

    /// The quaternion (b, c, d) and qfac of a rotation-like 3x3 matrix (row-major), made
    /// orthonormal first (polar decomposition) so sheared matrices get the nearest rotation.
    static func quaternion(fromRotation m: [Double]) -> (b: Double, c: Double, d: Double, qfac: Double) {
        var r = orthonormalized(m)
        var qfac = 1.0
        if determinant3(r) < 0 {
            qfac = -1
            for row in 0..<3 { r[row * 3 + 2] = -r[row * 3 + 2] }
        }
        let (r11, r12, r13) = (r[0], r[1], r[2])
        let (r21, r22, r23) = (r[3], r[4], r[5])
        let (r31, r32, r33) = (r[6], r[7], r[8])
        var a = r11 + r22 + r33 + 1, b: Double, c: Double, d: Double
        if a > 0.5 {
            a = 0.5 * a.squareRoot()
            b = 0.25 * (r32 - r23) / a
            c = 0.25 * (r13 - r31) / a
            d = 0.25 * (r21 - r12) / a
        } else {
            let xd = 1 + r11 - (r22 + r33), yd = 1 + r22 - (r11 + r33), zd = 1 + r33 - (r11 + r22)
            if xd > 1 {
                b = 0.5 * xd.squareRoot()
                c = 0.25 * (r12 + r21) / b
                d = 0.25 * (r13 + r31) / b
                a = 0.25 * (r32 - r23) / b
            } else if yd > 1 {
                c = 0.5 * yd.squareRoot()
                b = 0.25 * (r12 + r21) / c
                d = 0.25 * (r23 + r32) / c
                a = 0.25 * (r13 - r31) / c
            } else {
                d = 0.5 * zd.squareRoot()
                b = 0.25 * (r13 + r31) / d
                c = 0.25 * (r23 + r32) / d
                a = 0.25 * (r21 - r12) / d
            }
            if a < 0 { (b, c, d) = (-b, -c, -d) }
        }
        return (b, c, d, qfac)
    }

    private static func determinant3(_ m: [Double]) -> Double {
        m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) + m[2] * (m[3] * m[7] - m[4] * m[6])
    }

    /// Nearest orthogonal matrix by the iteration X <- (X + X^-T) / 2.
    private static func orthonormalized(_ m: [Double]) -> [Double] {
        var x = m
        for _ in 0..<30 {
            let det = determinant3(x)
            guard abs(det) > 1e-12 else { break }
            // inverse-transpose = cofactor matrix / det
            let cof: [Double] = [
                x[4] * x[8] - x[5] * x[7], -(x[3] * x[8] - x[5] * x[6]), x[3] * x[7] - x[4] * x[6],
                -(x[1] * x[8] - x[2] * x[7]), x[0] * x[8] - x[2] * x[6], -(x[0] * x[7] - x[1] * x[6]),
                x[1] * x[5] - x[2] * x[4], -(x[0] * x[5] - x[2] * x[3]), x[0] * x[4] - x[1] * x[3],
            ]
            var change = 0.0
            for i in 0..<9 {
                let next = 0.5 * (x[i] + cof[i] / det)
                change = max(change, abs(next - x[i]))
                x[i] = next
            }
            if change < 1e-15 { break }
        }
        return x
    }

    /// `niftiAffine` when it still describes the geometry, else the geometry's own affine.
    static func affineForWriting(_ g: ImageGeometry) -> [Double] {
        let n = g.dims
        // The geometry, padded to 3D.
        var spacing = [1.0, 1, 1], origin = [0.0, 0, 0]
        var direction: [Double] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
        for i in 0..<min(n, 3) {
            spacing[i] = g.spacing[i]
            if i < g.origin.count { origin[i] = g.origin[i] }
            for j in 0..<min(n, 3) where i * n + j < g.direction.count { direction[i * 3 + j] = g.direction[i * n + j] }
        }
        if let a = g.niftiAffine, a.count == 16 {
            let (o, d) = lpsOriginDirection(a)
            var consistent = true
            for i in 0..<min(n, 3) {
                let norm = (0..<3).map { a[$0 * 4 + i] * a[$0 * 4 + i] }.reduce(0, +).squareRoot()
                if abs(norm - spacing[i]) > 1e-4 * max(1, spacing[i]) { consistent = false }
                if abs(o[i] - origin[i]) > 1e-4 * max(1, abs(origin[i])) { consistent = false }
                for j in 0..<min(n, 3) where abs(d[i * 3 + j] - direction[i * 3 + j]) > 1e-4 { consistent = false }
            }
            if consistent { return a }
        }
        let flip: [Double] = [-1, -1, 1]
        var a = [Double](repeating: 0, count: 16)
        for row in 0..<3 {
            for col in 0..<3 { a[row * 4 + col] = flip[row] * direction[row * 3 + col] * spacing[col] }
            a[row * 4 + 3] = flip[row] * origin[row]
        }
        a[15] = 1
        return a
    }
}
