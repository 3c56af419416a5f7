import Foundation
import MedSegData
import MedSegModels
import Torch

/// What a run trains on and with: the fold's cases loaded (raw or preprocessed, with a cascade's
/// previous stage), the network it builds and the record a checkpoint keeps of it. Made before
/// any weights exist, so every check of the data and config fails fast.
public struct TrainingSetup {
    public let config: TrainingConfig
    public let dataset: RawDataset
    public let allCases: [CaseFiles]
    public let trainIDs: Set<String>
    public let valIDs: Set<String>
    /// "0".."4" or "all".
    public let foldName: String
    public let classes: Int
    public let binary: Bool
    /// The data set's ignore label and regions (plain labels when it has neither).
    public let targets: LabelTargets
    public let planned: PlannedSetup?
    public let previousStage: CascadeInput.PreviousStage?
    public let trainCases: [LoadedCase]
    public let valCases: [LoadedCase]
    public let network: ModelFactory.Spec
    public let spec: ModelSpecRecord

    /// "binary", "3 classes", "3 regions", with the ignore label when there is one (for the log).
    public var layoutDescription: String {
        let base = targets.usesRegions ? "\(targets.regions.count) regions (sigmoid)" : binary ? "binary" : "\(classes) classes"
        return base + (targets.ignoreLabel.map { ", label \($0) ignored" } ?? "")
    }

    /// The validation cases' files, for the final validation in their raw grids.
    public var validationFiles: [CaseFiles] { allCases.filter { valIDs.contains($0.identifier) } }

