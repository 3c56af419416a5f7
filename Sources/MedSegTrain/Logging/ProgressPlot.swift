/// Renders the training curves (losses on the left axis, Dice on a fixed 0-1 right axis) into an
/// RGB raster for `progress.png`, in the spirit of nnU-Net's progress plot.
public struct ProgressPlot {
    public struct Series {
        public var name: String
        public var color: (UInt8, UInt8, UInt8)
        /// (epoch, value) points; NaN values are skipped.
        public var points: [(Double, Double)]
        /// Plotted against the 0-1 axis on the right.
        public var unitRange: Bool
        public init(name: String, color: (UInt8, UInt8, UInt8), points: [(Double, Double)], unitRange: Bool = false) {
            self.name = name; self.color = color; self.points = points; self.unitRange = unitRange
        }
    }

    public var width = 800
    public var height = 450
    public var series: [Series]

    public init(series: [Series]) { self.series = series }

    /// Row-major RGB bytes, `width * height * 3`.
    public func render() -> [UInt8] {
        var canvas = Canvas(width: width, height: height)
        let left = 60, right = width - 50, top = 20, bottom = height - 40
        let epochs = series.flatMap { $0.points.map(\.0) }
        let maxEpoch = max(1, epochs.max() ?? 1)
        let lossValues = series.filter { !$0.unitRange }.flatMap { $0.points.map(\.1) }.filter(\.isFinite)
        var lossMin = lossValues.min() ?? 0, lossMax = lossValues.max() ?? 1
        if lossMax - lossMin < 1e-9 { lossMin -= 0.5; lossMax += 0.5 }

        func x(_ epoch: Double) -> Int { left + Int((epoch / maxEpoch) * Double(right - left)) }
        func y(_ value: Double, unit: Bool) -> Int {
            let (lo, hi) = unit ? (0.0, 1.0) : (lossMin, lossMax)
            return bottom - Int(((value - lo) / (hi - lo)) * Double(bottom - top))
        }

        // Frame, grid and tick labels.
        let axis: (UInt8, UInt8, UInt8) = (60, 60, 60), grid: (UInt8, UInt8, UInt8) = (225, 225, 225)
        for i in 0...4 {
            let gy = top + i * (bottom - top) / 4
            canvas.line(left, gy, right, gy, grid)
            let lossTick = lossMax - Double(i) * (lossMax - lossMin) / 4
            canvas.text(format(lossTick), x: 4, y: gy - 3, axis)
            canvas.text(format(1 - Double(i) / 4), x: right + 6, y: gy - 3, axis)
        }
        canvas.rect(left, top, right, bottom, axis)
        canvas.text("0", x: left - 2, y: bottom + 8, axis)
        canvas.text(String(Int(maxEpoch)), x: right - 10, y: bottom + 8, axis)
        canvas.text("epoch", x: (left + right) / 2 - 12, y: bottom + 20, axis)
        canvas.text("loss", x: 4, y: top - 14 + 4, axis)
        canvas.text("dice", x: right + 6, y: top - 14 + 4, axis)

        for s in series {
            var previous: (Int, Int)? = nil
            for (e, v) in s.points where v.isFinite {
                let p = (x(e), y(v, unit: s.unitRange))
                if let q = previous { canvas.line(q.0, q.1, p.0, p.1, s.color, thick: true) } else { canvas.dot(p.0, p.1, s.color) }
                previous = p
            }
        }
        // Legend.
        for (i, s) in series.enumerated() {
            let ly = top + 8 + i * 12
            canvas.line(left + 10, ly + 3, left + 28, ly + 3, s.color, thick: true)
            canvas.text(s.name, x: left + 32, y: ly, axis)
        }
        return canvas.pixels
    }

    private func format(_ v: Double) -> String {
        let magnitude = abs(v)
        if magnitude >= 100 { return String(Int(v.rounded())) }
        let decimals = magnitude >= 10 ? 1 : magnitude >= 1 ? 2 : 3
        var s = String(Int((abs(v) * pow10(decimals)).rounded()))
        while s.count <= decimals { s = "0" + s }
        s.insert(".", at: s.index(s.endIndex, offsetBy: -decimals))
        return (v < 0 ? "-" : "") + s
    }

