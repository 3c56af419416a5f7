import Foundation
import MedSegData
import MedSegModels
import Torch
import Yams

/// Everything that defines a training run. Written fully resolved to `config.yaml` in the run
/// folder; loaded from a YAML file (`--config`), a preset (`--preset`) and command-line overrides,
/// in that order. Keys use snake_case as in the seeds' configs.
public struct TrainingConfig: Codable, Equatable, Sendable {
    // Model
    @TrainingOption("The network: \(ModelName.described).") public var model = ModelName.unet
    @TrainingOption("2 or 3; follows patch_size on the command line.", commandLine: false) public var dims = 2
    @TrainingOption("Base width of the network: channels of its first level (ViT width for setr_mla).",
                    check: { ($0 ?? 1) < 1 ? "must be positive, got \($0!)" : nil })
    public var features: Int? = nil
    @TrainingOption("Levels of the network (ViT blocks for setr_mla).",
                    check: { $0.map { $0 < 2 || $0 > 32 ? "must be 2 to 32 (levels of a U-Net, blocks of a ViT), got \($0)" : nil } ?? nil })
    public var depth: Int? = nil
    @TrainingOption("Train the lower-resolution outputs too (unetpp, plainunet, mednext).") public var deep_supervision = false
    @TrainingOption("Pretrained encoder weights (.pth or .safetensors) for setr_mla's ViT-B/16.", path: true) public var encoder_weights = ""
    @TrainingOption("Fine-tune: start the whole network from these weights (a MedSeg checkpoint, .safetensors, or a PyTorch .pth such as "
                    + "nnU-Net's checkpoint_final.pth); tensors whose name and shape match are loaded, the log lists the rest.", path: true)
    public var pretrained_weights = ""
    @TrainingOption("setr_mla: keep the ViT encoder fixed (seed 002's vitb16_frozen), or train it too (--no-freeze-encoder, e.g. from scratch).")
    public var freeze_encoder = true
    @TrainingOption("mednext, primus: its published size (create_mednext's, dynamic_network_architectures' PrimusS...PrimusL).") public var model_size = ModelSize.B
    @TrainingOption("mednext: its kernel size, 3 or 5.",
                    check: { $0 < 1 || $0 > 15 || $0 % 2 == 0 ? "must be odd, from 1 to 15 (MedNeXt's are 3 and 5), got \($0)" : nil })
    public var kernel_size = 3

    // Data
    @TrainingOption("Patch size, e.g. 128,128.") public var patch_size: [Int] = [128, 128]
    @TrainingOption("Batch size (per process).", check: positive) public var batch_size = 8
    @TrainingOption("Data-parallel runs: the batch of all processes together, split over them (nnU-Net's DDP trainer; 0: batch_size is per process).",
                    check: { $0 < 0 ? "cannot be negative (0: batch_size per process), got \($0)" : nil })
    public var global_batch_size = 0
    @TrainingOption("Cross-validation fold: 0..num_folds-1, or all (-1: train and validate on every case, as nnU-Net's fold all).",
                    aliases: ["all": -1])
    public var fold = 0
    @TrainingOption("Cross-validation folds (data sets with fewer cases get one fold per case).",
                    check: { $0 < 2 ? "must be at least 2 (fold -1 trains and validates on every case), got \($0)" : nil })
    public var num_folds = 5
    @TrainingOption("Fraction of each batch forced to contain foreground (nnU-Net's 0.33).",
                    check: { (0...1).contains($0) ? nil : "must be in [0, 1], got \($0)" })
    public var oversample_foreground = 0.33
    @TrainingOption("Augmentation pipeline.") public var augmentation = AugmentationPipeline.PresetName.nnUNet
    @TrainingOption("Background threads making training batches (0: on the training thread).", check: { $0 < 0 ? "cannot be negative, got \($0)" : nil })
    public var workers = 2
    @TrainingOption("Intensity normalization: per image (zscore), by the data set's percentiles (ct), 0-1 (rgb), or none.")
    public var normalization = IntensityNormalization.zscore
    @TrainingOption("A configuration of plans.json (2d, 3d_fullres): its network, patch and batch, trained on the data set's preprocessed cases; "
                    + "empty for training on the raw images.", commandLine: false)
    public var configuration = ""
    @TrainingOption("The plans file of configuration (empty: DATASET/plans.json).", commandLine: false) public var plans = ""
    @TrainingOption("For 3d_cascade_fullres: the experiment folder of the trained 3d_lowres folds.", path: true) public var previous_stage = ""
    @TrainingOption("Also write the final validation's probabilities (for ensembles in `medseg find-best`).") public var save_probabilities = false
    @TrainingOption("Mirror test-time augmentation in the final validation (every flip: 8 passes in 3D; --no-mirror turns it off).")
    public var validation_mirroring = true

