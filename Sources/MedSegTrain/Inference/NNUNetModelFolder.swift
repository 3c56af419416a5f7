import Foundation
import MedSegData
import MedSegModels
import Torch

/// A model nnU-Net v2 trained (`nnUNet_results/DATASET/TRAINER__PLANS__CONFIGURATION`): its
/// plans.json, dataset.json and dataset_fingerprint.json beside `fold_N/checkpoint_{final,best}.pth`.
/// `medseg predict --run` takes such a folder as it takes its own runs: nnU-Net's preprocessing from
/// the plans, its network rebuilt from them with the checkpoint's weights (every tensor must
/// match), the mirroring axes the checkpoint allows, fold ensembling and resampling back; a cascade
/// stage behind its 3d_lowres folder.
public struct NNUNetModelFolder {
    public let root: URL

    public init(_ root: URL) { self.root = root }

    /// Whether `url` is such a folder (and not one of MedSeg's runs).
    public static func isModelFolder(_ url: URL) -> Bool {
        let fm = FileManager.default
        guard fm.fileExists(atPath: url.appendingPathComponent(ExperimentPlans.fileName).path),
              fm.fileExists(atPath: url.appendingPathComponent("dataset.json").path),
              let entries = try? fm.contentsOfDirectory(atPath: url.path) else { return false }
        return entries.contains { entry in
            entry.hasPrefix("fold_") && ["final", "best", "latest"].contains { name in
                fm.fileExists(atPath: url.appendingPathComponent(entry).appendingPathComponent("checkpoint_\(name).pth").path)
            }
        }
    }

    /// nnU-Net's name for a checkpoint MedSeg names `best`, `final` or `latest`.
    static func fileName(_ checkpoint: String) -> String { "checkpoint_\(checkpoint).pth" }

    /// The folds asked for, or every fold holding the checkpoint (nnU-Net's predict default).
    func folds(_ asked: [String], checkpoint: String) throws -> [String] {
        guard CheckpointName(named: checkpoint) != nil else {
            throw TrainingError("\(root.path) is a model folder nnU-Net trained: give \(Setting.named("checkpoint")) final, best or latest (its fold_N/checkpoint_NAME.pth)")
        }
        guard asked.isEmpty else { return asked }
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        let found = entries.filter { $0.hasPrefix("fold_") }.map { String($0.dropFirst(5)) }.filter {
            FileManager.default.fileExists(atPath: root.appendingPathComponent("fold_\($0)").appendingPathComponent(Self.fileName(checkpoint)).path)
        }.sorted { (Int($0) ?? Int.max, $0) < (Int($1) ?? Int.max, $1) }
        guard !found.isEmpty else {
            throw TrainingError("\(root.path): no fold_N/\(Self.fileName(checkpoint)) in this nnU-Net model folder; give \(Setting.named("checkpoint")) final, best or latest as its folds have")
        }
        return found
    }

