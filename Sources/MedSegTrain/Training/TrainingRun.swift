import Foundation
import MedSegData
import MedSegDist
import MedSegModels
import Torch

/// What a finished (or stopped) run reports.
public struct TrainingSummary: Sendable {
    public var epochsCompleted: Int
    public var bestMetric: Double?
    public var finalValidationDice: Double?
    public var runFolder: URL
}

/// One training run: data, model, optimizer and schedule from a `TrainingConfig`; epochs of
/// iterations with validation, checkpoints (latest, best, every N epochs, final) and logs in the
/// run folder; exact resumption from a checkpoint.
public final class TrainingRun {
    public let config: TrainingConfig
    public let datasetFolder: URL
    public let runFolder: URL
    /// A run folder or checkpoint file to continue from.
    public let resume: URL?
    public let device: Device
    /// When resuming: train to this many epochs instead of the saved run's number.
    public var epochsOverride: Int?
    /// Stop after this many epochs of this invocation (to test interruption), without final steps.
    public var stopAfterEpochs: Int?
    /// Print progress to the console.
    public var verbose = true
    /// This process's place in a distributed run (nil: a single process).
    public var distributed: DistributedEnvironment?
    /// Longest wait for another rank in a collective before giving up.
    public var distributedTimeout: TimeInterval = 120
    /// Only run the final validation with the run's final (else latest) checkpoint, as nnU-Net's --val.
    public var validationOnly = false

    public init(config: TrainingConfig, datasetFolder: URL, runFolder: URL, resume: URL? = nil, device: Device = .cpu) {
        self.config = config
        self.datasetFolder = datasetFolder
        self.runFolder = runFolder
        self.resume = resume
        self.device = device
    }

    public static func checkpointURL(_ folder: URL, _ name: String) -> URL {
        folder.appendingPathComponent("\(name).\(Checkpoint.fileExtension)")
    }

    /// Loss for the run's output layout.
    static func makeLoss(_ name: String, binary: Bool) throws -> any SegmentationLoss {
        switch (name, binary) {
        case ("auto", true), ("bce_dice", _): return CompoundLoss.bceDice()
        case ("auto", false), ("dice_ce", _): return CompoundLoss.diceCE()
        case ("bce", _): return BCEWithLogitsLoss()
        case ("dice", _): return SoftDiceLoss(includeBackground: binary)
        case ("ce", false): return CrossEntropyLoss()
        default: throw ConfigError("key 'loss': '\(name)' does not fit a \(binary ? "binary (one output channel)" : "multi-class") task")
        }
    }

    static func makeSchedule(_ c: TrainingConfig) -> any LRSchedule {
        let main: any LRSchedule
        switch c.scheduler {
        case "poly": main = PolyLR(maxSteps: c.epochs)
        case "cosine": main = CosineAnnealingLR(tMax: max(1, c.epochs - c.warmup_epochs), etaMin: c.eta_min)
        case "step": main = StepLR(stepSize: c.step_size, gamma: c.gamma)
        default: main = ConstantLR()
        }
        guard c.warmup_epochs > 0 else { return main }
        return SequentialLR([LinearWarmupLR(startFactor: 1e-3, totalSteps: c.warmup_epochs), main], milestones: [c.warmup_epochs])
    }

    static func makeOptimizer(_ c: TrainingConfig, _ params: [Tensor]) throws -> Optimizer {
        let group = ParamGroup(params: params, lr: c.lr, weightDecay: c.weight_decay)
        switch c.optimizer {
        case "sgd": return try SGD(groups: [group], momentum: c.momentum, nesterov: c.nesterov && c.momentum > 0)
        case "adamw": return AdamW(groups: [group])
        default: return Adam(groups: [group])
        }
    }

    @discardableResult
    public func run() throws -> TrainingSummary {
        var c = config
        try c.validate()
        if c.threads > 0 { Torch.threads = c.threads }
        try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)