    // Optimization
    @TrainingOption("Epochs.", check: positive) public var epochs = 20
    @TrainingOption("Iterations per epoch.", check: positive) public var iterations = 50
    @TrainingOption("The optimizer; sophiag is Sophia-G (also \"sophia\"; keys rho and hessian_interval).") public var optimizer = OptimizerName.adam
    @TrainingOption("Learning rate.", check: { $0 > 0 && $0.isFinite ? nil : "must be a positive number, got \($0)" }) public var lr = 1e-3
    @TrainingOption("adam, adamw: the decay of the gradient's running mean (PyTorch's betas[0]).",
                    check: { (0..<1).contains($0) ? nil : "must be in [0, 1), got \($0)" })
    public var beta1 = 0.9
    @TrainingOption("adam, adamw: the decay of the squared gradient's running mean (betas[1]; Primus's trainers 0.98).",
                    check: { (0..<1).contains($0) ? nil : "must be in [0, 1), got \($0)" })
    public var beta2 = 0.999
    @TrainingOption("adam, adamw: the term added to the denominator (MedNeXt's trainer 1e-4).",
                    check: { $0.isFinite && $0 > 0 ? nil : "must be a positive number, got \($0)" })
    public var eps = 1e-8
    @TrainingOption("SGD momentum.", check: { !$0.isFinite ? "must be a finite number, got \($0)" : (0..<1).contains($0) ? nil : "must be in [0, 1), got \($0)" })
    public var momentum = 0.99
    @TrainingOption("SGD with Nesterov momentum.") public var nesterov = true
    @TrainingOption("sophiag: the clipping scale rho (seed 000: 0.01; betas are its 0.965, 0.99).",
                    check: { $0.isFinite && $0 > 0 ? nil : "must be a positive number, got \($0)" })
    public var rho = 0.01
    @TrainingOption("sophiag: steps between refreshes of the Gauss-Newton-Bartlett Hessian estimate (Sophia's 10).",
                    check: { $0 < 1 ? "must be at least 1, got \($0)" : nil })
    public var hessian_interval = 10
    @TrainingOption("Weight decay (L2 for sgd/adam, decoupled for adamw/sophiag).",
                    check: { !$0.isFinite ? "must be a finite number, got \($0)" : $0 < 0 ? "cannot be negative, got \($0)" : nil })
    public var weight_decay = 3e-5
    @TrainingOption("The learning-rate schedule.") public var scheduler = SchedulerName.poly
    @TrainingOption("Epochs of linear warm-up before the schedule.") public var warmup_epochs = 0
    @TrainingOption("cosine: the learning rate it ends at.", check: finite) public var eta_min = 0.0
    @TrainingOption("step: epochs between decays.", check: positive) public var step_size = 30
    @TrainingOption("step: the factor of each decay.", check: { (0...1).contains($0) ? nil : "must be in [0, 1], got \($0)" }) public var gamma = 0.1
    @TrainingOption("Gradient norm clipping (0: off).",
                    check: { !$0.isFinite ? "must be a finite number, got \($0)" : $0 < 0 ? "cannot be negative (0 turns clipping off), got \($0)" : nil })
    public var grad_clip = 12.0
    @TrainingOption("Micro-batches whose gradients add up to one optimizer step (effective batch: batch size x N, as seed 002's accumulation).",
                    check: { $0 < 1 ? "must be at least 1 (micro-batches per optimizer step), got \($0)" : nil })
    public var grad_accumulation = 1
    @TrainingOption("The loss (auto: dice_ce for classes, bce_dice for binary or region outputs).")
    public var loss = LossName.auto
    @TrainingOption("Dice over the whole batch as one volume (nnU-Net's batch_dice) rather than per sample.") public var batch_dice = true
    @TrainingOption("fp32, or mixed precision (autocast, float32 weights; fp16 with loss scaling).") public var precision = Precision.fp32
    @TrainingOption("Channels-last memory layout of weights and batches (faster convolutions on GPUs).") public var channels_last = false
    @TrainingOption("SyncBatchNorm: batch statistics over all ranks of a data-parallel run (BatchNorm models).") public var sync_bn = false
    @TrainingOption("cuDNN benchmark mode: the fastest convolution algorithms for the run's shapes (GPU).") public var cudnn_benchmark = false

