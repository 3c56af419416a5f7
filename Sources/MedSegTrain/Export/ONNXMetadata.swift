import Foundation
import MedSegData

/// What an exported network needs beside its graph to be used as MedSeg uses it, written into the
/// ONNX model's `metadata_props` (string keys, values JSON text): how to prepare an image (target
/// spacing, normalization per channel and its statistics), the sliding window (patch, step,
/// mirroring axes) and what the outputs mean (labels, or regions and the order they are painted).
/// Spatial values are in array order ((z,) y, x), as nnU-Net's plans give them.
public struct ONNXMetadata: Equatable, Sendable {
    public var entries: [(key: String, value: String)]

    public static func == (a: Self, b: Self) -> Bool { a.entries.elementsEqual(b.entries) { $0 == $1 } }

    /// The metadata of `inference`'s first (only) network: its checkpoint's spec, its plan's
    /// preprocessing where it has one, and the sliding-window settings it predicts with.
    public init(_ inference: CaseInference, version: String) {
        let predictor = inference.predictors[0]
        let spec = predictor.spec
        var entries: [(String, String)] = [
            ("medseg_version", version),
            ("network", spec.network.name),
            ("dims", String(spec.dims)),
            ("input_channels", String(spec.inChannels)),
            ("patch_size", Self.json(spec.patchSize)),
            ("step_size", Self.json(predictor.windowSettings.stepSize)),
            ("mirror_axes", Self.json(predictor.mirror ? predictor.mirrorAxes ?? Array(0..<spec.dims) : [])),
        ]
        if let configuration = spec.configuration { entries.append(("configuration", configuration)) }
        if let stage = inference.previousStageConfiguration {
            // A cascade stage: after the image's channels, the previous stage's segmentation one-hot
            // (a channel per foreground label), brought to the network's grid as the plans resample segmentations.
            entries.append(("previous_stage", stage))
            entries.append(("image_channels", String(inference.imageChannels)))
            entries.append(("previous_stage_labels", Self.json(Array(1...max(1, spec.foregroundClasses)))))
        }
        let channels = 0..<inference.imageChannels
        if let p = inference.preprocessor {
            // A 2d configuration of volumes plans the in-plane spacing only.
            entries.append(("target_spacing", Self.json(p.targetSpacing)))
            let schemes = channels.map { p.normalization.isEmpty ? .none : p.normalization[min($0, p.normalization.count - 1)] }
            entries.append(("normalization", Self.json(schemes.map(\.rawValue))))
            entries.append(("use_mask_for_norm", Self.json(channels.map { p.useMaskForNorm[min($0, p.useMaskForNorm.count - 1)] })))
            let statistics = channels.compactMap { p.fingerprint.foregroundIntensityPropertiesPerChannel[String($0)] }
            if statistics.count == channels.count { entries.append(("intensity_statistics", Self.json(statistics))) }
        } else {
            entries.append(("normalization", Self.json(channels.map { _ in spec.normalization })))
            if let statistics = spec.intensityStatistics {
                // The names nnU-Net's fingerprint gives them.
                let named = statistics.map { ["mean": $0.mean, "std": $0.std, "percentile_00_5": $0.percentile00_5, "percentile_99_5": $0.percentile99_5] }
                entries.append(("intensity_statistics", Self.json(named)))
            }
        }
        entries.append(("output_activation", spec.sigmoidOutputs ? "sigmoid" : "softmax"))
        if let targets = spec.labelTargets, targets.usesRegions {
            entries.append(("regions", Self.json(targets.regions)))
            entries.append(("regions_class_order", Self.json(targets.regionsClassOrder)))
        } else {
            // Output channel k is label labels[k] (background first); a binary network's one sigmoid is labels[1].
            entries.append(("labels", Self.json(spec.labelTargets?.labelValues ?? spec.labels)))
        }
        if let ignore = spec.labelTargets?.ignoreLabel { entries.append(("ignore_label", String(ignore))) }
        self.entries = entries
    }

    public init(entries: [(key: String, value: String)]) { self.entries = entries }

    public subscript(key: String) -> String? { entries.first { $0.key == key }?.value }

    static func json<T: Encodable>(_ value: T) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: (try? encoder.encode(value)) ?? Data("null".utf8), as: UTF8.self)
    }
}
