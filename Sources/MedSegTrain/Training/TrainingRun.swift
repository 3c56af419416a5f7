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
                            + "resume from this run's own checkpoint, or train the other model into its own \(Setting.named("out"))")
    }

    /// What the phases of one invocation share: settings, data, this process's place, the
    /// components being trained, the progress so far and where everything is said and saved.
    private final class Session {
        let config: TrainingConfig
        let setup: TrainingSetup
        let rank: Int, world: Int
        let components: TrainingComponents
        let loss: any SegmentationLoss
        let ddp: DistributedDataParallel?
        let logger: RunLogger
        let store: CheckpointStore
        let memoryFormat: MemoryFormat?
        var progress: TrainingProgress
        /// What epochs draw their batches from and step with, made once training begins: this
        /// process's batch, all processes' together, ...
        var localBatch = 0, globalBatch = 0
        var patchCases: [PatchCase] = []
        var patchSampler: PatchSampler?
        var pipeline: AugmentationPipeline?
        var sampler: DistributedSampler?
        var step: TrainStep?
        /// Profiles the first epoch of this invocation (profile_steps > 0).
        var profiler: TrainingProfile?
        /// Steps skipped for a loss that was not finite.
        var skippedSteps = 0

        init(config: TrainingConfig, setup: TrainingSetup, rank: Int, world: Int, components: TrainingComponents, loss: any SegmentationLoss,
             ddp: DistributedDataParallel?, logger: RunLogger, store: CheckpointStore, memoryFormat: MemoryFormat?, progress: TrainingProgress) {
            self.config = config; self.setup = setup; self.rank = rank; self.world = world; self.components = components; self.loss = loss
            self.ddp = ddp; self.logger = logger; self.store = store; self.memoryFormat = memoryFormat; self.progress = progress
        }

        var isMain: Bool { rank == 0 }
        func say(_ message: String) { logger.log(message) }
    }

    @discardableResult
    public func run() throws -> TrainingSummary {
        try config.validate()
        if config.threads > 0 { Torch.threads = config.threads }
        let (c, loaded) = try resolveStart()
        Torch.manualSeed(UInt64(c.seed))
        try Torch.setDeterministic(c.deterministic)
        let session = try prepare(c, loaded: loaded)
        if case .validateOnly = start {
            let summary = try session.isMain ? validateFinal(session) : nil
            return report(session, finalDice: summary?.foreground_mean.Dice)
        }
        if loaded != nil { session.say("resuming \(runFolder.path) after epoch \(session.progress.epoch)") }
        try prepareEpochs(session)
        session.say(describeRun(session))
        let startEpoch = session.progress.epoch
        var stoppedEarly = false, lastDice: Double? = nil
        for epoch in startEpoch..<max(startEpoch, c.epochs) {
            if let stop = options.stopAfterEpochs, epoch - startEpoch >= stop { break }
            // A run resumed after it stopped early stops again before training more.
            if outOfPatience(session, after: epoch) { stoppedEarly = true; break }
            var record = try trainEpoch(session, epoch: epoch)
            if (epoch + 1) % c.val_every == 0 || epoch + 1 == c.epochs, !session.setup.valCases.isEmpty {
                lastDice = try validate(session, epoch: epoch, into: &record)
            }
            try endEpoch(session, record)
        }
        let trainedNow = session.progress.epoch - startEpoch
        if let ddp = session.ddp { try Self.checkReplicasAgree(model: session.components.model, ddp: ddp, say: session.say) }
        // A resumed run that had already finished keeps its final checkpoint: nothing was trained.
        let finishedBefore = trainedNow == 0 && folder.hasCheckpoint(.final)
        if finishedBefore && session.isMain {
            session.say("\(runFolder.path) had already finished\(stoppedEarly ? " (stopped early)" : " its \(c.epochs) epochs"): its checkpoints are left as they are")
        }
        if session.progress.epoch >= c.epochs || stoppedEarly, options.stopAfterEpochs == nil && session.isMain && !finishedBefore {
            try save(session, .final)
            if !session.setup.valCases.isEmpty { lastDice = try validateFinal(session).foreground_mean.Dice }
            session.say("finished: outputs in \(runFolder.path)")
        }
        return report(session, finalDice: lastDice)
    }

    private func report(_ session: Session, finalDice: Double?) -> TrainingSummary {
        TrainingSummary(epochsCompleted: session.progress.epoch, bestMetric: session.progress.bestMetric, finalValidationDice: finalDice, runFolder: runFolder)
    }

    /// Joins the process group, checks the data, builds the components (restored from `loaded`
    /// on resume), and only then writes into the run folder: a run that cannot start leaves
    /// nothing behind.
    private func prepare(_ c: TrainingConfig, loaded: Checkpoint.Loaded?) throws -> Session {
        let rank = options.distributed?.rank ?? 0, world = options.distributed?.worldSize ?? 1
        let group = try options.distributed.map { try $0.joinProcessGroup(timeout: options.distributedTimeout, nccl: device.isCUDA) }
        // Only rank 0 prints, and writes logs, TensorBoard events and checkpoints.
        let logger = RunLogger(console: options.verbose && rank == 0)
        let setup = try TrainingSetup(config: c, datasetFolder: datasetFolder, mayPreprocess: world == 1, say: { logger.log($0) })
        let (model, pretrained) = try prepareModel(c, setup: setup, loaded: loaded, group: group, logger: logger)
        let optimizer = try TrainingSetup.makeOptimizer(c, model.trainableParameters())
        let scheduler = LRScheduler(optimizer, TrainingSetup.makeSchedule(c))
        let loss = try TrainingSetup.makeLoss(c.loss, binary: setup.binary, targets: setup.targets, batchDice: c.batch_dice)
        let components = TrainingComponents(model: model, optimizer: optimizer, scheduler: scheduler,
                                            scaler: try GradScaler(enabled: c.precision.needsGradScaler))
        var progress = TrainingProgress()
        if let loaded {
            try components.restore(loaded)
            progress = loaded.state.progress
        }
        if rank == 0 {
            try logger.open(folder: runFolder, resumedRecords: progress.history)
            try AtomicFile.write(Data(try c.yaml().utf8), to: folder.config)
            try setup.planned?.writeCopies(to: runFolder)
        }
        for line in options.notes + ignoredOverrides.map({ "resume: \($0)" }) + (pretrained.map { ["\($0)"] } ?? []) { logger.log(line) }
        return Session(config: c, setup: setup, rank: rank, world: world, components: components, loss: loss,
                       ddp: try group.map { try DistributedDataParallel(model: model, group: $0) }, logger: logger, store: CheckpointStore(folder),
                       memoryFormat: c.channels_last ? .channelsLast(rank: c.dims + 2) : nil, progress: progress)
    }

    /// The network: built from the setup, with another run's weights for fine-tuning (a resumed
    /// run has its own), SETR's encoder weights, on the device, synchronized BatchNorm across ranks.
    private func prepareModel(_ c: TrainingConfig, setup: TrainingSetup, loaded: Checkpoint.Loaded?, group: ProcessGroup?,
                              logger: RunLogger) throws -> (Module, PretrainedWeights.Report?) {
        let model = try ModelFactory.make(setup.network)
        let pretrained = try c.pretrained_weights.isEmpty || loaded != nil ? nil
            : PretrainedWeights.load(URL(fileURLWithPath: c.pretrained_weights), into: model)
        if options.distributed?.rank ?? 0 == 0 {
            try FileManager.default.createDirectory(at: runFolder, withIntermediateDirectories: true)
            try AtomicFile.write(Data(datasetFolder.standardizedFileURL.path.utf8), to: folder.datasetPath)
        }
        if c.model == .setr_mla && c.freeze_encoder && c.encoder_weights.isEmpty && c.pretrained_weights.isEmpty && loaded == nil {
            // A random encoder that never trains: almost certainly not what was meant.
            logger.log("warning: setr_mla's encoder is frozen but has no pretrained weights, so it stays random; give them with \(Setting.named("encoder_weights")), "
                       + "or train the encoder too with \(Setting.named("freeze_encoder", value: "false"))")
        }
        if !c.encoder_weights.isEmpty && loaded == nil {
            guard let setr = model as? SETRMLA else {
                throw ConfigError("key 'encoder_weights': model '\(c.model.rawValue)' has no pretrained encoder to load")
            }
            logger.log("encoder weights \(c.encoder_weights):\n\(try setr.loadEncoderWeights(url: URL(fileURLWithPath: c.encoder_weights)))")
        }
        try model.to(device: device)
        if c.channels_last { try model.to(memoryFormat: .channelsLast(rank: c.dims + 2)) }
        if device.isCUDA { Torch.cudnnBenchmark = c.cudnn_benchmark }
        if c.sync_bn, let group {
            // Before the gradient reducer is built: BatchNorm layers synchronize over the group.
            let converted = SyncBatchNorm.convert(model, group: group)
            logger.log("sync-bn: \(converted) BatchNorm layer(s) share batch statistics across \(options.distributed?.worldSize ?? 1) ranks")
        }
        return (model, pretrained)
    }

    /// What every epoch draws batches from and steps with, made once as training begins.
    private func prepareEpochs(_ s: Session) throws {
        let c = s.config
        s.localBatch = try c.batchPerProcess(rank: s.rank, world: s.world)
        s.globalBatch = c.global_batch_size > 0 ? c.global_batch_size : c.batch_size * s.world
        s.pipeline = AugmentationPipeline.preset(c.augmentation, dims: c.dims)
        s.patchCases = s.setup.trainCases.map(PatchCase.init)
        s.patchSampler = PatchSampler(patchSize: c.patch_size, oversampleForeground: c.oversample_foreground)
        s.sampler = DistributedSampler(count: s.setup.trainCases.count, replicas: s.world, rank: s.rank, seed: UInt64(c.seed))
        let step = try TrainStep(model: s.components.model, ddp: s.ddp, optimizer: s.components.optimizer, loss: s.loss,
                                 maxGradNorm: c.grad_clip > 0 ? c.grad_clip : .infinity, precision: c.precision, memoryFormat: s.memoryFormat,
                                 scaler: s.components.scaler)
        step.hessianInterval = c.hessian_interval
        step.predictions = s.setup.binary || s.setup.targets.usesRegions ? .sigmoid : .softmax
        s.step = step
        s.profiler = c.profile_steps > 0
            ? TrainingProfile(steps: c.profile_steps, iterations: c.iterations, folder: runFolder, rank: s.rank, world: s.world, device: device) : nil
    }

    /// The run's first line: network, data, batch and schedule.
    private func describeRun(_ s: Session) -> String {
        let c = s.config
        let (localBatch, globalBatch) = (s.localBatch, s.globalBatch)
        var batchText = s.world == 1 ? "batch \(localBatch)"
            : c.global_batch_size > 0 ? "global batch \(globalBatch) split over \(s.world) processes (\(localBatch) on rank \(s.rank)\(globalBatch % s.world == 0 ? " and every other" : "; \(globalBatch / s.world) or \(globalBatch / s.world + 1) per process"))"
            : "batch \(localBatch) per process x \(s.world) processes = \(globalBatch)"
        if c.grad_accumulation > 1 { batchText += ", \(c.grad_accumulation) accumulated per step (\(globalBatch * c.grad_accumulation) images a step)" }
        let sliceWise = (s.setup.trainCases.first?.shape.count ?? c.dims) > c.dims ? " (volumes slice by slice)" : ""
        return "\(c.model.rawValue) \(c.dims)D\(sliceWise): \(s.components.model.parameterCount()) parameters, \(s.setup.spec.inChannels) input channel(s), " +
            "\(s.setup.layoutDescription); fold \(s.setup.foldName): \(s.setup.trainCases.count) training, \(s.setup.valCases.count) validation cases; " +
            "\(batchText), patch \(c.patch_size), \(c.optimizer.rawValue) lr \(c.lr), \(c.scheduler.rawValue) schedule, \(Torch.threads) thread(s)"
    }

    /// Early stopping: best_metric has not improved for `patience` epochs after `epoch`.
    private func outOfPatience(_ s: Session, after epoch: Int) -> Bool {
        let c = s.config
        guard let waited = s.progress.epochsWithoutImprovement(after: epoch, patience: c.patience) else { return false }
        s.say("early stop after epoch \(epoch): no better \(c.best_metric == .loss ? "validation loss" : "EMA Dice") in \(waited) epochs "
              + "(patience \(c.patience)); the best was epoch \(s.progress.bestEpoch!), kept in \(folder.checkpoint(.best).lastPathComponent)")
        return true
    }

    /// One epoch of `iterations` optimizer steps over this rank's share of the training cases;
    /// its record (train loss over all ranks, rate, time).
    private func trainEpoch(_ s: Session, epoch: Int) throws -> EpochRecord {
        let c = s.config, components = s.components
        let (localBatch, globalBatch) = (s.localBatch, s.globalBatch)
        let accumulation = c.grad_accumulation
        let step = s.step!
        components.scheduler.set(step: epoch)
        components.model.train()
        // This rank's share of the training cases for the epoch, as DistributedSampler deals them.
        s.sampler!.setEpoch(epoch)
        let source = TrainingBatches(cases: s.sampler!.indices().map { s.patchCases[$0] }, batchSize: localBatch,
                                     sampler: s.patchSampler!, pipeline: s.pipeline!, device: device)
        let batches = BatchLoader(source: source, batches: c.iterations * accumulation, workers: c.workers, prefetch: 2,
                                  seed: UInt64(c.seed) &+ UInt64(s.rank) &* 0x9E37_79B9, epoch: epoch)
        defer { batches.stop() }
        var profiler = s.profiler
        s.profiler = nil
        let bar = ProgressBar(label: "epoch \(epoch + 1)/\(c.epochs)", enabled: s.logger.console, plainEvery: 30)
        let started = DispatchTime.now().uptimeNanoseconds
        var lossSum = 0.0, steps = 0
        for iteration in 0..<c.iterations {
            var micro: [(image: Tensor, label: Tensor)] = []
            while micro.count < accumulation, let batch = try batches.next() { micro.append((batch.image, batch.label)) }
            guard micro.count == accumulation else { break }
            try profiler?.willRun(iteration: iteration)
            let outcome = try step(microBatches: micro) // already on the device (TrainingBatches)
            if let trace = try profiler?.didRun(iteration: iteration) { s.say("profile of \(c.profile_steps) iteration(s): \(trace.path)") }
            if outcome.lossScaleOverflow { continue }
            guard outcome.stepped else {
                s.skippedSteps += 1
                s.say("epoch \(epoch + 1) iteration \(iteration + 1): loss \(outcome.loss), gradient norm \(outcome.gradNorm ?? .nan); step skipped, weights unchanged")
                if s.skippedSteps >= 10 {
                    throw TrainingError("the loss was not finite in 10 steps; stopping. The last good weights are in \(folder.checkpoint(.latest).path). Lower the learning rate (key 'lr', now \(c.lr)) or check the data with `medseg data check`.")
                }
                continue
            }
            lossSum += outcome.loss
            steps += 1
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            bar.update(iteration + 1, c.iterations, detail: String(format: "loss %.4f lr %.2e %.1f img/s ETA %.0fs", lossSum / Double(steps),
                                                                   components.optimizer.paramGroups[0].lr,
                                                                   Double((iteration + 1) * localBatch * accumulation) / elapsed,
                                                                   elapsed / Double(iteration + 1) * Double(c.iterations - iteration - 1)))
        }
        if let trace = try profiler?.finishEpoch() { s.say("profile of the epoch's last iteration(s): \(trace.path)") }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        bar.finish()
        let trained = try s.ddp?.sum([lossSum, Double(steps)]) ?? [lossSum, Double(steps)]
        return EpochRecord(epoch: epoch + 1, trainLoss: trained[1] > 0 ? trained[0] / trained[1] : .nan,
                           learningRate: components.optimizer.paramGroups[0].lr, seconds: seconds,
                           imagesPerSecond: Double(c.iterations * globalBatch * accumulation) / seconds)
    }

    /// Validation after `epoch` (0-based): each rank predicts its share of the cases, the counts
    /// are summed over ranks, the record and the progress take the result, a new best is saved.
    /// The mean Dice.
    private func validate(_ s: Session, epoch: Int, into record: inout EpochRecord) throws -> Double {
        let c = s.config
        let mine = s.setup.valCases.enumerated().filter { $0.offset % s.world == s.rank }.map(\.element)
        var tallies = try Validation.tally(model: s.components.model, cases: mine, spec: s.setup.spec, loss: s.loss, device: device,
                                           windowBatch: c.val_batch_size)
        if let ddp = s.ddp { tallies = Validation.Tallies(flattened: try ddp.sum(tallies.flattened)) }
        let v = tallies.result
        record.valLoss = v.loss
        record.valDice = v.meanDice
        record.valDicePerClass = v.dicePerClass
        record.valIoU = v.meanIoU
        record.valAccuracy = v.accuracy
        let isBest = s.progress.validated(epoch: epoch + 1, meanDice: v.meanDice, loss: v.loss, best: c.best_metric)
        record.emaDice = s.progress.emaDice
        if isBest {
            s.progress.epoch = epoch + 1
            try save(s, .best)
            s.say(String(format: "new best %@ %.4f", c.best_metric == .loss ? "validation loss" : "EMA Dice", c.best_metric == .loss ? v.loss : s.progress.emaDice!))
        }
        return v.meanDice
    }

    /// Logs the epoch's record and writes the latest (and every save_every-th) checkpoint.
    private func endEpoch(_ s: Session, _ record: EpochRecord) throws {
        try s.logger.record(record)
        s.progress.history = s.logger.history
        s.progress.epoch = record.epoch
        s.say(Self.describe(record))
        try save(s, .latest)
        if record.epoch % s.config.save_every == 0 { try save(s, .epoch(record.epoch)) }
    }

    /// Rank 0 writes checkpoints.
    private func save(_ s: Session, _ name: CheckpointName) throws {
        guard s.isMain else { return }
        try s.store.save(name, s.components, progress: s.progress, config: s.config, spec: s.setup.spec)
    }

    /// Final validation: every validation case predicted in its raw grid and evaluated.
    private func validateFinal(_ s: Session) throws -> EvaluationSummary {
        let c = s.config, setup = s.setup
        let inference = try CaseInference(predictors: [Predictor(model: s.components.model, spec: setup.spec, mirror: c.validation_mirroring, device: device,
                                                                      precision: c.precision, window: WindowSettings(windowBatch: c.val_batch_size))],
                                          preprocessor: setup.planned?.preprocessor, previousStage: setup.previousStage)
        let summary = try Validation.writeSummary(inference: inference, cases: setup.validationFiles, dataset: setup.dataset,
                                                  folder: folder.validation, nsdTolerance: c.nsd_tolerance, saveProbabilities: c.save_probabilities)
        s.say("validation of fold \(setup.foldName) (\(summary.metric_per_case.count) cases\(c.validation_mirroring ? ", mirror TTA" : "")):\n"
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
