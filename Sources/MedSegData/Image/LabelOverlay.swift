import Foundation

/// A colour overlay of a 2D label map on its image (label 1 red, 2 green, 3 blue, ...).
public enum LabelOverlay {
    static let colors: [(Float, Float, Float)] = [(255, 0, 0), (0, 200, 0), (0, 90, 255), (255, 200, 0), (200, 0, 255), (0, 220, 220)]

    public static func make(image: MedicalImage, label: MedicalImage) -> MedicalImage {
        let n = label.voxelCount
        let gray = image.channels == 1 ? image.voxels : Array(image.voxels[0..<n])
        let lo = gray.min() ?? 0, hi = gray.max() ?? 1
        let scale = hi > lo ? 255 / (hi - lo) : 1
        var rgb = [Float](repeating: 0, count: 3 * n)
        for i in 0..<n {
            let g = (gray[i] - lo) * scale
            let l = Int(label.voxels[i])
            for c in 0..<3 {
                var v = g
                if l > 0 {
                    let color = colors[(l - 1) % colors.count]
                    v = 0.55 * g + 0.45 * [color.0, color.1, color.2][c]
                }
                rgb[c * n + i] = v.rounded()
            }
        }
        return MedicalImage(size: label.size, channels: 3, voxels: rgb, pixelType: .rgb8, geometry: label.geometry)
    }
}
