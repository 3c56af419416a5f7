import Foundation
import MedSegData
import MedSegModels

/// One configuration of a plans file with the fingerprint it was planned from: what training,
/// preprocessing and inference of that configuration need. A run keeps copies of both files so
/// that `predict` works without the data set.
public struct PlannedSetup: Sendable {
    public let name: String
    public let plans: ExperimentPlans
    public let plan: PlannedConfiguration
    public let fingerprint: DatasetFingerprint

    public static let configurationNames = ["2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"]

    /// Loads configuration `name` of `plansURL` and the fingerprint beside it (or `fingerprintURL`).
    public static func load(plans plansURL: URL, configuration name: String, fingerprint fingerprintURL: URL? = nil) throws -> PlannedSetup {
        guard FileManager.default.fileExists(atPath: plansURL.path) else {
            throw ConfigError("\(plansURL.path) does not exist; run `medseg plan DATASET` first")
        }
        let plans = try ExperimentPlans.load(plansURL)
        guard let plan = plans.configurations[name] else {
            throw ConfigError("\(plansURL.path) has no configuration '\(name)'; it has \(plans.configurations.keys.sorted().joined(separator: ", "))")
        }
        let fpURL = fingerprintURL ?? plansURL.deletingLastPathComponent().appendingPathComponent(DatasetFingerprint.fileName)
        let fingerprint = try DatasetFingerprint.load(fpURL)
        // Equal dimensions, or a 2d configuration of volumes (trained and predicted slice by slice).
        guard plan.spacing.count == fingerprint.medianSpacing.count || (plan.spacing.count == 2 && fingerprint.medianSpacing.count == 3) else {
            throw ConfigError("configuration '\(name)' of \(plansURL.path) plans \(plan.spacing.count)D patches for \(fingerprint.medianSpacing.count)D images")
        }
        guard plan.patch_size.count == plan.spacing.count, plan.features_per_stage.count == plan.strides.count,
              plan.kernel_sizes.count == plan.strides.count, plan.batch_size >= 1 else {
            throw ConfigError("\(plansURL.path), configuration '\(name)': patch_size, spacing, features_per_stage, kernel_sizes and strides do not fit together")
        }
        return PlannedSetup(name: name, plans: plans, plan: plan, fingerprint: fingerprint)
    }

    /// The plan's preprocessing (crop, normalize per channel, resample to the target spacing).
    public var preprocessor: Preprocessor {
        let schemes: [IntensityNormalization] = plan.normalization_schemes.map { PlannedConfiguration.normalizationNames[$0] ?? .zscore }
        // CT normalization follows the plans' intensities where they carry them (plans moved from
        // another data set: those the network was trained on), else this data set's fingerprint.
        var statistics = fingerprint
        if let properties = plans.foreground_intensity_properties_per_channel { statistics.foregroundIntensityPropertiesPerChannel = properties }
        var preprocessor = Preprocessor(targetSpacing: plan.spacing, normalization: schemes, fingerprint: statistics,
                                        useMaskForNorm: plan.use_mask_for_norm)
        // The plans' interpolation orders (validated: images and logits 0, 1 or 3; labels 0 or 1).
        func order(_ value: Int) -> Resampling.Order { Resampling.Order(rawValue: value) ?? .cubic }
        if let data = plan.resampling_fn_data_kwargs { (preprocessor.orders.image, preprocessor.orders.imageZ) = (order(data.order), order(data.order_z)) }
        if let seg = plan.resampling_fn_seg_kwargs { (preprocessor.orders.label, preprocessor.orders.labelZ) = (order(seg.order), order(seg.order_z)) }
        if let logits = plan.resampling_fn_probabilities_kwargs {
            (preprocessor.orders.logits, preprocessor.orders.logitsZ) = (order(logits.order), order(logits.order_z))
        }
        return preprocessor
    }

    public var topology: ModelFactory.Topology {
        ModelFactory.Topology(featuresPerStage: plan.features_per_stage, kernelSizes: plan.kernel_sizes, strides: plan.strides,
                              blocksPerStage: isResidual ? plan.n_blocks_per_stage : nil,
                              convsPerDecoderStage: isResidual ? plan.n_conv_per_stage_decoder?.first : nil)
    }

    /// Whether the plan's network is nnU-Net's ResidualEncoderUNet (the ResEnc planners' plans).
    public var isResidual: Bool { plan.network_class_name?.hasSuffix("ResidualEncoderUNet") ?? false }

    /// MedSeg's model name of the planned network.
    public var modelName: ModelName { isResidual ? .resencunet : .plainunet }