    /// The predictors of `folds` and the preprocessing their plans give, plus a line per checkpoint.
    /// A cascade stage (3d_cascade_fullres) predicts behind `previousStage`, the 3d_lowres model
    /// folder, whose segmentation it takes as extra input channels (`stageAlone`: its networks alone).
    func inference(folds asked: [String], checkpoint: String, previousStage: URL?, mirror: Bool, device: Device, precision: Precision,
                   window: WindowSettings, stageAlone: Bool = false) throws -> (CaseInference, [String]) {
        let folds = try folds(asked, checkpoint: checkpoint)
        let description = try DatasetDescription.load(root.appendingPathComponent("dataset.json"))
        var predictors: [Predictor] = [], used: [String] = []
        var setup: PlannedSetup?
        for fold in folds {
            let file = root.appendingPathComponent("fold_\(fold)").appendingPathComponent(Self.fileName(checkpoint))
            guard FileManager.default.fileExists(atPath: file.path) else { throw TrainingError("\(file.path): no such checkpoint") }
            let saved = try PyTorchCheckpoint.load(file)
            let configuration = try Self.configuration(of: saved, file: file, folder: root)
            if let earlier = setup, earlier.name != configuration {
                throw TrainingError("\(file.path): trained as \(configuration), but the other folds as \(earlier.name)")
            }
            let planned = try setup ?? PlannedSetup.load(plans: root.appendingPathComponent(ExperimentPlans.fileName), configuration: configuration,
                                                         fingerprint: root.appendingPathComponent(DatasetFingerprint.fileName))
            setup = planned
            guard let weights = PyTorchCheckpoint.stateDict(in: saved) else {
                throw TrainingError("\(file.path): no network_weights in this nnU-Net checkpoint")
            }
            let state = StateDict(weights.pairs.filter { !PlainConvUNet.isAlias($0.name) })
            let spec = try Self.spec(planned, description: description, weights: state, file: file)
            let model = try ModelFactory.make(spec.network)
            let report = try model.load(state, strict: false)
            guard report.missingKeys.isEmpty, report.unexpectedKeys.isEmpty, report.shapeMismatches.isEmpty else {
                throw TrainingError("\(file.path): its weights do not fit the network its plans describe (missing: \(report.missingKeys.prefix(3).joined(separator: ", ")); "
                                    + "unexpected: \(report.unexpectedKeys.prefix(3).joined(separator: ", ")); other shapes: \(report.shapeMismatches.prefix(3).map(\.key).joined(separator: ", ")))")
            }
            for (name, tensor) in state where tensor.dtype.isFloatingPoint {
                guard try tensor.isfinite().all().item() != 0 else { throw TrainingError("\(file.path): its weight \(name) holds NaN or infinite values") }
            }
            try model.to(device: device)
            var predictor = Predictor(model: model, spec: spec, mirror: mirror, device: device, precision: precision, window: window)
            // The checkpoint says which axes its training mirrored (None: none).
            switch saved["inference_allowed_mirroring_axes"] {
            case .some(.none): predictor.mirror = false
            case .some(let axes):
                let values = axes.items ?? []
                let list = values.compactMap(\.int).map(Int.init)
                guard axes.items != nil, list.count == values.count, Set(list).count == list.count, list.allSatisfy({ (0..<spec.dims).contains($0) }) else {
                    throw TrainingError("\(file.path): inference_allowed_mirroring_axes is \(axes); a \(spec.dims)D network mirrors spatial axes 0 to \(spec.dims - 1), each once")
                }
                if !list.isEmpty { predictor.mirrorAxes = list }
            case nil: break
            }
            predictors.append(predictor)
            let epoch = saved["current_epoch"]?.int.map { ", epoch \($0)" } ?? ""
            used.append("nnU-Net fold_\(fold)/\(file.lastPathComponent)\(epoch)")
        }
        var previous: CascadeInput.PreviousStage?
        if let stage = setup?.plan.previous_stage, !stageAlone {
            let first: [String]
            (previous, first) = try TrainedModels.cascadeInput(stage, from: previousStage, folds: asked, checkpoint: checkpoint, mirror: mirror,
                                                               device: device, precision: precision, window: window,
                                                               missing: "\(root.path) is nnU-Net's cascade stage behind \(stage): give that model folder as \(Setting.named("previous_stage", value: "FOLDER"))")
            used = first + used
        }
        return (try CaseInference(predictors: predictors, preprocessor: setup?.preprocessor, previousStage: previous,
                                  previousStageConfiguration: setup?.plan.previous_stage), used)
    }

    /// The configuration the checkpoint was trained on: its `init_args`, else the folder's name
    /// (`TRAINER__PLANS__CONFIGURATION`).
    static func configuration(of saved: PickleValue, file: URL, folder: URL) throws -> String {
        if let name = saved["init_args"]?["configuration"]?.string { return name }
        let parts = folder.lastPathComponent.components(separatedBy: "__")
        guard parts.count == 3 else {
            throw TrainingError("\(file.path): its init_args name no configuration, and the folder is not named TRAINER__PLANS__CONFIGURATION")
        }
        return parts[2]
    }

