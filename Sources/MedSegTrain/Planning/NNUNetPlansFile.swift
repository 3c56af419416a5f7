import Foundation
import MedSegData

/// nnU-Net v2's own plans files (`nnUNet_preprocessed/DATASET/nnUNetPlans.json`, a trained
/// model's `plans.json`) read as MedSeg's plans: the current layout, whose configurations keep
/// their network under `architecture.arch_kwargs` and may inherit from one another
/// (`inherits_from`), and the layout before nnU-Net 2.4 (`UNet_class_name`,
/// `pool_op_kernel_sizes`, ...), converted as nnU-Net's ConfigurationManager converts it.
/// Anything MedSeg's networks or preprocessing would not reproduce exactly (another norm or
/// activation, dropout, a forced resampling axis, transposed axes, a custom class) is refused,
/// naming the key.
enum NNUNetPlansFile {
    /// nil where `data` is not an nnU-Net plans file (MedSeg's own layout, read as it is).
    static func plans(from data: Data, source: String) throws -> ExperimentPlans? {
        guard let root = (try? JSONDecoder().decode(JSONValue.self, from: data))?.any as? [String: Any],
              let configurations = root["configurations"] as? [String: Any],
              configurations.values.contains(where: { entry in
                  guard let c = entry as? [String: Any] else { return false }
                  return c["architecture"] != nil || c["UNet_class_name"] != nil || c["inherits_from"] != nil
              }) else { return nil }
        let file = Reader(source: source)
        if let transpose = root["transpose_forward"] {
            let axes = try file.ints(transpose, "transpose_forward")
            guard axes == Array(0..<axes.count) else {
                throw file.fail("transpose_forward", "is \(axes): these plans reorder the image axes, which MedSeg keeps in their order (plan the source data set with its coarsest axis first)")
            }
        }
        guard let name = root["dataset_name"] as? String else { throw file.fail("dataset_name", "is missing") }
        guard configurations.count <= maxConfigurations else {
            throw file.fail("configurations", "holds \(configurations.count) configurations; nnU-Net plans a handful (at most \(maxConfigurations) read)")
        }
        var planned: [String: PlannedConfiguration] = [:]
        for key in configurations.keys.sorted() {
            let resolved = try resolve(key, in: configurations, file: file, visited: [])
            planned[key] = try configuration(resolved, file: file.within("configurations.\(key)"))
        }
        struct Intensities: Decodable { var foreground_intensity_properties_per_channel: [String: DatasetFingerprint.IntensityProperties]? }
        let intensities: Intensities
        do { intensities = try JSONDecoder().decode(Intensities.self, from: data) } catch {
            throw file.fail("foreground_intensity_properties_per_channel", "needs mean, median, std, min, max, percentile_00_5 and percentile_99_5 per channel (\(error))")
        }
        return ExperimentPlans(dataset_name: name, plans_name: root["plans_name"] as? String, configurations: planned,
                               foreground_intensity_properties_per_channel: intensities.foreground_intensity_properties_per_channel)
    }

    /// Bounds on what a plans file may ask to resolve: nnU-Net writes a few configurations, each
    /// inheriting from at most one or two others.
    static let maxConfigurations = 256
    static let maxInheritance = 16

    /// A configuration with what it inherits (the parent's keys, overridden by its own).
    private static func resolve(_ name: String, in all: [String: Any], file: Reader, visited: [String]) throws -> [String: Any] {
        guard let own = all[name] as? [String: Any] else { throw file.fail("configurations.\(name)", "is not an object") }
        guard let parent = own["inherits_from"] else { return own }
        guard let parentName = parent as? String, all[parentName] != nil else {
            throw file.fail("configurations.\(name).inherits_from", "names '\(parent)', which is not a configuration of these plans")
        }
        guard !visited.contains(parentName) else {
            throw file.fail("configurations.\(name).inherits_from", "is circular: \((visited + [name, parentName]).joined(separator: " -> "))")
        }
        guard visited.count < maxInheritance else {
            throw file.fail("configurations.\(name).inherits_from", "chains more than \(maxInheritance) configurations; nnU-Net's inherit one or two")
        }
        var merged = try resolve(parentName, in: all, file: file, visited: visited + [name])
        for (key, value) in own where key != "inherits_from" { merged[key] = value }
        return merged
    }

    static let plainClass = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
    /// Where current dynamic_network_architectures keeps it (older releases: `.residual_unet.`; both are read).
    static let residualClass = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"