    /// Where `medseg preprocess` stores the cases of this configuration.
    public func preprocessedFolder(dataset root: URL) -> URL {
        root.appendingPathComponent("preprocessed").appendingPathComponent(name)
    }

    /// Copies of plans.json and the fingerprint in a run folder.
    public func writeCopies(to folder: URL) throws {
        try plans.write(to: folder.appendingPathComponent(ExperimentPlans.fileName))
        try fingerprint.write(to: folder)
    }

    /// From the copies a run folder holds.
    public static func load(runFolder: URL, configuration: String) throws -> PlannedSetup {
        try load(plans: runFolder.appendingPathComponent(ExperimentPlans.fileName), configuration: configuration)
    }
}

extension TrainingConfig {
    /// The settings a planned configuration decides: its network (nnU-Net's plain or residual
    /// U-Net), patch, batch and batch Dice, on preprocessed (already normalized) cases, trained
    /// with nnU-Net's recipe (`nnUNetTraining`). Options given after this still win.
    public func applying(_ setup: PlannedSetup, plansFile: URL) -> TrainingConfig {
        var c = self.applyingNNUNetTraining()
        c.model = setup.modelName
        c.dims = setup.plan.patch_size.count
        c.patch_size = setup.plan.patch_size
        c.batch_size = setup.plan.batch_size
        c.features = setup.plan.features_per_stage.first ?? c.width
        c.depth = setup.plan.features_per_stage.count
        c.batch_dice = setup.plan.batch_dice ?? true
        c.normalization = .none
        c.configuration = setup.name
        c.plans = plansFile.standardizedFileURL.path
        return c
    }

    /// A network not built on a plan's stages (SegResNet, the classic U-Net, ...) chosen on a planned
    /// configuration: its own width, and as many levels (at most its default) as the plan's patch
    /// can halve, unless `given` (the keys the user set) holds them. A network whose divisor does not
    /// depend on its levels (MedNeXt 16, SwinUNETR 32) gets the plan's patch rounded up to it, as
    /// MedNeXt's own trainer makes nnU-Net's patches divisible, unless the user gave the patch.
    public func ownNetworkOnPlan(keeping given: Set<String>) -> TrainingConfig {
        guard !PresetOnPlan.plannedNetworks.contains(model) else { return self }
        var c = self
        if !given.contains("features") { c.features = nil }
        if !given.contains("depth") {
            let fits = { (levels: Int) -> Bool in
                let divisors = ModelFactory.sizeDivisors(.init(name: self.model.rawValue, dims: self.dims, inChannels: 1, outChannels: 1,
                                                               features: c.width, depth: levels))
                return self.patch_size.indices.allSatisfy { self.patch_size[$0] % divisors[min($0, divisors.count - 1)] == 0 }
            }
            c.depth = stride(from: model.defaultDepth, through: 2, by: -1).first(where: fits) ?? model.defaultDepth
        }
        if !given.contains("patch_size") {
            let divisors = ModelFactory.sizeDivisors(.init(name: model.rawValue, dims: dims, inChannels: 1, outChannels: 1, features: c.width,
                                                           depth: c.levels))
            c.patch_size = patch_size.indices.map { a in
                let d = divisors[min(a, divisors.count - 1)]
                return (patch_size[a] + d - 1) / d * d
            }
        }
        return c
    }

    /// nnU-Net v2's trainer: SGD 0.01 (Nesterov, momentum 0.99, weight decay 3e-5), poly 0.9
    /// over 1000 epochs of 250 iterations, gradients clipped at 12, Dice + CE on a softmax over
    /// background and classes with deep supervision, a third of the patches on foreground.
    public static let nnUNetTrainingKeys: Set<String> = ["optimizer", "lr", "momentum", "nesterov", "weight_decay", "scheduler",
                                                         "warmup_epochs", "epochs", "iterations", "grad_clip", "loss", "deep_supervision",
                                                         "oversample_foreground", "augmentation", "best_metric"]

    public func applyingNNUNetTraining() -> TrainingConfig {
        var c = self
        c.optimizer = .sgd
        c.lr = 0.01
        c.momentum = 0.99
        c.nesterov = true
        c.weight_decay = 3e-5
        c.scheduler = .poly
        c.warmup_epochs = 0
        c.epochs = 1000
        c.iterations = 250
        c.grad_clip = 12
        c.loss = .dice_ce
        c.deep_supervision = true
        c.oversample_foreground = 0.33
        c.augmentation = .nnUNet
        c.best_metric = .dice
        return c
    }
}