    /// The network and labels as MedSeg's checkpoints record them: the plans' topology, input and
    /// output channels from the weights (the first convolution, the full-resolution head), the
    /// data set's labels (and regions or ignore label), softmax unless regions.
    static func spec(_ setup: PlannedSetup, description: DatasetDescription, weights: StateDict, file: URL) throws -> ModelSpecRecord {
        func shape(_ suffix: String, _ pick: ([String]) -> String?) throws -> [Int] {
            guard let name = pick(weights.keys.filter { $0.hasSuffix(suffix) }.sorted()), let tensor = weights[name] else {
                throw TrainingError("\(file.path): no \(suffix) tensor among its weights; not a PlainConvUNet or ResidualEncoderUNet")
            }
            return tensor.shape
        }
        let dims = setup.plan.patch_size.count
        var network: ModelFactory.Spec
        var first: [Int], head: [Int]
        if let positions = weights["eva.pos_embed"], positions.rank == 3,
           let input = weights["down_projection.proj.weight"] ?? weights["down_projection.stem.blocks.0.conv1.conv.weight"] {
            // nnU-Net's Primus trainers build the network themselves (the plans name a U-Net): its
            // published size from the embedding width and the EVA blocks, its input size the plan's
            // patch, the variant from its patch embedding (one convolution, or V2's or V3's residual stages).
            let name: ModelName = weights["down_projection.proj.weight"] != nil ? .primus
                : weights["down_projection.proj_to_tokens.0.weight"] != nil ? .primus_v3 : .primus_v2
            let width = positions.shape[2]
            let blocks = Set(weights.keys.filter { $0.hasPrefix("eva.blocks.") }.compactMap { $0.split(separator: ".").dropFirst(2).first }).count
            guard let size = ModelSize.allCases.first(where: {
                let c = Primus.Config.published($0, inChannels: 1, classes: 1, inputShape: setup.plan.patch_size)
                return (c.embedDim, c.depth) == (width, blocks)
            }) else {
                throw TrainingError("\(file.path): a Primus of width \(width) with \(blocks) EVA blocks is none of the published sizes S, B, M or L")
            }
            let decoder = weights.keys.filter { $0.hasPrefix("up_projection.decode.") && $0.hasSuffix(".weight") && weights[$0]!.rank == dims + 2 }
            guard let last = decoder.max(by: { Self.index($0) < Self.index($1) }) else {
                throw TrainingError("\(file.path): a Primus checkpoint without its up_projection decoder")
            }
            // A transposed convolution's weight is [in, out, kernel...].
            let up = weights[last]!.shape
            (first, head) = (input.shape, [up[1], up[0]] + up.dropFirst(2))
            network = ModelFactory.Spec(name: name.rawValue, dims: dims, inChannels: first[1], outChannels: head[0],
                                        features: name.defaultFeatures, depth: name.defaultDepth)
            (network.modelSize, network.inputShape) = (size, setup.plan.patch_size)
        } else {
            // The residual encoder's stem, else the plain encoder's first stage, sees the input.
            first = try shape("conv.weight") { names in
                names.first { $0.hasPrefix("encoder.stem.") } ?? names.first { $0.hasPrefix("encoder.stages.0.") }
            }
            let heads = weights.keys.filter { $0.hasPrefix("decoder.seg_layers.") && $0.hasSuffix(".weight") }
            head = try shape(".weight") { _ in heads.max { Self.index($0) < Self.index($1) } }
            let features = setup.plan.features_per_stage
            network = ModelFactory.Spec(name: setup.modelName.rawValue, dims: dims, inChannels: first[1],
                                        outChannels: head[0], features: features.first ?? 32, depth: features.count,
                                        deepSupervision: true, topology: setup.topology)
        }
        for (what, s) in [("first convolution", first), ("segmentation head", head)] where s.count != dims + 2 || s.contains(where: { $0 < 1 }) {
            throw TrainingError("\(file.path): its \(what)'s weight has shape \(s); a \(dims)D network's is [out, in, \(dims) kernel sizes]")
        }
        let targets = LabelTargets(description, batchDice: setup.plan.batch_dice ?? true)
        guard head[0] == targets.outputChannels else {
            throw TrainingError("\(file.path): its head has \(head[0]) outputs, but dataset.json beside it gives \(targets.outputChannels) "
                                + (targets.usesRegions ? "regions" : "labels (background included)"))
        }
        return ModelSpecRecord(network: network, patchSize: setup.plan.patch_size, normalization: IntensityNormalization.none.rawValue,
                               intensityStatistics: nil, labels: description.labelValues, binary: false, configuration: setup.name,
                               labelTargets: targets.isPlain ? nil : targets)
    }

    private static func index(_ name: String) -> Int { Int(name.split(separator: ".")[2]) ?? -1 }
}