    private static func configuration(_ c: [String: Any], file: Reader) throws -> PlannedConfiguration {
        let spacing = try file.doubles(c["spacing"], "spacing")
        let patch = try file.ints(c["patch_size"], "patch_size")
        let dims = patch.count
        if let preprocessor = c["preprocessor_name"] as? String, preprocessor != "DefaultPreprocessor" {
            throw file.fail("preprocessor_name", "is '\(preprocessor)'; MedSeg preprocesses as nnU-Net's DefaultPreprocessor")
        }
        let arch = try architecture(c, dims: dims, file: file)
        let className = arch.className
        let kwargs = arch.kwargs
        let a = file.within("architecture.arch_kwargs")
        let isResidual: Bool
        let fromLibrary = className.hasPrefix("dynamic_network_architectures.architectures.")
        if fromLibrary && className.hasSuffix(".PlainConvUNet") {
            isResidual = false
        } else if fromLibrary && className.hasSuffix(".ResidualEncoderUNet") {
            isResidual = true
        } else {
            throw file.fail("architecture.network_class_name", "is '\(className)'; MedSeg builds nnU-Net's PlainConvUNet and ResidualEncoderUNet")
        }
        let features = try a.ints(kwargs["features_per_stage"], "features_per_stage")
        let kernels = try a.intLists(kwargs["kernel_sizes"], "kernel_sizes")
        let strides = try a.intLists(kwargs["strides"], "strides")
        if let stages = kwargs["n_stages"], try a.int(stages, "n_stages") != features.count {
            throw a.fail("n_stages", "is \(stages) but features_per_stage has \(features.count) stages")
        }
        let encoder = try a.ints(kwargs[isResidual ? "n_blocks_per_stage" : "n_conv_per_stage"], isResidual ? "n_blocks_per_stage" : "n_conv_per_stage")
        let decoder = try a.ints(kwargs["n_conv_per_stage_decoder"], "n_conv_per_stage_decoder")
        if !isResidual, let odd = (encoder + decoder).first(where: { $0 != 2 }) {
            throw a.fail(encoder.contains(odd) ? "n_conv_per_stage" : "n_conv_per_stage_decoder",
                         "has \(odd); MedSeg's plain U-Net has nnU-Net's two convolutions per stage")
        }
        if isResidual, Set(decoder).count > 1 {
            throw a.fail("n_conv_per_stage_decoder", "is \(decoder); MedSeg's residual encoder U-Net has one count for every decoder stage")
        }
        try checkLayers(kwargs, dims: dims, file: a)

        var plan = PlannedConfiguration(
            spacing: spacing, patch_size: patch, batch_size: try file.int(c["batch_size"], "batch_size"),
            median_image_size_in_voxels: try c["median_image_size_in_voxels"].map { try file.doubles($0, "median_image_size_in_voxels") } ?? patch.map(Double.init),
            features_per_stage: features, kernel_sizes: kernels, strides: strides,
            normalization_schemes: try file.strings(c["normalization_schemes"], "normalization_schemes"))
        plan.next_stage = c["next_stage"] as? String ?? (c["next_stage"] as? [String])?.first
        plan.previous_stage = c["previous_stage"] as? String
        plan.network_class_name = className
        plan.n_blocks_per_stage = encoder
        plan.n_conv_per_stage_decoder = decoder
        plan.batch_dice = c["batch_dice"] as? Bool
        plan.use_mask_for_norm = try c["use_mask_for_norm"].map { try file.bools($0, "use_mask_for_norm") }
        plan.resampling_fn_data_kwargs = try resampling(c, "data", file: file)
        plan.resampling_fn_seg_kwargs = try resampling(c, "seg", file: file)
        plan.resampling_fn_probabilities_kwargs = try resampling(c, "probabilities", file: file)
        return plan
    }

    /// The network class and its keyword arguments; the layout before nnU-Net 2.4 converted.
    private static func architecture(_ c: [String: Any], dims: Int, file: Reader) throws -> (className: String, kwargs: [String: Any]) {
        if let arch = c["architecture"] as? [String: Any] {
            guard let name = arch["network_class_name"] as? String else { throw file.fail("architecture.network_class_name", "is missing") }
            guard let kwargs = arch["arch_kwargs"] as? [String: Any] else { throw file.fail("architecture.arch_kwargs", "is missing") }
            return (name, kwargs)
        }
        guard let old = c["UNet_class_name"] as? String else { throw file.fail("architecture", "is missing (and no UNet_class_name of older plans)") }
        let className: String
        switch old {
        case "PlainConvUNet": className = plainClass
        case "ResidualEncoderUNet": className = residualClass
        default: throw file.fail("UNet_class_name", "is '\(old)'; MedSeg builds PlainConvUNet and ResidualEncoderUNet")
        }
        let kernels = try file.intLists(c["conv_kernel_sizes"], "conv_kernel_sizes")
        let base = try file.int(c["UNet_base_num_features"], "UNet_base_num_features")
        let cap = try file.int(c["unet_max_num_features"], "unet_max_num_features")
        let kwargs: [String: Any] = [
            "features_per_stage": (0..<kernels.count).map { Double(min(base << $0, cap)) },
            "kernel_sizes": c["conv_kernel_sizes"] as Any, "strides": c["pool_op_kernel_sizes"] as Any,
            className == plainClass ? "n_conv_per_stage" : "n_blocks_per_stage": c["n_conv_per_stage_encoder"] as Any,
            "n_conv_per_stage_decoder": c["n_conv_per_stage_decoder"] as Any,
        ]
        return (className, kwargs)
    }