    // Validation, checkpoints, run control
    @TrainingOption("Validate every N epochs.", check: positive) public var val_every = 1
    @TrainingOption("Windows per network call when validating (seed 003's val_batch_size).",
                    check: { $0 < 1 ? "must be at least 1 (windows per network call), got \($0)" : nil })
    public var val_batch_size = 1
    @TrainingOption("Tolerance in mm of the normalized surface Dice (NSD) in the final validation's summary.",
                    check: { $0.isFinite && $0 >= 0 ? nil : "must be a distance in mm, 0 or more, got \($0)" })
    public var nsd_tolerance = EvaluationSummary.defaultNSDTolerance
    @TrainingOption("Early stopping: end the run when the validation metric has not improved for N epochs (the best checkpoint is kept; 0: never).",
                    check: { $0 < 0 ? "cannot be negative (0: no early stopping), got \($0)" : nil })
    public var patience = 0
    @TrainingOption("Training iterations recorded with libtorch's profiler into RUN/profile_trace.json (Chrome trace), after one untraced "
                    + "iteration; 0: none (--profile: 5).", check: { $0 < 0 ? "cannot be negative (0: no profile), got \($0)" : nil })
    public var profile_steps = 0
    @TrainingOption("Keep a checkpoint every N epochs.", check: positive) public var save_every = 50
    @TrainingOption("What picks checkpoint_best: the EMA of validation Dice, or the validation loss.") public var best_metric = BestMetric.dice
    @TrainingOption("Random seed.") public var seed = 42
    @TrainingOption("Intra-op threads (0: all cores; under srun, SLURM_CPUS_PER_TASK).",
                    check: { $0 < 0 || $0 > TrainingConfig.maximumThreads
                        ? "must be 0 (all cores) to \(TrainingConfig.maximumThreads) on this machine of \(ProcessInfo.processInfo.activeProcessorCount) cores, got \($0)"
                        : nil })
    public var threads = 0
    /// Off by default, as in nnU-Net and PyTorch; batches are seeded either way.
    @TrainingOption("Deterministic algorithms only (cuDNN's too, without its benchmark mode; cuBLAS with a fixed workspace): "
                    + "the same seed gives bit-identical weights, at some speed on GPUs.")
    public var deterministic = false

    public init() {}

    /// The width and depth the network is built with.
    public var width: Int { features ?? model.defaultFeatures }
    public var levels: Int { depth ?? model.defaultDepth }

    /// The config with the model's defaults filled in, as a run writes it to config.yaml.
    public var resolved: TrainingConfig {
        var c = self
        c.features = width
        c.depth = levels
        return c
    }

    static let knownKeys = Set(options.map(\.key))

    /// Applies the keys of a YAML document on top of this config. Unknown keys and values of the
    /// wrong type are errors that name the key (and the file).
    public func merging(yaml text: String, source: String) throws -> TrainingConfig {
        try Self.refuseDeepNesting(text, source: source)
        let loaded: Any?
        do {
            // Composed first: a key given twice would otherwise silently take its last value.
            if let mapping = try Yams.compose(yaml: text)?.mapping {
                var seen = Set<String>()
                for (key, _) in mapping {
                    if let name = key.string, !seen.insert(name).inserted {
                        throw ConfigError("\(source): key '\(name)' twice; give each key once")
                    }
                }
            }
            loaded = try Yams.load(yaml: text)
        } catch let error as ConfigError {
            throw error
        } catch {
            throw ConfigError("\(source): not valid YAML: \(error)")
        }
        guard let loaded else { return self }
        guard let mapping = loaded as? [String: Any] else {
            throw ConfigError("\(source): expected a mapping of keys to values at the top level")
        }
        let merged = try setting(mapping, source: source)
        try merged.validate(source: source)
        return merged
    }

