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
        var weights = try read(url)
        var resized: [String] = []
        if model is MedNeXt { (weights, resized) = try upKern(weights, to: model) }
        let result = try model.load(weights, strict: false)
        guard result.loadedCount > 0 else {
            throw TrainingError("\(url.path): none of its \(weights.pairs.count) tensors matches the network by name and shape "
                                + "(the file has \(weights.keys.prefix(3).joined(separator: ", ")); the network has "
                                + "\(model.namedStateTensors().prefix(3).map(\.name).joined(separator: ", ")))")
        }
        return Report(file: url, tensors: weights.pairs.count, result: result, resizedKernels: resized)
    }

    /// MedNeXt's UpKern (Roy et al. 2023; MIC-DKFZ's `upkern_load_weights`): a convolution weight
    /// of the file whose channels equal the network's but whose kernel is smaller (a kernel-3
    /// network's, for a kernel-5 one) is resized to the network's kernel by trilinear (bilinear in
    /// 2D) interpolation, corners not aligned; biases and norms load as they are. The names of the
    /// resized tensors come back with the weights.
    static func upKern(_ weights: StateDict, to model: Module) throws -> (StateDict, [String]) {
        let shapes = Dictionary(model.namedStateTensors().map { ($0.name, $0.tensor.shape) }, uniquingKeysWith: { a, _ in a })
        var resized: [String] = []
        let pairs = try weights.pairs.map { name, tensor -> (String, Tensor) in
            guard let target = shapes[name], target != tensor.shape, target.count == tensor.rank, target.count >= 4,
                  Array(target.prefix(2)) == Array(tensor.shape.prefix(2)) else { return (name, tensor) }
            resized.append(name)
            let mode: InterpolationMode = target.count == 5 ? .trilinear : .bilinear
            return (name, try F.interpolate(tensor.to(dtype: .float32), size: Array(target.dropFirst(2)), mode: mode).to(dtype: tensor.dtype))
        }
        return (StateDict(pairs), resized)
    }

    public struct Report: CustomStringConvertible {
        public let file: URL
        public let tensors: Int
        public let result: LoadReport
        /// Kernels resized by MedNeXt's UpKern.
        public var resizedKernels: [String] = []

        public var description: String {
            var lines = ["pretrained weights \(file.path): loaded \(result.loadedCount) of the network's \(result.loadedCount + result.missingKeys.count + result.shapeMismatches.count) tensors"]
            if !resizedKernels.isEmpty { lines.append("  UpKern: \(resizedKernels.count) kernels resized to this network's (e.g. \(resizedKernels[0]))") }
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