    /// Convolutions with bias, affine instance norm (eps 1e-5), LeakyReLU at its default slope and
    /// no dropout: nnU-Net's defaults, which MedSeg's networks are. Absent keys are the defaults.
    private static func checkLayers(_ kwargs: [String: Any], dims: Int, file: Reader) throws {
        if let bias = kwargs["conv_bias"] as? Bool, !bias { throw file.fail("conv_bias", "is false; MedSeg's convolutions have a bias, as nnU-Net's") }
        if let conv = kwargs["conv_op"] as? String, !conv.hasSuffix("Conv\(dims)d") {
            throw file.fail("conv_op", "is '\(conv)' for a \(dims)D patch")
        }
        if let norm = kwargs["norm_op"] as? String, !norm.hasSuffix("InstanceNorm\(dims)d") {
            throw file.fail("norm_op", "is '\(norm)'; MedSeg's nnU-Net networks use instance normalization")
        }
        if let options = kwargs["norm_op_kwargs"] as? [String: Any] {
            if let eps = options["eps"] as? Double, abs(eps - 1e-5) > 1e-12 { throw file.fail("norm_op_kwargs.eps", "is \(eps); MedSeg's is 1e-5") }
            if let affine = options["affine"] as? Bool, !affine { throw file.fail("norm_op_kwargs.affine", "is false; MedSeg's instance norm is affine") }
        }
        if let dropout = kwargs["dropout_op"], !(dropout is NSNull) { throw file.fail("dropout_op", "is \(dropout); MedSeg's nnU-Net networks have no dropout") }
        if let nonlin = kwargs["nonlin"] as? String, !nonlin.hasSuffix("LeakyReLU") {
            throw file.fail("nonlin", "is '\(nonlin)'; MedSeg's nnU-Net networks use LeakyReLU")
        }
        if let options = kwargs["nonlin_kwargs"] as? [String: Any], let slope = options["negative_slope"] as? Double, abs(slope - 0.01) > 1e-12 {
            throw file.fail("nonlin_kwargs.negative_slope", "is \(slope); MedSeg's LeakyReLU has 0.01")
        }
    }

    /// nnU-Net's resampling keyword arguments; a forced (or forbidden) separate z axis is not MedSeg's rule.
    private static func resampling(_ c: [String: Any], _ kind: String, file: Reader) throws -> ResamplingSettings? {
        let key = "resampling_fn_\(kind)_kwargs"
        if let function = c["resampling_fn_\(kind)"] as? String, function != "resample_data_or_seg_to_shape" {
            throw file.fail("resampling_fn_\(kind)", "is '\(function)'; MedSeg resamples as nnU-Net's resample_data_or_seg_to_shape")
        }
        guard let kwargs = c[key] as? [String: Any] else { return nil }
        if let forced = kwargs["force_separate_z"], !(forced is NSNull) {
            throw file.fail("\(key).force_separate_z", "is \(forced); MedSeg decides a separate z axis by nnU-Net's anisotropy rule (null)")
        }
        let r = file.within(key)
        return ResamplingSettings(is_seg: kwargs["is_seg"] as? Bool ?? (kind == "seg"), order: try r.int(kwargs["order"], "order"),
                                  order_z: try kwargs["order_z"].map { try r.int($0, "order_z") } ?? 0)
    }

    /// Typed reads from `JSONValue.any`; a failure names the file and the key path.
    private struct Reader {
        let source: String
        var prefix = ""

        func within(_ key: String) -> Reader { Reader(source: source, prefix: prefix + key + ".") }
        func fail(_ key: String, _ why: String) -> ConfigError { ConfigError("\(source): \(prefix)\(key) \(why)") }

        func int(_ value: Any?, _ key: String) throws -> Int {
            guard let number = value as? Double, !(value is Bool), number == number.rounded(), abs(number) < 1e15 else {
                throw fail(key, value == nil ? "is missing" : "must be a whole number, got \(value!)")
            }
            return Int(number)
        }
        func ints(_ value: Any?, _ key: String) throws -> [Int] {
            guard let list = value as? [Any] else { throw fail(key, value == nil ? "is missing" : "must be a list of whole numbers") }
            return try list.map { try int($0, key) }
        }
        func intLists(_ value: Any?, _ key: String) throws -> [[Int]] {
            guard let list = value as? [Any] else { throw fail(key, value == nil ? "is missing" : "must be a list of lists") }
            return try list.map { try ints($0, key) }
        }
        func doubles(_ value: Any?, _ key: String) throws -> [Double] {
            guard let list = value as? [Any], let numbers = list as? [Double], !list.contains(where: { $0 is Bool }) else {
                throw fail(key, value == nil ? "is missing" : "must be a list of numbers")
            }
            return numbers
        }
        func strings(_ value: Any?, _ key: String) throws -> [String] {
            guard let list = value as? [String] else { throw fail(key, value == nil ? "is missing" : "must be a list of names") }
            return list
        }
        func bools(_ value: Any?, _ key: String) throws -> [Bool] {
            guard let list = value as? [Bool] else { throw fail(key, "must be a list of true/false") }
            return list
        }
    }
}