    /// `mayPreprocess`: whether missing preprocessed cases may be written (not by the ranks of a
    /// distributed run, which would write the same files at once).
    public init(config c: TrainingConfig, datasetFolder: URL, mayPreprocess: Bool, say: (String) -> Void) throws {
        config = c
        // Raw cases train as they are read: what `data check` refuses is refused first (planned
        // configurations check when they preprocess).
        if c.configuration.isEmpty { try DatasetChecker.refuseProblems(in: datasetFolder) }
        dataset = try RawDataset(datasetFolder)
        allCases = try dataset.trainingCases()
        guard allCases.count >= 2 else { throw DataError(file: dataset.labelsTr, "at least 2 labelled cases are needed, found \(allCases.count)") }
        if c.fold < 0 {
            // Fold "all" trains on every case and validates on the same cases (nnU-Net does so
            // too); it needs no splits, so it works on data sets too small for 5 folds.
            trainIDs = Set(allCases.map(\.identifier))
            valIDs = trainIDs
        } else {
            // A data set with fewer cases than folds gets one fold per case.
            let folds = min(c.num_folds, allCases.count)
            if folds < c.num_folds { say("\(allCases.count) labelled cases: \(folds)-fold cross-validation instead of \(c.num_folds)") }
            let splits = try CrossValidationSplits.loadOrCreate(dataset.root.appendingPathComponent("splits_final.json"),
                                                                identifiers: allCases.map(\.identifier), folds: folds)
            guard c.fold < splits.folds.count else { throw ConfigError("key 'fold': \(c.fold) but splits_final.json has \(splits.folds.count) folds") }
            trainIDs = Set(splits.folds[c.fold].train)
            valIDs = Set(splits.folds[c.fold].val)
        }
        foldName = c.fold < 0 ? "all" : String(c.fold)
        let classes = max(1, dataset.description.foregroundLabels.max() ?? 1)
        self.classes = classes
        let targets = LabelTargets(dataset.description, batchDice: c.batch_dice)
        self.targets = targets
        binary = targets.isPlain && classes == 1 && c.loss != .dice_ce && c.loss != .ce
        let trainIDs = self.trainIDs, dataset = self.dataset, allCases = self.allCases
        let ctStats: [IntensityStatistics]? = c.normalization != .ct ? nil : try (0..<dataset.description.channelCount).map { ch in
            try IntensityStatistics.foreground(of: allCases.filter { trainIDs.contains($0.identifier) }.prefix(50).map { files in
                (try ImageIO.read(files.images[ch]).voxels, try ImageIO.read(files.label!).voxels)
            })
        }
        let planned = try c.configuration.isEmpty ? nil : PlannedSetup.load(
            plans: c.plans.isEmpty ? dataset.root.appendingPathComponent(ExperimentPlans.fileName) : URL(fileURLWithPath: c.plans),
            configuration: c.configuration, fingerprint: dataset.root.appendingPathComponent(DatasetFingerprint.fileName))
        self.planned = planned
        let load: (CaseFiles) throws -> LoadedCase
        var previousStage: CascadeInput.PreviousStage? = nil
        if let planned {
            let folder = try Self.preparePreprocessed(planned, dataset: dataset, cases: allCases, mayWrite: mayPreprocess, say: say)
            if let stage = planned.plan.previous_stage {
                guard !c.previous_stage.isEmpty else {
                    throw ConfigError("key 'previous_stage': configuration \(planned.name) trains on the segmentations of \(stage); "
                                      + "give its experiment folder as \(Setting.named("previous_stage", value: "EXP"))")
                }
                previousStage = try CascadeInput.crossValidationPredictions(of: URL(fileURLWithPath: c.previous_stage))
            }
            let orders = planned.preprocessor.orders
            load = { [previousStage] files in
                let stored = try PreprocessedCase.load(files.identifier, from: folder)
                var loaded = try LoadedCase(stored)
                // The ignore label is stored as a class but is never sampled as foreground.
                if targets.ignoreLabel != nil { loaded.foreground = Array(loaded.foreground.prefix(classes)) }
                guard let previousStage else { return loaded }
                let channels = try CascadeInput.channels(previous: previousStage(files), properties: stored.properties, classes: classes,
                                                         orders: orders)
                return try CascadeInput.appending(channels, classes: classes, to: loaded)
            }
        } else {
            let reader = CaseReader(dataset: dataset, normalization: c.normalization, ctStatistics: ctStats)
            load = { files in try reader.load(files, classes: classes, ignoreLabel: targets.ignoreLabel) }
        }
        self.previousStage = previousStage
        trainCases = try allCases.filter { trainIDs.contains($0.identifier) }.map(load)
        let valIDs = self.valIDs
        valCases = try allCases.filter { valIDs.contains($0.identifier) }.map(load)
        guard let first = trainCases.first else { throw TrainingError("fold \(c.fold < 0 ? "all" : String(c.fold)) has no training cases") }
        var topology = PresetOnPlan.plannedNetworks.contains(c.model) ? planned?.topology : nil
        // A width given for a planned network scales every stage, keeping the plan's ratios.
        if let t = topology, let planFirst = t.featuresPerStage.first, c.width != planFirst {
            topology!.featuresPerStage = t.featuresPerStage.map { max(1, $0 * c.width / planFirst) }
        }
        let divisors = ModelFactory.sizeDivisors(.init(name: c.model.rawValue, dims: c.dims, inChannels: 1, outChannels: 1, features: c.width,
                                                       depth: c.levels, topology: topology))
        if let axis = c.patch_size.indices.first(where: { c.patch_size[$0] % divisors[min($0, divisors.count - 1)] != 0 }) {
            throw ConfigError("key 'patch_size': \(c.patch_size[axis]) is not divisible by \(divisors[min(axis, divisors.count - 1)]), which the network needs along axis \(axis)")
        }
        // A 2D network trains on volumes slice by slice (nnU-Net's 2d configuration).
        if first.shape.count != c.dims && !(first.shape.count == 3 && c.dims == 2) {
            throw ConfigError("key 'dims': the data set's images have \(first.shape.count) spatial dimensions, the config says \(c.dims)")
        }
        let outChannels = targets.usesRegions ? targets.regions.count : (binary ? 1 : classes + 1)
        var network = ModelFactory.Spec(name: c.model.rawValue, dims: c.dims, inChannels: first.image.size(0), outChannels: outChannels,
                                        features: c.width, depth: c.levels, deepSupervision: c.deep_supervision, topology: topology)
        if c.model == .setr_mla { network.freezeEncoder = c.freeze_encoder }
        if c.model == .mednext { (network.modelSize, network.kernelSize) = (c.model_size, c.kernel_size) }
        if [.primus, .primus_v2, .primus_v3].contains(c.model) { (network.modelSize, network.inputShape) = (c.model_size, c.patch_size) }
        self.network = network
        spec = ModelSpecRecord(network: self.network, patchSize: c.patch_size, normalization: c.normalization.rawValue,
                               intensityStatistics: ctStats, labels: dataset.description.labelValues, binary: binary,
                               configuration: planned?.name, labelTargets: targets.isPlain ? nil : targets)
    }

