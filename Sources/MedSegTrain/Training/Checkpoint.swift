import Foundation
import MedSegData
import Torch

/// The trainer's own state in a checkpoint, beside the model and optimizer tensors.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Epochs completed.
    public var epoch: Int
    public var bestMetric: Double?
    public var emaDice: Double?
    public var history: [EpochRecord]
    public var configYAML: String
    public var optimizerJSON: String
    public var schedulerJSON: String
    public var model: ModelSpecRecord
}

/// A checkpoint file: one safetensors file holding the model (`model.*`), the optimizer state
/// (`optimizer.*`), libtorch's RNG state (`rng.cpu`) and, as JSON in the metadata, the trainer
/// state. Written atomically, so a crash mid-write leaves the previous checkpoint intact.
public enum Checkpoint {
    public static let fileExtension = "safetensors"

    public static func save(to url: URL, model: Module, optimizer: [(name: String, tensor: Tensor)], state: TrainerState) throws {
        var tensors: [(String, Tensor)] = model.namedStateTensors().map { ("model.\($0.name)", $0.tensor) }
        tensors += optimizer.map { ("optimizer.\($0.name)", $0.tensor) }
        tensors.append(("rng.cpu", try Torch.rngState()))
        let json = String(decoding: try JSONEncoder().encode(state), as: UTF8.self)
        try Safetensors.save(StateDict(tensors), metadata: ["format": "medseg-checkpoint-1", "trainer": json], to: url)
    }

    public struct Loaded {
        public var model: [(name: String, tensor: Tensor)]
        public var optimizer: [(name: String, tensor: Tensor)]
        public var rng: Tensor?
        public var state: TrainerState
    }

    public static func load(_ url: URL) throws -> Loaded {
        let (tensors, metadata) = try Safetensors.load(url)
        guard let json = metadata["trainer"] else {
            throw TrainingError("\(url.path): not a MedSeg checkpoint (no trainer state in its metadata)")
        }
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: Data(json.utf8)) } catch {
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
}
