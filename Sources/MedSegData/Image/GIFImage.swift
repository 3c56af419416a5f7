import CImageCodecs
import Foundation

/// The first frame of a GIF, read with giflib. DRIVE ships its vessel annotations and
/// field-of-view masks as GIFs.
///
/// The result is 2D ([width, height], row 0 at the top, unit spacing) on the GIF's logical
/// screen (outside the frame: the background colour): the raw indices (uint8) with
/// `palette: .indices`, otherwise the colours — gray (1 channel) when every colour used is gray,
/// else RGB (3 channels, `.rgb8`).
public enum GIFImage {
    public static func read(_ url: URL, palette: PaletteMode = .rgb) throws -> MedicalImage {
        var gif = mc_gif()
        guard mc_gif_read(url.path, &gif) == 0 else { throw DataError(file: url, codecError()) }
        defer { mc_free(gif.indices) }
        let w = Int(gif.width), h = Int(gif.height), n = w * h
        let indices = Array(UnsafeBufferPointer(start: gif.indices, count: n))
        if palette == .indices {
            return MedicalImage(size: [w, h], voxels: indices.map { Float($0) }, pixelType: .uint8)
        }
        let entries = Int(gif.palette_entries)
        let table = withUnsafeBytes(of: gif.palette) { Array($0.prefix(3 * entries)) }
        func color(_ index: UInt8, _ c: Int) -> Float { Int(index) < entries ? Float(table[3 * Int(index) + c]) : 0 }
        let gray = Set(indices).allSatisfy { color($0, 0) == color($0, 1) && color($0, 0) == color($0, 2) }
        if gray {
            return MedicalImage(size: [w, h], voxels: indices.map { color($0, 0) }, pixelType: .uint8)
        }
        var voxels = [Float](repeating: 0, count: 3 * n)
        for p in 0..<n {
            for c in 0..<3 { voxels[c * n + p] = color(indices[p], c) }
        }
        return MedicalImage(size: [w, h], channels: 3, voxels: voxels, pixelType: .rgb8)
    }
}
