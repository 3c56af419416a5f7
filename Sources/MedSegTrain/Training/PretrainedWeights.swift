import Foundation
import MedSegModels
import Torch

/// Fine-tuning's starting point (nnU-Net's `-pretrained_weights`): every tensor of a MedSeg
/// checkpoint, a `.safetensors` or a PyTorch `.pth` (nnU-Net's `checkpoint_final.pth`: its
/// `network_weights`) whose name and shape match the network is loaded; the others keep their
/// initialization, such as the segmentation head of a network with another label count.
public enum PretrainedWeights {
    /// The file's network tensors, named as the network's state dict.
    public static func read(_ url: URL) throws -> StateDict {
        guard FileManager.default.fileExists(atPath: url.path) else { throw TrainingError("\(url.path): no such weights file") }
        let (all, metadata) = try WeightsFile.read(url)
        // A MedSeg checkpoint keeps the network's tensors under `model.` beside the optimizer's.
        let tensors = metadata["format"] == Checkpoint.format ? StateDict(all.pairs.filter { $0.name.hasPrefix("model.") }).strippingPrefix("model.") : all
        // dynamic_network_architectures' state dicts repeat tensors under aliases.
        return StateDict(tensors.pairs.filter { !PlainConvUNet.isAlias($0.name) })
    }

    /// Loads the matching tensors of `url` into `model`; refuses a file of which nothing matches.
    public static func load(_ url: URL, into model: Module) throws -> Report {
        let weights = try read(url)
        let result = try model.load(weights, strict: false)
        guard result.loadedCount > 0 else {
            throw TrainingError("\(url.path): none of its \(weights.pairs.count) tensors matches the network by name and shape "
                                + "(the file has \(weights.keys.prefix(3).joined(separator: ", ")); the network has "
                                + "\(model.namedStateTensors().prefix(3).map(\.name).joined(separator: ", ")))")
        }
        return Report(file: url, tensors: weights.pairs.count, result: result)
    }

    public struct Report: CustomStringConvertible {
        public let file: URL
        public let tensors: Int
        public let result: LoadReport

        public var description: String {
            var lines = ["pretrained weights \(file.path): loaded \(result.loadedCount) of the network's \(result.loadedCount + result.missingKeys.count + result.shapeMismatches.count) tensors"]
            if !result.shapeMismatches.isEmpty {
                lines.append("  skipped, another shape (e.g. the head of another label count): "
                             + result.shapeMismatches.map { "\($0.key) \($0.found) in the file, \($0.expected) here" }.joined(separator: "; "))
            }
            if !result.missingKeys.isEmpty { lines.append("  missing from the file (initialized): " + result.missingKeys.joined(separator: ", ")) }
            if !result.unexpectedKeys.isEmpty { lines.append("  in the file but not in the network (unused): " + result.unexpectedKeys.joined(separator: ", ")) }
            return lines.joined(separator: "\n")
        }
    }
}
