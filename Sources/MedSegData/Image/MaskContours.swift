import Foundation

/// The boundaries of a 2D mask as closed polygons, as an RT Structure Set holds a region slice by
/// slice: marching squares at level 0.5 between pixel centres, so that a polygon runs halfway
/// between the pixels inside and those outside. Diagonal neighbours are separate regions (the
/// mask's 4-connectivity), so the pixel centres inside an odd number of polygons (even-odd rule:
/// holes are polygons of their own) are exactly the mask's pixels. Vertices are in pixel index
/// coordinates (x, y), each ring closed implicitly (last vertex to first), collinear runs merged.
public enum MaskContours {
    public typealias Point = SIMD2<Double>

    /// The rings of the pixels where `mask[y * width + x]` is set, outer boundaries counterclockwise and
    /// holes clockwise (in x-right, y-down pixel coordinates, as the signed area says).
    public static func polygons(mask: [Bool], width: Int, height: Int) -> [[Point]] {
        precondition(mask.count == width * height, "mask of \(mask.count) pixels is not \(width) x \(height)")
        // One pixel of background around the mask closes every ring; cells lie between pixel centres
        // of the padded grid, cell (i, j) with corners (i, j), (i+1, j), (i+1, j+1), (i, j+1).
        let (w, h) = (width + 2, height + 2)
        func on(_ x: Int, _ y: Int) -> Bool { x >= 1 && y >= 1 && x <= width && y <= height && mask[(y - 1) * width + (x - 1)] }
        // Edge midpoints: the horizontal edge from corner (i, j) to (i+1, j) and the vertical one to (i, j+1).
        func horizontal(_ i: Int, _ j: Int) -> Int { (j * w + i) * 2 }
        func vertical(_ i: Int, _ j: Int) -> Int { (j * w + i) * 2 + 1 }
        func point(_ key: Int) -> Point {
            let cell = key / 2, i = cell % w, j = cell / w
            // Back to the mask's own pixel coordinates (the padding shifts by one).
            return key % 2 == 0 ? Point(Double(i) + 0.5 - 1, Double(j) - 1) : Point(Double(i) - 1, Double(j) + 0.5 - 1)
        }
        var next: [Int: Int] = [:]
        for j in 0..<(h - 1) {
            for i in 0..<(w - 1) {
                let corners = [(i, j), (i + 1, j), (i + 1, j + 1), (i, j + 1)]
                let set = corners.map { on($0.0, $0.1) }
                let count = set.filter { $0 }.count
                guard count > 0, count < 4 else { continue }
                let top = horizontal(i, j), right = vertical(i + 1, j), bottom = horizontal(i, j + 1), left = vertical(i, j)
                // The edges beside each corner, in corner order a, b, c, d.
                let around = [(left, top), (top, right), (right, bottom), (bottom, left)]
                var segments: [(Int, Int, Int)] = []  // from edge, to edge, a corner on the mask's side
                if set[0] && set[2] && !set[1] && !set[3] || set[1] && set[3] && !set[0] && !set[2] {
                    // Diagonal pixels: each cut off on its own.
                    for c in 0..<4 where set[c] { segments.append((around[c].0, around[c].1, c)) }
                } else if count == 1 || count == 3 {
                    let odd = set.firstIndex(of: count == 1)!
                    let inside = count == 1 ? odd : (odd + 2) % 4
                    segments.append((around[odd].0, around[odd].1, inside))
                } else {
                    // Two neighbouring corners: the line between the two other edges.
                    let first = (0..<4).first { set[$0] && set[($0 + 1) % 4] }!
                    let edges = [top, right, bottom, left]
                    // Corners first, first + 1 share edge `first` (a-b share top, ...); the cut crosses the other two sides.
                    segments.append((edges[(first + 1) % 4], edges[(first + 3) % 4], first))
                }
                for (from, to, inside) in segments {
                    let p = point(from), q = point(to)
                    let f = Point(Double(corners[inside].0) - 1, Double(corners[inside].1) - 1)
                    let cross = (q.x - p.x) * (f.y - p.y) - (q.y - p.y) * (f.x - p.x)
                    // The mask on the right of each step (y down): rings around regions run one way, around holes the other.
                    if cross < 0 { next[from] = to } else { next[to] = from }
                }
            }
        }
        var rings: [[Point]] = []
        var unvisited = next
        while let start = unvisited.keys.min() {
            var ring: [Point] = []
            var key = start
            while let following = unvisited.removeValue(forKey: key) {
                ring.append(point(key))
                key = following
            }
            rings.append(merged(ring))
        }
        return rings
    }

    /// The ring without the vertices that lie on a straight line between their neighbours.
    static func merged(_ ring: [Point]) -> [Point] {
        guard ring.count > 3 else { return ring }
        return ring.indices.compactMap { k in
            let a = ring[(k + ring.count - 1) % ring.count], b = ring[k], c = ring[(k + 1) % ring.count]
            let cross = (b.x - a.x) * (c.y - b.y) - (b.y - a.y) * (c.x - b.x)
            return abs(cross) < 1e-12 ? nil : b
        }
    }

    /// Twice the signed area of a ring (positive counterclockwise in x-right, y-up terms).
    public static func signedArea(_ ring: [Point]) -> Double {
        ring.indices.reduce(0) { sum, k in
            let a = ring[k], b = ring[(k + 1) % ring.count]
            return sum + a.x * b.y - b.x * a.y
        }
    }

    /// The pixels whose centres lie inside an odd number of `rings` (even-odd rule), as a reader
    /// of the contours fills them.
    public static func rasterize(_ rings: [[Point]], width: Int, height: Int) -> [Bool] {
        var mask = [Bool](repeating: false, count: width * height)
        for y in 0..<height {
            let py = Double(y)
            for ring in rings {
                // Crossings of the scanline through the pixel centres, toggling every pixel centre to their right.
                for k in ring.indices {
                    let a = ring[k], b = ring[(k + 1) % ring.count]
                    guard (a.y > py) != (b.y > py) else { continue }
                    let x = a.x + (py - a.y) / (b.y - a.y) * (b.x - a.x)
                    let first = max(0, Int((x).rounded(.up)))
                    if first < width { for px in first..<width { mask[y * width + px].toggle() } }
                }
            }
        }
        return mask
    }
}