    // MARK: components

    /// Loss for the run's output layout; with an ignore label or regions, nnU-Net's masked
    /// Dice + CE (labels) or Dice + BCE (regions).
    public static func makeLoss(_ name: LossName, binary: Bool, targets: LabelTargets? = nil, batchDice: Bool = true) throws -> any SegmentationLoss {
        if let targets, !targets.isPlain {
            let fits: [LossName] = [.auto, targets.usesRegions ? .bce_dice : .dice_ce]
            guard fits.contains(name) else {
                throw ConfigError("key 'loss': '\(name.rawValue)' cannot leave out an ignore label or train regions; use 'auto' or '\(fits[1].rawValue)'")
            }
            return targets
        }
        switch (name, binary) {
        case (.auto, true), (.bce_dice, _): return CompoundLoss.bceDice()
        case (.auto, false), (.dice_ce, _): return CompoundLoss.diceCE(batchDice: batchDice)
        case (.bce, _): return BCEWithLogitsLoss()
        case (.dice, _): return SoftDiceLoss(includeBackground: binary)
        case (.ce, false): return CrossEntropyLoss()
        case (.ce, true): throw ConfigError("key 'loss': 'ce' does not fit a binary (one output channel) task")
        }
    }

    public static func makeSchedule(_ c: TrainingConfig) -> any LRSchedule {
        let main: any LRSchedule
        switch c.scheduler {
        case .poly: main = PolyLR(maxSteps: c.epochs)
        case .cosine: main = CosineAnnealingLR(tMax: max(1, c.epochs - c.warmup_epochs), etaMin: c.eta_min)
        case .step: main = StepLR(stepSize: c.step_size, gamma: c.gamma)
        case .constant: main = ConstantLR()
        }
        guard c.warmup_epochs > 0 else { return main }
        return SequentialLR([LinearWarmupLR(startFactor: 1e-3, totalSteps: c.warmup_epochs), main], milestones: [c.warmup_epochs])
    }

    public static func makeOptimizer(_ c: TrainingConfig, _ params: [Tensor]) throws -> Optimizer {
        let group = ParamGroup(params: params, lr: c.lr, weightDecay: c.weight_decay)
        switch c.optimizer {
        case .sgd: return try SGD(groups: [group], momentum: c.momentum, nesterov: c.nesterov && c.momentum > 0)
        case .adamw: return AdamW(groups: [group], betas: (c.beta1, c.beta2), eps: c.eps)
        case .adam: return Adam(groups: [group], betas: (c.beta1, c.beta2), eps: c.eps)
        case .sophiag: return SophiaG(groups: [group], betas: (0.965, 0.99), rho: c.rho, weightDecay: c.weight_decay)
        }
    }

    /// The folder of the plan's preprocessed cases, preprocessing what is missing or stale first
    /// (only where `mayWrite`).
    static func preparePreprocessed(_ planned: PlannedSetup, dataset: RawDataset, cases: [CaseFiles], mayWrite: Bool,
                                    say: (String) -> Void) throws -> URL {
        let folder = planned.preprocessedFolder(dataset: dataset.root)
        let preprocessor = planned.preprocessor
        let stale = cases.filter { !preprocessor.isUpToDate($0, in: folder) }
        guard !stale.isEmpty else { return folder }
        guard mayWrite else {
            throw TrainingError("\(stale.count) case(s) of \(folder.path) are missing or out of date (\(stale[0].identifier) first); "
                                + "run `medseg preprocess \(dataset.root.path) --config \(planned.name)` before a distributed run")
        }
        say("preprocessing \(stale.count) case(s) for configuration \(planned.name) into \(folder.path)")
        try preprocessor.run(dataset: dataset, out: folder, workers: max(1, ProcessInfo.processInfo.activeProcessorCount))
        return folder
    }
}