        // Resume state first: it carries the config the run was started with.
        var loaded: Checkpoint.Loaded? = nil
        if let resume {
            var isDir: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: resume.path, isDirectory: &isDir)
            var file = isDir.boolValue ? Self.checkpointURL(resume, "checkpoint_latest") : resume
            if validationOnly && isDir.boolValue, FileManager.default.fileExists(atPath: Self.checkpointURL(resume, "checkpoint_final").path) {
                file = Self.checkpointURL(resume, "checkpoint_final")
            }
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw TrainingError("cannot resume: \(file.path) does not exist")
            }
            loaded = try Checkpoint.load(file)
            let saved = try TrainingConfig().merging(yaml: loaded!.state.configYAML, source: "\(file.lastPathComponent) config")
            // The saved run's settings win, except for a new length when one is asked for.
            c = saved
            if let epochsOverride { c.epochs = epochsOverride }
        }
        Torch.manualSeed(UInt64(c.seed))
        let rank = distributed?.rank ?? 0, world = distributed?.worldSize ?? 1
        let isMain = rank == 0
        let group = try distributed.map {
            try ProcessGroup(masterAddress: $0.masterAddress, masterPort: $0.masterPort, rank: $0.rank, worldSize: $0.worldSize,
                             timeout: distributedTimeout, nccl: device.isCUDA)
        }

        // Data.
        let dataset = try RawDataset(datasetFolder)
        let allCases = try dataset.trainingCases()
        guard allCases.count >= 2 else { throw DataError(file: dataset.labelsTr, "at least 2 labelled cases are needed, found \(allCases.count)") }
        let splits = try CrossValidationSplits.loadOrCreate(dataset.root.appendingPathComponent("splits_final.json"),
                                                            identifiers: allCases.map(\.identifier), folds: c.num_folds)
        guard c.fold < splits.folds.count else { throw ConfigError("key 'fold': \(c.fold) but splits_final.json has \(splits.folds.count) folds") }
        // Fold "all" trains on every case and validates on the same cases (nnU-Net does so too).
        let trainIDs = c.fold < 0 ? Set(allCases.map(\.identifier)) : Set(splits.folds[c.fold].train)
        let valIDs = c.fold < 0 ? trainIDs : Set(splits.folds[c.fold].val)
        let foldName = c.fold < 0 ? "all" : String(c.fold)
        let classes = max(1, dataset.description.foregroundLabels.max() ?? 1)
        let binary = classes == 1 && c.loss != "dice_ce" && c.loss != "ce"
        let normalization = IntensityNormalization(rawValue: c.normalization) ?? .zscore
        var ctStats: [IntensityStatistics]? = nil
        if normalization == .ct {
            ctStats = try (0..<dataset.description.channelCount).map { ch in
                try IntensityStatistics.foreground(of: allCases.filter { trainIDs.contains($0.identifier) }.prefix(50).map { files in
                    (try ImageIO.read(files.images[ch]).voxels, try ImageIO.read(files.label!).voxels)
                })
            }
        }
        let planned = try c.configuration.isEmpty ? nil : PlannedSetup.load(
            plans: c.plans.isEmpty ? dataset.root.appendingPathComponent(ExperimentPlans.fileName) : URL(fileURLWithPath: c.plans),
            configuration: c.configuration, fingerprint: dataset.root.appendingPathComponent(DatasetFingerprint.fileName))
        let load: (CaseFiles) throws -> LoadedCase
        var previousStage: CascadeInput.PreviousStage? = nil
        if let planned {
            let folder = try Self.preparePreprocessed(planned, dataset: dataset, cases: allCases, mayWrite: world == 1, say: verbose ? { print($0) } : { _ in })
            if planned.plan.previous_stage != nil {
                guard !c.previous_stage.isEmpty else {
                    throw ConfigError("key 'previous_stage': configuration \(planned.name) trains on the segmentations of \(planned.plan.previous_stage!); "
                                      + "give its experiment folder (--previous-stage EXP)")
                }
                previousStage = try CascadeInput.crossValidationPredictions(of: URL(fileURLWithPath: c.previous_stage))
            }
            load = { files in
                let stored = try PreprocessedCase.load(files.identifier, from: folder)
                let loaded = try LoadedCase(stored)
                guard let previousStage else { return loaded }
                return try CascadeInput.appending(try CascadeInput.channels(previous: previousStage(files), properties: stored.properties, classes: classes),
                                                  classes: classes, to: loaded)
            }
        } else {
            let reader = CaseReader(dataset: dataset, normalization: normalization, ctStatistics: ctStats)
            load = { files in try reader.load(files, classes: classes) }
        }
        let trainCases = try allCases.filter { trainIDs.contains($0.identifier) }.map(load)
        let valCases = try allCases.filter { valIDs.contains($0.identifier) }.map(load)
        guard let first = trainCases.first else { throw TrainingError("fold \(foldName) has no training cases") }
        var topology = c.model == "plainunet" ? planned?.topology : nil
        // A width given for a planned network scales every stage, keeping the plan's ratios.
        if let t = topology, let planFirst = t.featuresPerStage.first, c.features != planFirst {
            topology!.featuresPerStage = t.featuresPerStage.map { max(1, $0 * c.features / planFirst) }
        }
        let divisors = ModelFactory.sizeDivisors(.init(name: c.model, dims: c.dims, inChannels: 1, outChannels: 1, features: c.features,
                                                       depth: c.depth, topology: topology))
        if let axis = c.patch_size.indices.first(where: { c.patch_size[$0] % divisors[min($0, divisors.count - 1)] != 0 }) {
            throw ConfigError("key 'patch_size': \(c.patch_size[axis]) is not divisible by \(divisors[min(axis, divisors.count - 1)]), which the network needs along axis \(axis)")
        }
        if first.shape.count != c.dims {
            throw ConfigError("key 'dims': the data set's images have \(first.shape.count) spatial dimensions, the config says \(c.dims)")
        }

        // Model, optimizer, schedule, loss.
        let network = ModelFactory.Spec(name: c.model, dims: c.dims, inChannels: first.image.size(0), outChannels: binary ? 1 : classes + 1,
                                        features: c.features, depth: c.depth, deepSupervision: c.deep_supervision, topology: topology)
        let spec = ModelSpecRecord(network: network, patchSize: c.patch_size, normalization: c.normalization,
                                   intensityStatistics: ctStats, labels: dataset.description.labelValues, binary: binary,
                                   configuration: planned?.name)
        let model = try ModelFactory.make(network)
        if !c.encoder_weights.isEmpty && loaded == nil {
            guard let setr = model as? SETRMLA else {
                throw ConfigError("key 'encoder_weights': model '\(c.model)' has no pretrained encoder to load")
            }
            let report = try setr.loadEncoderWeights(url: URL(fileURLWithPath: c.encoder_weights))
            if isMain { print("encoder weights \(c.encoder_weights):\n\(report)") }
        }
        try model.to(device: device)
        let optimizer = try Self.makeOptimizer(c, model.trainableParameters())
        let scheduler = LRScheduler(optimizer, Self.makeSchedule(c))
        let lossFunction = try Self.makeLoss(c.loss, binary: binary)

        var startEpoch = 0
        var best: Double? = nil
        var ema: Double? = nil
        var history: [EpochRecord] = []
        if let l = loaded {
            try model.loadState(l.model)
            let scalars = try JSONDecoder().decode(Optimizer.Scalars.self, from: Data(l.state.optimizerJSON.utf8))
            try optimizer.load(stateTensors: l.optimizer, scalars: scalars)
            if let rng = l.rng { try Torch.setRNGState(rng) }
            startEpoch = l.state.epoch
            best = l.state.bestMetric
            ema = l.state.emaDice
            history = l.state.history
        }
        // Only rank 0 writes logs, TensorBoard events and checkpoints.
        let logger: RunLogger? = isMain ? try RunLogger(folder: runFolder, resumedRecords: history) : nil
        if isMain {
            try AtomicFile.write(Data(try c.yaml().utf8), to: runFolder.appendingPathComponent("config.yaml"))
            try planned?.writeCopies(to: runFolder)
        }
        let configYAML = try c.yaml()
        let say: (String) -> Void = { [verbose] message in logger?.log(message, console: verbose) }
        let ddp = try group.map { try DistributedDataParallel(model: model, group: $0) }
        if loaded != nil { say("resuming \(runFolder.path) after epoch \(startEpoch)") }
        say("\(c.model) \(c.dims)D: \(model.parameterCount()) parameters, \(spec.inChannels) input channel(s), " +
            "\(binary ? "binary" : "\(classes) classes"); fold \(foldName): \(trainCases.count) training, \(valCases.count) validation cases; " +
            "batch \(c.batch_size)\(world > 1 ? " per process x \(world) processes = \(c.batch_size * world)" : ""), patch \(c.patch_size), \(c.optimizer) lr \(c.lr), \(c.scheduler) schedule, \(Torch.threads) thread(s)")

        let pipeline: AugmentationPipeline
        do { pipeline = AugmentationPipeline.preset(try AugmentationPipeline.PresetName(parsing: c.augmentation), dims: c.dims) } catch {
            throw ConfigError("key 'augmentation': \(error)")
        }
        let patchCases = trainCases.map(PatchCase.init)
        let patchSampler = PatchSampler(patchSize: c.patch_size, oversampleForeground: c.oversample_foreground)
        var sampler = DistributedSampler(count: trainCases.count, replicas: world, rank: rank, seed: UInt64(c.seed))

        func save(_ name: String, epoch: Int) throws {
            guard let logger else { return }
            let scalars = String(decoding: try JSONEncoder().encode(optimizer.scalars), as: UTF8.self)
            let state = TrainerState(epoch: epoch, bestMetric: best, emaDice: ema, history: logger.history, configYAML: configYAML,
                                     optimizerJSON: scalars, schedulerJSON: "{\"last_step\": \(epoch)}", model: spec)
            try Checkpoint.save(to: Self.checkpointURL(runFolder, name), model: model, optimizer: optimizer.stateTensors(), state: state)
        }

        // Final validation: every validation case predicted in its raw grid and evaluated.
        func validateFinal() throws -> EvaluationSummary {
            let inference = try CaseInference(predictors: [Predictor(model: model, spec: spec, mirror: c.validation_mirroring, device: device)],
                                              preprocessor: planned?.preprocessor, previousStage: previousStage)
            let summary = try Validation.writeSummary(inference: inference, cases: allCases.filter { valIDs.contains($0.identifier) },
                                                      dataset: dataset, folder: runFolder.appendingPathComponent("validation"),
                                                      saveProbabilities: c.save_probabilities)
            say("validation of fold \(foldName) (\(summary.metric_per_case.count) cases\(c.validation_mirroring ? ", mirror TTA" : "")):\n"
                + summary.table(labelNames: dataset.description.labelNames))
            return summary
        }
        if validationOnly {
            guard loaded != nil else { throw TrainingError("--validation-only needs a trained run: no checkpoint in \(runFolder.path)") }
            let summary = try isMain ? validateFinal() : nil
            return TrainingSummary(epochsCompleted: startEpoch, bestMetric: best, finalValidationDice: summary?.foreground_mean.Dice, runFolder: runFolder)
        }

        var epochsThisRun = 0
        var lastDice: Double? = nil
        var skippedSteps = 0
        for epoch in startEpoch..<c.epochs {
            if let stop = stopAfterEpochs, epochsThisRun >= stop { break }
            scheduler.set(step: epoch)
            model.train()
            // This rank's share of the training cases for the epoch, as DistributedSampler deals them.
            sampler.setEpoch(epoch)
            let source = TrainingBatches(cases: sampler.indices().map { patchCases[$0] }, batchSize: c.batch_size,
                                         sampler: patchSampler, pipeline: pipeline)
            let batches = BatchLoader(source: source, batches: c.iterations, workers: c.workers, prefetch: 2,
                                      seed: UInt64(c.seed) &+ UInt64(rank) &* 0x9E37_79B9, epoch: epoch)
            defer { batches.stop() }
            let progress = EpochProgress(epoch: epoch + 1, epochs: c.epochs, iterations: c.iterations, enabled: verbose)
            let started = DispatchTime.now().uptimeNanoseconds
            var lossSum = 0.0, steps = 0
            for iteration in 0..<c.iterations {
                guard let batch = try batches.next() else { break }
                let (x, y) = (batch.image, batch.label)
                try optimizer.zeroGrad()
                let input = try x.to(device: device)
                let target = try y.to(device: device)
                let loss: Tensor
                if let multi = model as? MultiOutputModel {
                    // Deep supervision / auxiliary heads: every output counts with its weight.
                    let outputs = try ddp?.outputs(input) ?? multi.outputs(input)
                    loss = try DeepSupervisionLoss(lossFunction, weights: multi.outputWeights)(outputs, target)
                } else {
                    loss = try lossFunction(ddp?.forward(input) ?? model(input), target)
                }
                let value = try loss.item()
                // Backward runs on every rank (the gradient all-reduce needs all of them); a
                // non-finite loss anywhere makes the averaged gradient non-finite on every rank,
                // and then no rank steps: the weights never see it.
                try loss.backward()
                let norm = try clipGradNorm(model.trainableParameters(), maxNorm: c.grad_clip > 0 ? c.grad_clip : .infinity)
                guard value.isFinite && norm.isFinite else {
                    skippedSteps += 1
                    say("epoch \(epoch + 1) iteration \(iteration + 1): loss \(value), gradient norm \(norm); step skipped, weights unchanged")
                    if skippedSteps >= 10 {
                        throw TrainingError("the loss was not finite in 10 steps; stopping. The last good weights are in \(Self.checkpointURL(runFolder, "checkpoint_latest").path). Lower the learning rate (key 'lr', now \(c.lr)) or check the data with `medseg data check`.")
                    }
                    continue
                }
                try optimizer.step()
                lossSum += value
                steps += 1
                progress.update(iteration + 1, loss: lossSum / Double(steps), lr: optimizer.paramGroups[0].lr,
                                imagesPerSecond: Double((iteration + 1) * c.batch_size) / (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            progress.finish()
            let trained = try ddp?.sum([lossSum, Double(steps)]) ?? [lossSum, Double(steps)]
            var record = EpochRecord(epoch: epoch + 1, trainLoss: trained[1] > 0 ? trained[0] / trained[1] : .nan,
                                     learningRate: optimizer.paramGroups[0].lr, seconds: seconds,
                                     imagesPerSecond: Double(c.iterations * c.batch_size * world) / seconds)
            if (epoch + 1) % c.val_every == 0 || epoch + 1 == c.epochs, !valCases.isEmpty {
                // Each rank validates its share of the cases; the counts are summed over ranks.
                let mine = valCases.enumerated().filter { $0.offset % world == rank }.map(\.element)
                var tallies = try Validation.tally(model: model, cases: mine, spec: spec, loss: lossFunction, device: device)
                if let ddp { tallies = Validation.Tallies(flattened: try ddp.sum(tallies.flattened)) }
                let v = tallies.result
                record.valLoss = v.loss
                record.valDice = v.meanDice
                record.valDicePerClass = v.dicePerClass
                record.valIoU = v.meanIoU
                record.valAccuracy = v.accuracy
                ema = ema.map { 0.9 * $0 + 0.1 * v.meanDice } ?? v.meanDice
                record.emaDice = ema
                lastDice = v.meanDice
                let metric = c.best_metric == "loss" ? -v.loss : ema!
                if best == nil || metric > best! {
                    best = metric
                    try save("checkpoint_best", epoch: epoch + 1)
                    say(String(format: "new best %@ %.4f", c.best_metric == "loss" ? "validation loss" : "EMA Dice", c.best_metric == "loss" ? v.loss : ema!))
                }
            }
            try logger?.record(record)
            say(Self.describe(record))
            try save("checkpoint_latest", epoch: epoch + 1)
            if (epoch + 1) % c.save_every == 0 { try save("checkpoint_epoch_\(epoch + 1)", epoch: epoch + 1) }
            epochsThisRun += 1
        }
        let done = startEpoch + epochsThisRun
        if let ddp {
            // Every replica must hold the same weights; compare a checksum across ranks.
            let checksum = try model.parameters().reduce(0.0) { $0 + (try $1.to(dtype: .float64).abs().sum().item()) }
            let all = try ddp.group.allGather(try Tensor([checksum], shape: [1])).map { try $0.item() }
            guard all.allSatisfy({ $0 == all[0] }) else {
                throw TrainingError("the ranks' weights differ after training (checksums \(all)); gradient averaging failed")
            }
            say(String(format: "all %d ranks agree on the weights (checksum %.6f)", world, checksum))
        }
        if done >= c.epochs && stopAfterEpochs == nil && isMain {
            try save("checkpoint_final", epoch: done)
            if !valCases.isEmpty { lastDice = try validateFinal().foreground_mean.Dice }
            say("finished: outputs in \(runFolder.path)")
        }
        return TrainingSummary(epochsCompleted: done, bestMetric: best, finalValidationDice: lastDice, runFolder: runFolder)
    }

    /// The folder of the plan's preprocessed cases, preprocessing what is missing or stale first
    /// (only where `mayWrite`: ranks of a distributed run must not write the same files at once).
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

    static func describe(_ r: EpochRecord) -> String {
        var s = String(format: "epoch %d: train loss %.4f", r.epoch, r.trainLoss)
        if let v = r.valLoss { s += String(format: ", val loss %.4f", v) }
        if let d = r.valDice { s += String(format: ", val Dice %.4f", d) }
        if let e = r.emaDice { s += String(format: " (EMA %.4f)", e) }
        s += String(format: ", lr %.2e, %.1f s, %.1f img/s", r.learningRate, r.seconds, r.imagesPerSecond)
        return s
    }
}
