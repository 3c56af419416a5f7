import Foundation

/// Normalization during preprocessing. The schemes themselves are `IntensityNormalization`
/// (CaseReader's: z-score, CT, RGB, none), reused here; this adds nnU-Net's `use_mask_for_norm`
/// (z-score statistics over the non-zero mask only, zero outside it) and the planner's rule for
/// when to use it.
public enum PreprocessingNormalization {
    /// nnU-Net's `determine_whether_to_use_mask_for_norm`: only z-score channels, and only when
    /// cropping to the non-zero region removed a lot (median relative size after cropping < 3/4).
    public static func useMaskForNorm(_ schemes: [IntensityNormalization], medianRelativeSizeAfterCropping: Double) -> [Bool] {
        schemes.map { $0 == .zscore && medianRelativeSizeAfterCropping < 0.75 }
    }

    /// Normalizes every channel of `image` (channel-major voxels) in place.
    /// - Parameters:
    ///   - schemes: one per channel (the last one repeats when there are fewer).
    ///   - statistics: the fingerprint's foreground statistics per channel (needed for CT).
    ///   - useMask: per channel, z-score over `mask` only (nnU-Net's `use_mask_for_norm`).
    ///   - mask: the voxels inside the non-zero mask (`Cropping.nonZeroMask`), required where `useMask` is true.
    public static func normalize(_ image: inout MedicalImage, schemes: [IntensityNormalization], statistics: [IntensityStatistics]?,
                                 useMask: [Bool], mask: [Bool]?, file: URL) throws {
        let n = image.voxelCount
        for c in 0..<image.channels {
            let scheme = schemes.isEmpty ? .none : schemes[min(c, schemes.count - 1)]
            let values = Array(image.voxels[(c * n)..<((c + 1) * n)])
            let masked = c < useMask.count && useMask[c] && scheme == .zscore
            let out: [Float]
            if masked, let mask {
                out = maskedZScore(values, mask: mask)
            } else {
                let reader = CaseReader(dataset: nil, normalization: scheme, ctStatistics: statistics)
                out = try reader.normalize(values, channel: c, file: file)
            }
            image.voxels.replaceSubrange((c * n)..<((c + 1) * n), with: out)
        }
        image.pixelType = .float32
    }

    /// (x - mean) / max(std, 1e-8) with mean and std over the voxels inside `mask`; 0 outside
    /// (nnU-Net's ZScoreNormalization with `use_mask_for_norm`).
    public static func maskedZScore(_ v: [Float], mask: [Bool]) -> [Float] {
        var sum = 0.0, count = 0
        for i in v.indices where mask[i] { sum += Double(v[i]); count += 1 }
        guard count > 0 else { return [Float](repeating: 0, count: v.count) }
        let mean = sum / Double(count)
        var sq = 0.0
        for i in v.indices where mask[i] { let d = Double(v[i]) - mean; sq += d * d }
        let std = max((sq / Double(count)).squareRoot(), 1e-8)
        return v.indices.map { mask[$0] ? Float((Double(v[$0]) - mean) / std) : 0 }
    }
}