    private func pow10(_ n: Int) -> Double { (0..<n).reduce(1.0) { r, _ in r * 10 } }
}

/// A white RGB canvas with lines and a 5x7 bitmap font.
struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]

    init(width: Int, height: Int) {
        self.width = width; self.height = height
        pixels = [UInt8](repeating: 255, count: width * height * 3)
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let i = (y * width + x) * 3
        pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }

    mutating func dot(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8)) {
        for dy in -1...1 { for dx in -1...1 { set(x + dx, y + dy, c) } }
    }

    /// Bresenham's line.
    mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8), thick: Bool = false) {
        var x = x0, y = y0
        let dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        while true {
            set(x, y, c)
            if thick { set(x, y + 1, c); set(x + 1, y, c) }
            if x == x1 && y == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }

    mutating func rect(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8)) {
        line(x0, y0, x1, y0, c); line(x1, y0, x1, y1, c); line(x1, y1, x0, y1, c); line(x0, y1, x0, y0, c)
    }

    mutating func text(_ s: String, x: Int, y: Int, _ c: (UInt8, UInt8, UInt8)) {
        var cx = x
        for ch in s.lowercased() {
            if let rows = Canvas.glyphs[ch] {
                for (r, bits) in rows.enumerated() {
                    for col in 0..<5 where bits & (1 << (4 - col)) != 0 { set(cx + col, y + r, c) }
                }
            }
            cx += 6
        }
    }

    /// 5x7 glyphs, one row per byte, high bit on the left.
    static let glyphs: [Character: [UInt8]] = [
        "0": [14, 17, 19, 21, 25, 17, 14], "1": [4, 12, 4, 4, 4, 4, 14], "2": [14, 17, 1, 2, 4, 8, 31],
        "3": [30, 1, 1, 14, 1, 1, 30], "4": [2, 6, 10, 18, 31, 2, 2], "5": [31, 16, 30, 1, 1, 17, 14],
        "6": [6, 8, 16, 30, 17, 17, 14], "7": [31, 1, 2, 4, 8, 8, 8], "8": [14, 17, 17, 14, 17, 17, 14],
        "9": [14, 17, 17, 15, 1, 2, 12], ".": [0, 0, 0, 0, 0, 12, 12], "-": [0, 0, 0, 31, 0, 0, 0],
        " ": [0, 0, 0, 0, 0, 0, 0], "/": [1, 1, 2, 4, 8, 16, 16], "(": [2, 4, 8, 8, 8, 4, 2], ")": [8, 4, 2, 2, 2, 4, 8],
        "a": [0, 0, 14, 1, 15, 17, 15], "b": [16, 16, 30, 17, 17, 17, 30], "c": [0, 0, 14, 16, 16, 17, 14],
        "d": [1, 1, 15, 17, 17, 17, 15], "e": [0, 0, 14, 17, 31, 16, 14], "f": [6, 9, 8, 28, 8, 8, 8],
        "g": [0, 15, 17, 17, 15, 1, 14], "h": [16, 16, 22, 25, 17, 17, 17], "i": [4, 0, 12, 4, 4, 4, 14],
        "k": [16, 16, 18, 20, 24, 20, 18], "l": [12, 4, 4, 4, 4, 4, 14], "m": [0, 0, 26, 21, 21, 17, 17],
        "n": [0, 0, 22, 25, 17, 17, 17], "o": [0, 0, 14, 17, 17, 17, 14], "p": [0, 0, 30, 17, 30, 16, 16],
        "r": [0, 0, 22, 25, 16, 16, 16], "s": [0, 0, 14, 16, 14, 1, 30], "t": [8, 8, 28, 8, 8, 9, 6],
        "u": [0, 0, 17, 17, 17, 19, 13], "v": [0, 0, 17, 17, 17, 10, 4], "w": [0, 0, 17, 17, 21, 21, 10],
        "x": [0, 0, 17, 10, 4, 10, 17], "y": [0, 0, 17, 17, 15, 1, 14], "z": [0, 0, 31, 2, 4, 8, 31],
        "_": [0, 0, 0, 0, 0, 0, 31],
    ]
}