    /// The key most like `key`, for "did you mean" hints.
    public static func closestKey(to key: String) -> String? {
        knownKeys.min { editDistance($0, key) < editDistance($1, key) }
    }

    /// This config with `values` (by key, as config files hold them) set; unknown keys and values
    /// of the wrong type are errors that name the key. Not validated: more may follow.
    public func setting(_ values: [String: Any], source: String) throws -> TrainingConfig {
        for key in values.keys.sorted() where !Self.knownKeys.contains(key) {
            throw ConfigError("\(source): unknown key '\(key)'\(Self.closestKey(to: key).map { " (did you mean '\($0)'?)" } ?? "")")
        }
        // Re-encode the current config, overlay the keys, decode: type errors name the key.
        var base = try self.mapping()
        for (k, v) in values { base[k] = AnyCodable(v) }
        do {
            return try Self.decoding(base)
        } catch let DecodingError.typeMismatch(type, context), let DecodingError.valueNotFound(type, context) {
            // An option's value is read alone: a word where a number belongs is "not found" there.
            let key = context.codingPath.first?.stringValue ?? "?"
            throw ConfigError("\(source): key '\(key)' has a value of the wrong type (expected \(type)): \(values[key].map { "\($0)" } ?? "")")
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.count == 1 {
            // A value outside a key's choices.
            let key = context.codingPath[0].stringValue
            let choices = Self.option(key)?.choices.map { "; choose one of \($0.joined(separator: ", "))" } ?? ""
            throw ConfigError("\(source): key '\(key)': '\(values[key].map { "\($0)" } ?? "")' is not allowed\(choices)")
        } catch let error as DecodingError {
            throw ConfigError("\(source): \(error)")
        }
    }

    /// A settings file is flat: lists and mappings nested deeper than this are refused before the
    /// YAML parser, whose recursion a 100,000-deep list overflows.
    static let maximumNesting = 32

    static func refuseDeepNesting(_ text: String, source: String) throws {
        var depth = 0, deepest = 0, quote: Character? = nil
        for c in text {
            if let q = quote { if c == q { quote = nil }; continue }
            switch c {
            case "\"", "'": quote = c
            case "[", "{": depth += 1; deepest = max(deepest, depth)
            case "]", "}": depth = max(0, depth - 1)
            case "\n": quote = nil
            default: break
            }
            if deepest > maximumNesting { break }
        }
        // Block collections nest by indentation.
        var indent = 0
        for line in text.components(separatedBy: "\n") {
            indent = max(indent, line.prefix(while: { $0 == " " || $0 == "-" }).count)
        }
        if deepest > maximumNesting || indent > 2 * maximumNesting {
            throw ConfigError("\(source): nested too deep (more than \(maximumNesting) levels); a settings file holds keys with plain values and short lists")
        }
    }

    /// The batch of process `rank` of `world`: batch_size, or with a global batch its share (the
    /// first `global % world` ranks take one more, as nnU-Net splits it).
    public func batchPerProcess(rank: Int, world: Int) throws -> Int {
        guard global_batch_size > 0 else { return batch_size }
        guard global_batch_size >= world else {
            throw ConfigError("key 'global_batch_size': \(global_batch_size) cannot be split over \(world) processes (each needs at least 1)")
        }
        return global_batch_size / world + (rank < global_batch_size % world ? 1 : 0)
    }

    /// More intra-op threads than this only makes a machine thrash (thousands would be spawned).
    public static var maximumThreads: Int { max(64, 4 * ProcessInfo.processInfo.activeProcessorCount) }

    /// Checks each option's value against its declaration, then the options that depend on each
    /// other; the message names the key.
    public func validate(source: String = "config") throws {
        func fail(_ key: String, _ why: String) throws -> Never { throw ConfigError("\(source): key '\(key)': \(why)") }
        let values = Dictionary(uniqueKeysWithValues: Self.children(of: self))
        for (key, option) in Self.options {
            if let problem = option.problem(of: values[key]!) { try fail(key, problem) }
        }
        if ![2, 3].contains(dims) { try fail("dims", "must be 2 or 3, got \(dims)") }
        if patch_size.count != dims { try fail("patch_size", "needs \(dims) values for dims \(dims), got \(patch_size)") }
        // A plan may give a thin axis (a median of 7 slices) a patch as thin, with no pooling along it.
        let smallest = configuration.isEmpty ? 8 : 1
        if patch_size.contains(where: { $0 < smallest }) { try fail("patch_size", "every value must be at least \(smallest), got \(patch_size)") }
        if width < 1 { try fail("features", "must be positive, got \(width)") }
        if levels < 2 || levels > 32 { try fail("depth", "must be 2 to 32 (levels of a U-Net, blocks of a ViT), got \(levels)") }
        if fold < -1 || fold >= num_folds { try fail("fold", "must be 0 to \(num_folds - 1), or -1 for all, got \(fold)") }
        if deterministic && cudnn_benchmark {
            try fail("cudnn_benchmark", "cuDNN's benchmark mode picks algorithms by timing them, which deterministic: true rules out; choose one")
        }
    }

    /// The declared options, by key, in the order the config declares them.
    public static let options: [(key: String, option: any AnyTrainingOption)] =
        children(of: TrainingConfig()).map { ($0.key, $0.value as! any AnyTrainingOption) }

    /// The option of `key`, if the config has one.
    public static func option(_ key: String) -> (any AnyTrainingOption)? { options.first { $0.key == key }?.option }

    /// Each stored option with its key (the property's name, without the wrapper's underscore).
    private static func children(of config: TrainingConfig) -> [(key: String, value: Any)] {
        Mirror(reflecting: config).children.compactMap { child in child.label.map { (String($0.dropFirst()), child.value) } }
    }

    public func yaml() throws -> String { try YAMLEncoder().encode(self) }

    /// Every key with its value, as config.yaml holds them.
    func mapping() throws -> [String: AnyCodable] {
        try YAMLDecoder().decode([String: AnyCodable].self, from: try YAMLEncoder().encode(self))
    }

    static func decoding(_ mapping: [String: AnyCodable]) throws -> TrainingConfig {
        try YAMLDecoder().decode(TrainingConfig.self, from: try YAMLEncoder().encode(mapping))
    }

    /// The keys among `keys` whose values differ between two configs, with both values as YAML.
    public static func differences(requested: TrainingConfig, saved: TrainingConfig, keys: Set<String>) throws
        -> [(key: String, requested: String, saved: String)] {
        func values(_ c: TrainingConfig) throws -> [String: String] { try c.mapping().mapValues { "\($0.value)" } }
        let a = try values(requested), b = try values(saved)
        return keys.sorted().compactMap { key in
            let (x, y) = (a[key] ?? "none", b[key] ?? "none")
            return x == y ? nil : (key, x, y)
        }
    }
}

/// Checks shared by several options' declarations.
@Sendable private func positive(_ value: Int) -> String? { value < 1 ? "must be positive, got \(value)" : nil }
@Sendable private func finite(_ value: Double) -> String? { value.isFinite ? nil : "must be a finite number, got \(value)" }

public struct ConfigError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Levenshtein distance, for "did you mean" hints.
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    var row = Array(0...b.count)
    for i in 1...max(a.count, 1) where !a.isEmpty {
        var previous = row[0]
        row[0] = i
        for j in 1...max(b.count, 1) where !b.isEmpty {
            let current = row[j]
            row[j] = min(row[j] + 1, row[j - 1] + 1, previous + (a[i - 1] == b[j - 1] ? 0 : 1))
            previous = current
        }
    }
    return row[b.count]
}

/// A YAML scalar, sequence or mapping carried through re-encoding.
struct AnyCodable: Codable {
    let value: Any
    init(_ value: Any) { self.value = value }

    init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let v = try? c.decode(Bool.self) { value = v }
        else if let v = try? c.decode(Int.self) { value = v }
        else if let v = try? c.decode(Double.self) { value = v }
        else if let v = try? c.decode(String.self) { value = v }
        else if let v = try? c.decode([AnyCodable].self) { value = v.map(\.value) }
        else if let v = try? c.decode([String: AnyCodable].self) { value = v.mapValues(\.value) }
        else { value = NSNull() }
    }

    func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch value {
        case let v as Bool: try c.encode(v)
        case let v as Int: try c.encode(v)
        case let v as Double: try c.encode(v)
        case let v as String: try c.encode(v)
        case let v as [Any]: try c.encode(v.map(AnyCodable.init))
        case let v as [String: Any]: try c.encode(v.mapValues(AnyCodable.init))
        default: try c.encodeNil()
        }
    }
}
