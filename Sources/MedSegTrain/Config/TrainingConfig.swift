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
    public var model = ModelName.unet
    public var dims = 2
    /// Base width: channels of the first level (ViT width for setr_mla); nil: the model's published one.
    public var features: Int?
    /// Levels of the network (ViT blocks for setr_mla); nil: the model's default.
    public var depth: Int?
    public var deep_supervision = false
    /// Pretrained encoder weights (.pth or .safetensors) for models with one (setr_mla's ViT-B/16).
    public var encoder_weights = ""
    /// Fine-tuning: the weights the whole network starts from (a MedSeg checkpoint, .safetensors,
    /// or a PyTorch .pth such as nnU-Net's checkpoint_final.pth); tensors match by name and shape.
    public var pretrained_weights = ""
    /// Keep the pretrained encoder fixed (setr_mla; seed 002's `vitb16_frozen`); false trains it
    /// too (seed 002's `default`, from scratch when there are no weights).
    public var freeze_encoder = true
    /// mednext: its published size, S, B, M or L (`create_mednext`'s), and its kernel (3 or 5).
    public var model_size = ModelSize.B
    public var kernel_size = 3

    // Data
    public var patch_size: [Int] = [128, 128]
    public var batch_size = 8
    /// Data-parallel runs: the batch of all processes together, split over them (nnU-Net's DDP
    /// trainer, seed 001's --dbs); 0: batch_size is per process.
    public var global_batch_size = 0
    /// Cross-validation fold, or -1 for "all" (train on every case, validate on them too, as nnU-Net's fold all).
    public var fold = 0
    public var num_folds = 5
    /// Fraction of each batch forced to contain foreground (nnU-Net 0.33).
    public var oversample_foreground = 0.33
    public var augmentation = AugmentationPipeline.PresetName.nnUNet
    public var workers = 2
    /// Intensity normalization: "zscore" (per image), "ct" (dataset percentiles), "rgb" (0-1), "none".
    public var normalization = IntensityNormalization.zscore
    /// A configuration of plans.json ("2d", "3d_fullres"): its network, patch and batch, trained on
    /// the data set's preprocessed cases; empty for training on the raw images.
    public var configuration = ""
    /// The plans file of `configuration` (empty: DATASET/plans.json).
    public var plans = ""
    /// For the cascade's 3d_cascade_fullres: the experiment folder of its trained 3d_lowres folds.
    public var previous_stage = ""
    /// Also write the softmax of each final validation case (for ensembling in `medseg find-best`).
    public var save_probabilities = false
    /// Mirror test-time augmentation in the final validation (every flip: 8 passes in 3D).
    public var validation_mirroring = true

    // Optimization
    public var epochs = 20
    public var iterations = 50
    public var optimizer = OptimizerName.adam
    public var lr = 1e-3
    public var momentum = 0.99
    public var nesterov = true
    /// sophiag: the clipping scale rho (seed 000: 0.01; betas are its 0.965, 0.99) and how often
    /// (in steps) the Gauss-Newton-Bartlett Hessian estimate is refreshed (Sophia's 10).
    public var rho = 0.01
    public var hessian_interval = 10
    public var weight_decay = 3e-5
    public var scheduler = SchedulerName.poly
    public var warmup_epochs = 0
    public var eta_min = 0.0
    public var step_size = 30
    public var gamma = 0.1
    public var grad_clip = 12.0
    /// Micro-batches whose gradients add up to one optimizer step (an effective batch of
    /// batch_size x grad_accumulation per process, as seed 002's accumulation).
    public var grad_accumulation = 1
    public var loss = LossName.auto
    /// Dice over the whole batch as one volume (nnU-Net's batch_dice) rather than per sample.
    public var batch_dice = true
    /// fp32, or mixed precision: bf16 or fp16 autocast (fp16 with loss scaling), float32 weights.
    public var precision = Precision.fp32
    /// Channels-last memory layout of weights and batches (faster convolutions on GPUs).
    public var channels_last = false
    /// Batch statistics over all ranks of a data-parallel run (SyncBatchNorm) for BatchNorm models.
    public var sync_bn = false
    /// cuDNN picks the fastest convolution algorithms for the run's shapes (GPU).
    public var cudnn_benchmark = false

    // Validation, checkpoints, run control
    public var val_every = 1
    /// Windows per network call when validating (seed 003's val_batch_size).
    public var val_batch_size = 1
    /// Tolerance (mm) of the normalized surface Dice in the final validation's summary.
    public var nsd_tolerance = EvaluationSummary.defaultNSDTolerance
    /// Early stopping: the run ends when best_metric has not improved for this many epochs
    /// (the best checkpoint is kept, the final steps run); 0: never.
    public var patience = 0
    /// Training iterations recorded with libtorch's profiler into profile_trace.json (Chrome's
    /// trace format, for chrome://tracing or Perfetto), after one untraced iteration; 0: none.
    public var profile_steps = 0
    public var save_every = 50
    /// Metric that picks checkpoint_best: "dice" (EMA of validation Dice) or "loss" (validation loss).
    public var best_metric = BestMetric.dice
    public var seed = 42
    public var threads = 0
    /// Deterministic algorithms only (cuDNN's too, without its benchmark mode; cuBLAS with a fixed
    /// workspace): the same seed gives bit-identical weights, at some speed on GPUs. Off by
    /// default, as in nnU-Net and PyTorch. Batches are seeded either way.
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

    static let knownKeys: Set<String> = {
        let mirror = Mirror(reflecting: TrainingConfig())
        return Set(mirror.children.compactMap(\.label))
    }()

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
        for key in mapping.keys.sorted() where !Self.knownKeys.contains(key) {
            let suggestion = Self.knownKeys.min { editDistance($0, key) < editDistance($1, key) }.map { " (did you mean '\($0)'?)" } ?? ""
            throw ConfigError("\(source): unknown key '\(key)'\(suggestion)")
        }
        // Re-encode the current config, overlay the file's keys, decode: type errors name the key.
        var base = try self.mapping()
        for (k, v) in mapping { base[k] = AnyCodable(v) }
        do {
            let merged = try Self.decoding(base)
            try merged.validate(source: source)
            return merged
        } catch let DecodingError.typeMismatch(type, context) {
            let key = context.codingPath.first?.stringValue ?? "?"
            throw ConfigError("\(source): key '\(key)' has a value of the wrong type (expected \(type)): \(mapping[key].map { "\($0)" } ?? "")")
        } catch let DecodingError.dataCorrupted(context) where context.codingPath.count == 1 {
            // A value outside a key's choices.
            let key = context.codingPath[0].stringValue
            let choices = TrainingChoices.byKey[key].map { "; choose one of \($0.joined(separator: ", "))" } ?? ""
            throw ConfigError("\(source): key '\(key)': '\(mapping[key].map { "\($0)" } ?? "")' is not allowed\(choices)")
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

    /// Checks ranges and choices; the message names the key.
    public func validate(source: String = "config") throws {
        func fail(_ key: String, _ why: String) throws -> Never { throw ConfigError("\(source): key '\(key)': \(why)") }
        if ![2, 3].contains(dims) { try fail("dims", "must be 2 or 3, got \(dims)") }
        if patch_size.count != dims { try fail("patch_size", "needs \(dims) values for dims \(dims), got \(patch_size)") }
        // A plan may give a thin axis (a median of 7 slices) a patch as thin, with no pooling along it.
        let smallest = configuration.isEmpty ? 8 : 1
        if patch_size.contains(where: { $0 < smallest }) { try fail("patch_size", "every value must be at least \(smallest), got \(patch_size)") }
        if width < 1 { try fail("features", "must be positive, got \(width)") }
        if levels < 2 || levels > 32 { try fail("depth", "must be 2 to 32 (levels of a U-Net, blocks of a ViT), got \(levels)") }
        if kernel_size < 1 || kernel_size > 15 || kernel_size % 2 == 0 { try fail("kernel_size", "must be odd, from 1 to 15 (MedNeXt's are 3 and 5), got \(kernel_size)") }
        if batch_size < 1 { try fail("batch_size", "must be positive, got \(batch_size)") }
        if global_batch_size < 0 { try fail("global_batch_size", "cannot be negative (0: batch_size per process), got \(global_batch_size)") }
        if epochs < 1 { try fail("epochs", "must be positive, got \(epochs)") }
        if iterations < 1 { try fail("iterations", "must be positive, got \(iterations)") }
        if !(lr > 0) || !lr.isFinite { try fail("lr", "must be a positive number, got \(lr)") }
        for (key, value) in [("momentum", momentum), ("weight_decay", weight_decay), ("eta_min", eta_min), ("grad_clip", grad_clip)]
        where !value.isFinite {
            try fail(key, "must be a finite number, got \(value)")
        }
        if !(0..<1).contains(momentum) { try fail("momentum", "must be in [0, 1), got \(momentum)") }
        if !(rho.isFinite && rho > 0) { try fail("rho", "must be a positive number, got \(rho)") }
        if hessian_interval < 1 { try fail("hessian_interval", "must be at least 1, got \(hessian_interval)") }
        if weight_decay < 0 { try fail("weight_decay", "cannot be negative, got \(weight_decay)") }
        if num_folds < 2 { try fail("num_folds", "must be at least 2 (fold -1 trains and validates on every case), got \(num_folds)") }
        if fold < -1 || fold >= num_folds { try fail("fold", "must be 0 to \(num_folds - 1), or -1 for all, got \(fold)") }
        if threads < 0 || threads > Self.maximumThreads {
            try fail("threads", "must be 0 (all cores) to \(Self.maximumThreads) on this machine of \(ProcessInfo.processInfo.activeProcessorCount) cores, got \(threads)")
        }
        if !(0...1).contains(oversample_foreground) { try fail("oversample_foreground", "must be in [0, 1], got \(oversample_foreground)") }
        if val_every < 1 { try fail("val_every", "must be positive, got \(val_every)") }
        if save_every < 1 { try fail("save_every", "must be positive, got \(save_every)") }
        if workers < 0 { try fail("workers", "cannot be negative, got \(workers)") }
        if step_size < 1 { try fail("step_size", "must be positive, got \(step_size)") }
        if !(0...1).contains(gamma) { try fail("gamma", "must be in [0, 1], got \(gamma)") }
        if grad_clip < 0 { try fail("grad_clip", "cannot be negative (0 turns clipping off), got \(grad_clip)") }
        if grad_accumulation < 1 { try fail("grad_accumulation", "must be at least 1 (micro-batches per optimizer step), got \(grad_accumulation)") }
        if val_batch_size < 1 { try fail("val_batch_size", "must be at least 1 (windows per network call), got \(val_batch_size)") }
        if !(nsd_tolerance.isFinite && nsd_tolerance >= 0) { try fail("nsd_tolerance", "must be a distance in mm, 0 or more, got \(nsd_tolerance)") }
        if patience < 0 { try fail("patience", "cannot be negative (0: no early stopping), got \(patience)") }
        if profile_steps < 0 { try fail("profile_steps", "cannot be negative (0: no profile), got \(profile_steps)") }
        if deterministic && cudnn_benchmark {
            try fail("cudnn_benchmark", "cuDNN's benchmark mode picks algorithms by timing them, which deterministic: true rules out; choose one")
        }
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
