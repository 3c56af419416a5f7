/// The feature-map size of the nnU-Net U-Nets (dynamic_network_architectures'
/// `compute_conv_feature_map_size`): the voxels of every convolution's output, times its
/// channels, summed over the network. nnU-Net's planner grows the patch while this stays within
/// its GPU memory budget, so each network answers for its own blocks.
extension PlainConvUNet.Config {
    /// Plain stages of `nConvPerStage` convolutions, then the decoder.
    public func featureMapSize(patch: [Int]) -> Int64 {
        let sizes = ConvFeatureMaps.stageSizes(patch, strides: strides)
        var total: Int64 = 0
        for s in featuresPerStage.indices { total += Int64(nConvPerStage) * Int64(featuresPerStage[s]) * ConvFeatureMaps.voxels(sizes[s]) }
        return total + ConvFeatureMaps.decoder(sizes, features: featuresPerStage, convs: nConvPerStageDecoder, classes: classes)
    }
}

extension ResidualEncoderUNet.Config {
    /// The stem (one convolution to the first stage's features), then BasicBlockD residual blocks:
    /// two convolutions each, plus the skip's 1x1 convolution where a block changes size or channels.
    public func featureMapSize(patch: [Int]) -> Int64 {
        let features = plain.featuresPerStage
        let sizes = ConvFeatureMaps.stageSizes(patch, strides: plain.strides)
        var total = Int64(features[0]) * ConvFeatureMaps.voxels(patch)
        var input = patch
        for s in features.indices {
            let f = Int64(features[s]), v = ConvFeatureMaps.voxels(sizes[s])
            let inChannels = s == 0 ? features[0] : features[s - 1]
            total += 2 * f * v
            if inChannels != features[s] || input != sizes[s] { total += f * v }
            total += Int64(blocksPerStage[s] - 1) * 2 * f * v
            input = sizes[s]
        }
        return total + ConvFeatureMaps.decoder(sizes, features: features, convs: plain.nConvPerStageDecoder, classes: plain.classes)
    }
}

/// What the two U-Nets' counts share: stage sizes and the decoder.
enum ConvFeatureMaps {
    static func voxels(_ size: [Int]) -> Int64 { size.reduce(Int64(1)) { $0 * Int64($1) } }

    /// Sizes of the encoder stages' outputs.
    static func stageSizes(_ patch: [Int], strides: [[Int]]) -> [[Int]] {
        var size = patch
        return strides.map { stride in
            size = zip(size, stride).map { $0 / $1 }
            return size
        }
    }

    /// Per decoder stage: its convolutions and the transposed convolution at the skip's size; the
    /// segmentation output at full resolution.
    static func decoder(_ sizes: [[Int]], features: [Int], convs: Int, classes: Int) -> Int64 {
        let n = features.count
        var total: Int64 = 0
        for s in 0..<(n - 1) {
            let f = Int64(features[n - 2 - s]), v = voxels(sizes[n - 2 - s])
            total += Int64(convs) * f * v + f * v
            if s == n - 2 { total += Int64(classes) * v }
        }
        return total
    }
}
