import Foundation
import MedSegData
import Torch

/// The trainer's own state in a checkpoint, beside the model and optimizer tensors: the run's
/// progress (its keys at the top level of the JSON, as before it had a type of its own), settings,
/// optimizer and schedule metadata and the network's description.
public struct TrainerState: Codable, Equatable, Sendable {
    public var progress: TrainingProgress
    /// The run's settings, fully resolved: a resumed run continues with them.
    public var config: TrainingConfig
    /// The optimizer's hyperparameters and step counts (its tensors are `optimizer.*`).
    public var optimizer: OptimizerState.Metadata
    public var scheduler: LRScheduler.State
    /// fp16's loss scale and growth counter, so that a resumed run scales exactly as it would have.
    public var gradScaler: GradScaler.State?
    public var model: ModelSpecRecord

    public init(progress: TrainingProgress, config: TrainingConfig, optimizer: OptimizerState.Metadata, scheduler: LRScheduler.State,
                gradScaler: GradScaler.State?, model: ModelSpecRecord) {
        self.progress = progress
        self.config = config
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.gradScaler = gradScaler
        self.model = model
    }

    /// Epochs completed.
    public var epoch: Int { progress.epoch }

    private enum CodingKeys: String, CodingKey { case config, optimizer, scheduler, gradScaler, model }

    public init(from decoder: Decoder) throws {
        progress = try TrainingProgress(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        config = try c.decode(TrainingConfig.self, forKey: .config)
        optimizer = try c.decode(OptimizerState.Metadata.self, forKey: .optimizer)
        scheduler = try c.decode(LRScheduler.State.self, forKey: .scheduler)
        gradScaler = try c.decodeIfPresent(GradScaler.State.self, forKey: .gradScaler)
        model = try c.decode(ModelSpecRecord.self, forKey: .model)
    }

    public func encode(to encoder: Encoder) throws {
        try progress.encode(to: encoder)
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(config, forKey: .config)
        try c.encode(optimizer, forKey: .optimizer)
        try c.encode(scheduler, forKey: .scheduler)
        try c.encodeIfPresent(gradScaler, forKey: .gradScaler)
        try c.encode(model, forKey: .model)
    }
}

/// A checkpoint file: one safetensors file holding the model (`model.*`), the optimizer state
/// (`optimizer.*`), libtorch's RNG state (`rng.cpu`) and, as JSON in the metadata, the trainer
/// state. Written atomically, so a crash mid-write leaves the previous checkpoint intact.
public enum Checkpoint {
    public static let fileExtension = "safetensors"
    static let format = "medseg-checkpoint-2"

    public static func save(to url: URL, model: Module, optimizer: [(name: String, tensor: Tensor)], state: TrainerState) throws {
        var tensors: [(String, Tensor)] = model.namedStateTensors().map { ("model.\($0.name)", $0.tensor) }
        tensors += optimizer.map { ("optimizer.\($0.name)", $0.tensor) }
        tensors.append(("rng.cpu", try Torch.rngState()))
        let encoder = JSONEncoder()
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        let json = String(decoding: try encoder.encode(state), as: UTF8.self)
        try Safetensors.save(StateDict(tensors), metadata: ["format": format, "trainer": json], to: url)
    }

    public struct Loaded {
        public var model: [(name: String, tensor: Tensor)]
        public var optimizer: [(name: String, tensor: Tensor)]
        public var rng: Tensor?
        public var state: TrainerState

        /// The optimizer's state in PyTorch's layout, for `Optimizer.loadStateDict`.
        public func optimizerState() throws -> OptimizerState { try OptimizerState(tensors: optimizer, metadata: state.optimizer) }
    }

    public static func load(_ url: URL) throws -> Loaded {
        let (tensors, metadata) = try Safetensors.load(url)
        guard let json = metadata["trainer"] else {
            throw TrainingError("\(url.path): not a MedSeg checkpoint (no trainer state in its metadata)")
        }
        guard metadata["format"] == format else {
            throw TrainingError("\(url.path): checkpoint format '\(metadata["format"] ?? "?")' was written by an earlier MedSeg; this one reads \(format). "
                                + "Its weights load with `medseg weights`, but the run cannot be resumed")
        }
        let state: TrainerState
        do {
            let decoder = JSONDecoder()
            decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
            state = try decoder.decode(TrainerState.self, from: try withDefaultSettings(Data(json.utf8)))
        } catch {
            throw TrainingError("\(url.path): damaged trainer state: \(error)")
        }
        var loaded = Loaded(model: [], optimizer: [], rng: nil, state: state)
        for (name, tensor) in tensors {
            if name.hasPrefix("model.") { loaded.model.append((String(name.dropFirst(6)), tensor)) }
            else if name.hasPrefix("optimizer.") { loaded.optimizer.append((String(name.dropFirst(10)), tensor)) }
            else if name == "rng.cpu" { loaded.rng = tensor }
        }
        return loaded
    }

    /// The trainer state with the keys that its saved config lacks (settings added after the run
    /// was written) at their defaults, so that an older run still resumes.
    static func withDefaultSettings(_ json: Data) throws -> Data {
        guard var state = try JSONSerialization.jsonObject(with: json) as? [String: Any],
              let saved = state["config"] as? [String: Any],
              let defaults = try JSONSerialization.jsonObject(with: JSONEncoder().encode(TrainingConfig())) as? [String: Any] else { return json }
        state["config"] = defaults.merging(saved) { _, saved in saved }
        return try JSONSerialization.data(withJSONObject: state)
    }
}
