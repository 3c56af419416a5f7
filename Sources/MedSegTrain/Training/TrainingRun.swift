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
    /// How the run begins.
    public enum Start: Equatable, Sendable {
        case fresh
        /// Continue from a run folder (its latest checkpoint) or a checkpoint file. The saved
        /// settings win; of `overrides` (the keys the caller set) only `epochs` applies, the
        /// others are reported.
        case resume(from: URL, overrides: Set<String> = [])
        /// Only the final validation, with the run's final (else latest) checkpoint, as nnU-Net's --val.
        case validateOnly(URL)
    }

    public struct Options: Sendable {
        /// Print progress to the console.
        public var verbose = true
        /// Stop after this many epochs of this invocation (to test interruption), without final steps.
        public var stopAfterEpochs: Int?
        /// This process's place in a distributed run (nil: a single process).
        public var distributed: DistributedEnvironment?
        /// Longest wait for another rank in a collective before giving up.
        public var distributedTimeout: TimeInterval = 120
        /// Lines for the start of the log (where settings came from).
        public var notes: [String] = []

        public init(verbose: Bool = true, stopAfterEpochs: Int? = nil, distributed: DistributedEnvironment? = nil,
                    distributedTimeout: TimeInterval = 120, notes: [String] = []) {
            self.verbose = verbose; self.stopAfterEpochs = stopAfterEpochs
            self.distributed = distributed; self.distributedTimeout = distributedTimeout; self.notes = notes
        }
    }

    public let config: TrainingConfig
    public let datasetFolder: URL
    public let folder: RunFolder
    public let start: Start
    public let device: Device
    public let options: Options
    /// Settings asked for on resume that the saved run's own settings replaced (one line each).
    public private(set) var ignoredOverrides: [String] = []

    public var runFolder: URL { folder.url }

    public init(config: TrainingConfig, datasetFolder: URL, runFolder: URL, start: Start = .fresh, device: Device = .cpu,
                options: Options = Options()) {
        self.config = config
        self.datasetFolder = datasetFolder
        self.folder = RunFolder(runFolder)
        self.start = start
        self.device = device
        self.options = options
    }

    /// The checkpoint a resumed or validated run starts from and the settings it continues with.
    private func resolveStart() throws -> (TrainingConfig, Checkpoint.Loaded?) {
        switch start {
        case .fresh:
            return (config.resolved, nil)
        case .validateOnly(let source):
            let loaded = try Checkpoint.load(try CheckpointStore.file(for: source, validation: true))
            return (loaded.state.config, loaded)
        case .resume(let source, let overrides):
            let file = try CheckpointStore.file(for: source, validation: false)
            let loaded = try Checkpoint.load(file)
            try refuseForeignCheckpoint(file, config: loaded.state.config)
            var c = loaded.state.config
            if overrides.contains("epochs") { c.epochs = config.epochs }
            ignoredOverrides = try TrainingConfig.differences(requested: config.resolved, saved: c, keys: overrides.subtracting(["epochs"]))
                .map { "\($0.key): \($0.requested) was asked for, the run continues with its saved \($0.saved) (\(file.lastPathComponent))" }
            return (c, loaded)
        }
    }

    /// The settings that decide the network: a checkpoint whose values differ from the run
    /// folder's config.yaml was not made by this run.
    static let networkKeys: Set<String> = ["model", "dims", "features", "depth", "deep_supervision", "configuration"]

    /// Refuses to resume this run from a checkpoint of another network (before anything in the
    /// run folder is rewritten).
    private func refuseForeignCheckpoint(_ file: URL, config saved: TrainingConfig) throws {
        guard let text = try? String(contentsOf: folder.config, encoding: .utf8) else { return }
        let runConfig = try TrainingConfig().merging(yaml: text, source: folder.config.path)
        let clashes = try TrainingConfig.differences(requested: runConfig.resolved, saved: saved.resolved, keys: Self.networkKeys)
        guard !clashes.isEmpty else { return }
        let what = clashes.map { "\($0.key) \($0.saved) in the checkpoint, \($0.requested) in the run" }.joined(separator: "; ")
        throw TrainingError("cannot resume \(runFolder.path) from \(file.path): the checkpoint holds another network (\(what)); "
                            + "resume from this run's own checkpoint, or train the other model into its own --out")
    }

    @discardableResult
    public func run() throws -> TrainingSummary {
        try config.validate()
        if config.threads > 0 { Torch.threads = config.threads }
        let (c, loaded) = try resolveStart()
        Torch.manualSeed(UInt64(c.seed))
        try Torch.setDeterministic(c.deterministic)
        let distributed = options.distributed
        let rank = distributed?.rank ?? 0, world = distributed?.worldSize ?? 1
        let isMain = rank == 0
        let group = try distributed.map {
            try $0.joinProcessGroup(timeout: options.distributedTimeout, nccl: device.isCUDA)
        }
        let verbose = options.verbose
        let setup = try TrainingSetup(config: c, datasetFolder: datasetFolder, mayPreprocess: world == 1, say: verbose ? { print($0) } : { _ in })
        let spec = setup.spec

        // Model, optimizer, schedule, loss.
        let model = try ModelFactory.make(setup.network)
        // Fine-tuning starts from another run's weights (a resumed run has its own).
        let pretrained = try c.pretrained_weights.isEmpty || loaded != nil ? nil
            : PretrainedWeights.load(URL(fileURLWithPath: c.pretrained_weights), into: model)
        // Only now, with the data, config and weights checked, does the run folder get anything
        // written: a run that cannot start leaves nothing behind.
        if isMain {
            try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
            try AtomicFile.write(Data(datasetFolder.standardizedFileURL.path.utf8), to: folder.datasetPath)
        }
        if c.model == .setr_mla && c.freeze_encoder && c.encoder_weights.isEmpty && c.pretrained_weights.isEmpty && loaded == nil && isMain {
            // A random encoder that never trains: almost certainly not what was meant.
            print("warning: setr_mla's encoder is frozen but has no pretrained weights, so it stays random; give them with --encoder-weights "
                  + "(key 'encoder_weights'), or train the encoder too with --no-freeze-encoder (key 'freeze_encoder: false')")
        }
        if !c.encoder_weights.isEmpty && loaded == nil {
            guard let setr = model as? SETRMLA else {
                throw ConfigError("key 'encoder_weights': model '\(c.model.rawValue)' has no pretrained encoder to load")
            }
            let report = try setr.loadEncoderWeights(url: URL(fileURLWithPath: c.encoder_weights))
            if isMain { print("encoder weights \(c.encoder_weights):\n\(report)") }
        }
        try model.to(device: device)
        let memoryFormat: MemoryFormat? = c.channels_last ? .channelsLast(rank: c.dims + 2) : nil
        if let memoryFormat { try model.to(memoryFormat: memoryFormat) }
        if device.isCUDA { Torch.cudnnBenchmark = c.cudnn_benchmark }
        if c.sync_bn, let group {
            // Before the gradient reducer is built: BatchNorm layers synchronize over the group.
            let converted = SyncBatchNorm.convert(model, group: group)
            if isMain && verbose { print("sync-bn: \(converted) BatchNorm layer(s) share batch statistics across \(world) ranks") }
        }
        let optimizer = try TrainingSetup.makeOptimizer(c, model.trainableParameters())
        let scheduler = LRScheduler(optimizer, TrainingSetup.makeSchedule(c))
        let lossFunction = try TrainingSetup.makeLoss(c.loss, binary: setup.binary, targets: setup.targets, batchDice: c.batch_dice)
        let scaler = try GradScaler(enabled: c.precision.needsGradScaler)

        var startEpoch = 0
        var best: Double? = nil
        var bestEpoch: Int? = nil
        var ema: Double? = nil
        var history: [EpochRecord] = []
        if let loaded {
            try CheckpointStore.restore(loaded, model: model, optimizer: optimizer, scheduler: scheduler, scaler: scaler)
            startEpoch = loaded.state.epoch
            best = loaded.state.bestMetric
            bestEpoch = loaded.state.bestEpoch
            ema = loaded.state.emaDice
            history = loaded.state.history
        }
        // Only rank 0 writes logs, TensorBoard events and checkpoints.
        let logger: RunLogger? = isMain ? try RunLogger(folder: runFolder, resumedRecords: history) : nil
        if isMain {
            try AtomicFile.write(Data(try c.yaml().utf8), to: folder.config)
            try setup.planned?.writeCopies(to: runFolder)
        }
        let say: (String) -> Void = { message in logger?.log(message, console: verbose) }
        for line in options.notes + ignoredOverrides.map({ "resume: \($0)" }) + (pretrained.map { ["\($0)"] } ?? []) { say(line) }
        let ddp = try group.map { try DistributedDataParallel(model: model, group: $0) }
        let store = CheckpointStore(folder)
        func save(_ name: CheckpointName, epoch: Int) throws {
            guard let logger else { return }
            try store.save(name, model: model, optimizer: optimizer, scheduler: scheduler, scaler: scaler, epoch: epoch,
                           bestMetric: best, bestEpoch: bestEpoch, emaDice: ema, history: logger.history, config: c, spec: spec)
        }

        if case .validateOnly = start {
            let summary = try isMain ? validateFinal(model: model, setup: setup, say: say) : nil
            return TrainingSummary(epochsCompleted: startEpoch, bestMetric: best, finalValidationDice: summary?.foreground_mean.Dice, runFolder: runFolder)
        }
        if loaded != nil { say("resuming \(runFolder.path) after epoch \(startEpoch)") }
        let localBatch = try c.batchPerProcess(rank: rank, world: world)
        let globalBatch = c.global_batch_size > 0 ? c.global_batch_size : c.batch_size * world
        var batchText = world == 1 ? "batch \(localBatch)"
            : c.global_batch_size > 0 ? "global batch \(globalBatch) split over \(world) processes (\(localBatch) on rank \(rank)\(globalBatch % world == 0 ? " and every other" : "; \(globalBatch / world) or \(globalBatch / world + 1) per process"))"
            : "batch \(localBatch) per process x \(world) processes = \(globalBatch)"
        let accumulation = c.grad_accumulation
        if accumulation > 1 { batchText += ", \(accumulation) accumulated per step (\(globalBatch * accumulation) images a step)" }
        let sliceWise = (setup.trainCases.first?.shape.count ?? c.dims) > c.dims ? " (volumes slice by slice)" : ""
        say("\(c.model.rawValue) \(c.dims)D\(sliceWise): \(model.parameterCount()) parameters, \(spec.inChannels) input channel(s), " +
            "\(setup.layoutDescription); fold \(setup.foldName): \(setup.trainCases.count) training, \(setup.valCases.count) validation cases; " +
            "\(batchText), patch \(c.patch_size), \(c.optimizer.rawValue) lr \(c.lr), \(c.scheduler.rawValue) schedule, \(Torch.threads) thread(s)")

        let pipeline = AugmentationPipeline.preset(c.augmentation, dims: c.dims)
        let patchCases = setup.trainCases.map(PatchCase.init)
        let patchSampler = PatchSampler(patchSize: c.patch_size, oversampleForeground: c.oversample_foreground)
        var sampler = DistributedSampler(count: setup.trainCases.count, replicas: world, rank: rank, seed: UInt64(c.seed))
        let step = try TrainStep(model: model, ddp: ddp, optimizer: optimizer, loss: lossFunction,
                                 maxGradNorm: c.grad_clip > 0 ? c.grad_clip : .infinity, precision: c.precision, memoryFormat: memoryFormat,
                                 scaler: scaler)
        step.hessianInterval = c.hessian_interval
        step.predictions = setup.binary || setup.targets.usesRegions ? .sigmoid : .softmax

        var epochsThisRun = 0
        var lastDice: Double? = nil
        var skippedSteps = 0
        var stoppedEarly = false
        /// Early stopping: best_metric has not improved for `patience` epochs after `epoch`.
        func outOfPatience(after epoch: Int) -> Bool {
            guard c.patience > 0, let bestEpoch, epoch - bestEpoch >= c.patience else { return false }
            say("early stop after epoch \(epoch): no better \(c.best_metric == .loss ? "validation loss" : "EMA Dice") in \(epoch - bestEpoch) epochs "
                + "(patience \(c.patience)); the best was epoch \(bestEpoch), kept in \(folder.checkpoint(.best).lastPathComponent)")
            return true
        }
        var profiler = c.profile_steps > 0 ? TrainingProfile(steps: c.profile_steps, iterations: c.iterations, folder: runFolder, rank: rank, world: world, device: device) : nil
        for epoch in startEpoch..<c.epochs {
            if let stop = options.stopAfterEpochs, epochsThisRun >= stop { break }
            // A run resumed after it stopped early stops again before training more.
            if outOfPatience(after: epoch) { stoppedEarly = true; break }
            scheduler.set(step: epoch)
            model.train()
            // This rank's share of the training cases for the epoch, as DistributedSampler deals them.
            sampler.setEpoch(epoch)
            let source = TrainingBatches(cases: sampler.indices().map { patchCases[$0] }, batchSize: localBatch,
                                         sampler: patchSampler, pipeline: pipeline, device: device)
            let batches = BatchLoader(source: source, batches: c.iterations * accumulation, workers: c.workers, prefetch: 2,
                                      seed: UInt64(c.seed) &+ UInt64(rank) &* 0x9E37_79B9, epoch: epoch)
            defer { batches.stop() }
            let progress = EpochProgress(epoch: epoch + 1, epochs: c.epochs, iterations: c.iterations, enabled: verbose)
            let started = DispatchTime.now().uptimeNanoseconds
            var lossSum = 0.0, steps = 0
            for iteration in 0..<c.iterations {
                var micro: [(image: Tensor, label: Tensor)] = []
                while micro.count < accumulation, let batch = try batches.next() { micro.append((batch.image, batch.label)) }
                guard micro.count == accumulation else { break }
                try profiler?.willRun(iteration: iteration)
                let outcome = try step(microBatches: micro) // already on the device (TrainingBatches)
                if let trace = try profiler?.didRun(iteration: iteration) { say("profile of \(c.profile_steps) iteration(s): \(trace.path)") }
                if outcome.lossScaleOverflow { continue }
                guard outcome.stepped else {
                    skippedSteps += 1
                    say("epoch \(epoch + 1) iteration \(iteration + 1): loss \(outcome.loss), gradient norm \(outcome.gradNorm ?? .nan); step skipped, weights unchanged")
                    if skippedSteps >= 10 {
                        throw TrainingError("the loss was not finite in 10 steps; stopping. The last good weights are in \(folder.checkpoint(.latest).path). Lower the learning rate (key 'lr', now \(c.lr)) or check the data with `medseg data check`.")
                    }
                    continue
                }
                lossSum += outcome.loss
                steps += 1
                progress.update(iteration + 1, loss: lossSum / Double(steps), lr: optimizer.paramGroups[0].lr,
                                imagesPerSecond: Double((iteration + 1) * localBatch * accumulation) / (Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
            }
            if let trace = try profiler?.finishEpoch() { say("profile of the epoch's last iteration(s): \(trace.path)") }
            profiler = nil
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            progress.finish()
            let trained = try ddp?.sum([lossSum, Double(steps)]) ?? [lossSum, Double(steps)]
            var record = EpochRecord(epoch: epoch + 1, trainLoss: trained[1] > 0 ? trained[0] / trained[1] : .nan,
                                     learningRate: optimizer.paramGroups[0].lr, seconds: seconds,
                                     imagesPerSecond: Double(c.iterations * globalBatch * accumulation) / seconds)
            if (epoch + 1) % c.val_every == 0 || epoch + 1 == c.epochs, !setup.valCases.isEmpty {
                // Each rank validates its share of the cases; the counts are summed over ranks.
                let mine = setup.valCases.enumerated().filter { $0.offset % world == rank }.map(\.element)
                var tallies = try Validation.tally(model: model, cases: mine, spec: spec, loss: lossFunction, device: device,
                                                   windowBatch: c.val_batch_size)
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
                let metric = c.best_metric == .loss ? -v.loss : ema!
                if best == nil || metric > best! {
                    best = metric
                    bestEpoch = epoch + 1
                    try save(.best, epoch: epoch + 1)
                    say(String(format: "new best %@ %.4f", c.best_metric == .loss ? "validation loss" : "EMA Dice", c.best_metric == .loss ? v.loss : ema!))
                }
            }
            try logger?.record(record)
            say(Self.describe(record))
            try save(.latest, epoch: epoch + 1)
            if (epoch + 1) % c.save_every == 0 { try save(.epoch(epoch + 1), epoch: epoch + 1) }
            epochsThisRun += 1
        }
        let done = startEpoch + epochsThisRun
        if let ddp { try Self.checkReplicasAgree(model: model, ddp: ddp, say: say) }
        // A resumed run that had already finished keeps its final checkpoint: nothing was trained.
        let finishedBefore = epochsThisRun == 0 && folder.hasCheckpoint(.final)
        if finishedBefore && isMain { say("\(runFolder.path) had already finished\(stoppedEarly ? " (stopped early)" : " its \(c.epochs) epochs"): its checkpoints are left as they are") }
        if done >= c.epochs || stoppedEarly, options.stopAfterEpochs == nil && isMain && !finishedBefore {
            try save(.final, epoch: done)
            if !setup.valCases.isEmpty { lastDice = try validateFinal(model: model, setup: setup, say: say).foreground_mean.Dice }
            say("finished: outputs in \(runFolder.path)")
        }
        return TrainingSummary(epochsCompleted: done, bestMetric: best, finalValidationDice: lastDice, runFolder: runFolder)
    }

    /// Final validation: every validation case predicted in its raw grid and evaluated.
    private func validateFinal(model: Module, setup: TrainingSetup, say: (String) -> Void) throws -> EvaluationSummary {
        let c = setup.config
        let inference = try CaseInference(predictors: [Predictor(model: model, spec: setup.spec, mirror: c.validation_mirroring, device: device,
                                                                      precision: c.precision, window: WindowSettings(windowBatch: c.val_batch_size))],
                                          preprocessor: setup.planned?.preprocessor, previousStage: setup.previousStage)
        let summary = try Validation.writeSummary(inference: inference, cases: setup.validationFiles, dataset: setup.dataset,
                                                  folder: folder.validation, nsdTolerance: c.nsd_tolerance, saveProbabilities: c.save_probabilities)
        say("validation of fold \(setup.foldName) (\(summary.metric_per_case.count) cases\(c.validation_mirroring ? ", mirror TTA" : "")):\n"
            + summary.table(labelNames: setup.dataset.description.labelNames))
        return summary
    }

    /// Every replica must hold the same weights; compares a checksum across ranks.
    private static func checkReplicasAgree(model: Module, ddp: DistributedDataParallel, say: (String) -> Void) throws {
        let checksum = try model.parameters().reduce(0.0) { $0 + (try $1.to(dtype: .float64).abs().sum().item()) }
        let all = try ddp.group.allGather(try Tensor([checksum], shape: [1])).map { try $0.item() }
        guard all.allSatisfy({ $0 == all[0] }) else {
            throw TrainingError("the ranks' weights differ after training (checksums \(all)); gradient averaging failed")
        }
        say(String(format: "all %d ranks agree on the weights (checksum %.6f)", all.count, checksum))
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
