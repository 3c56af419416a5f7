import Foundation
import MedSegData
import Torch

/// nnU-Net's `find_best_configuration`: every trained configuration (an experiment folder of
/// fold_N runs) is scored on its cross-validation, i.e. the final validation predictions of all
/// its folds pooled, each case predicted once by the fold that did not train on it; where the
/// validations kept their probabilities, every pair of configurations is scored as an ensemble
/// too. The best candidate by foreground mean Dice then gets its post-processing chosen on the
/// same predictions, and the inference commands that reproduce it are written down.
public struct ModelSelection {
    /// A scored candidate: one configuration or an ensemble of two.
    public struct Candidate {
        public var name: String
        public var experiments: [URL]
        /// Where its pooled cross-validation predictions and summary.json are.
        public var folder: URL
        public var summary: EvaluationSummary
        public var dice: Double { summary.foreground_mean.Dice ?? 0 }
    }

    public struct Outcome {
        public var candidates: [Candidate]
        public var best: Candidate
        public var postprocessing: Postprocessing
        public var postprocessingReport: [String]
        public var instructions: String
    }

    public let dataset: RawDataset
    public let folds: [Int]
    /// Tolerance (mm) of the normalized surface Dice in every summary.
    public let nsdTolerance: Double

    public init(dataset: RawDataset, folds: [Int], nsdTolerance: Double = EvaluationSummary.defaultNSDTolerance) {
        self.dataset = dataset
        self.folds = folds
        self.nsdTolerance = nsdTolerance
    }

    private var foldsTag: String { "folds_" + folds.map(String.init).joined(separator: "_") }

    /// Reference label files by case.
    private func references() throws -> [String: URL] {
        var refs: [String: URL] = [:]
        for c in try dataset.trainingCases() { if let l = c.label { refs[c.identifier] = l } }
        return refs
    }

    /// Evaluates every prediction image in `folder` against the data set's labels into folder/summary.json.
    func evaluate(_ folder: URL, cases: [String]) throws -> EvaluationSummary {
        let refs = try references()
        let files: [(prediction: URL, reference: URL)] = try cases.map { id in
            guard let ref = refs[id] else { throw DataError(file: folder, "case \(id) is not a labelled case of \(dataset.root.path)") }
            guard let pred = ProbabilityEnsemble.predictionFile(id, in: folder) else { throw DataError(file: folder, "has no prediction for case \(id)") }
            return (pred, ref)
        }
        let summary = try EvaluationSummary.evaluate(files: files, classes: EvaluationClasses(dataset.description), nsdTolerance: nsdTolerance)
        try summary.write(to: folder.appendingPathComponent("summary.json"))
        return summary
    }

    /// Pools the folds' validation predictions (and probabilities) of one experiment folder into
    /// EXPERIMENT/crossval_results_folds_..., and scores them.
    public func crossValidation(of experiment: URL) throws -> Candidate {
        let out = ExperimentFolder(experiment).crossValidation(folds: folds)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let splits = try CrossValidationSplits.load(dataset.root.appendingPathComponent("splits_final.json"))
        var cases: [String] = []
        for fold in folds {
            let validation = ExperimentFolder(experiment).fold(fold).validation
            guard fold < splits.folds.count else { throw DataError(file: dataset.root, "splits_final.json has no fold \(fold)") }
            for id in splits.folds[fold].val {
                guard let pred = ProbabilityEnsemble.predictionFile(id, in: validation) else {
                    throw DataError(file: validation, "has no prediction for case \(id): train fold \(fold) to the end (or run \(Setting.named("validation_only")))")
                }
                try replace(out.appendingPathComponent(pred.lastPathComponent), with: pred)
                let p = ProbabilityFile.url(for: id, in: validation)
                if FileManager.default.fileExists(atPath: p.path) { try replace(ProbabilityFile.url(for: id, in: out), with: p) }
                cases.append(id)
            }
        }
        return Candidate(name: experiment.lastPathComponent, experiments: [experiment], folder: out, summary: try evaluate(out, cases: cases.sorted()))
    }

    /// The ensemble of two scored configurations, when both kept their validation probabilities.
    public func ensemble(_ a: Candidate, _ b: Candidate, under root: URL) throws -> Candidate? {
        guard (try? ProbabilityEnsemble.commonCases([a.folder, b.folder])) != nil else { return nil }
        let out = root.appendingPathComponent("ensembles").appendingPathComponent("ensemble___\(a.name)___\(b.name)___\(foldsTag)")
        let ids = try ProbabilityEnsemble.run(folders: [a.folder, b.folder], out: out)
        return Candidate(name: "ensemble(\(a.name), \(b.name))", experiments: a.experiments + b.experiments, folder: out,
                         summary: try evaluate(out, cases: ids))
    }

    /// Scores every configuration and pairwise ensemble, picks the best, chooses its
    /// post-processing and writes postprocessing.json and inference_instructions.txt into `root`.
    public func run(experiments: [URL], root: URL) throws -> Outcome {
        guard !experiments.isEmpty else { throw TrainingError("find-best needs at least one experiment folder") }
        var candidates = try experiments.map(crossValidation(of:))
        let single = candidates
        for i in single.indices {
            for j in single.indices where j > i {
                if let e = try ensemble(single[i], single[j], under: root) { candidates.append(e) }
            }
        }
        let best = candidates.max { $0.dice < $1.dice }!
        let refs = try references()
        var pairs: [(prediction: MedicalImage, reference: MedicalImage)] = []
        for c in best.summary.metric_per_case {
            let id = ImageIO.stem(of: URL(fileURLWithPath: c.prediction_file))
            guard let ref = refs[id] else { continue }
            pairs.append((try ImageIO.read(best.folder.appendingPathComponent(c.prediction_file)), try ImageIO.read(ref)))
        }
        let (post, report) = try Postprocessing.choose(cases: pairs, labels: dataset.description.foregroundLabels)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        let postURL = root.appendingPathComponent(Postprocessing.fileName)
        try post.write(to: postURL)
        let instructions = Self.instructions(best, folds: folds, postprocessing: postURL)
        try AtomicFile.write(Data(instructions.utf8), to: root.appendingPathComponent("inference_instructions.txt"))
        return Outcome(candidates: candidates, best: best, postprocessing: post, postprocessingReport: report, instructions: instructions)
    }

    /// The previous stage a cascade experiment was trained behind (from its folds' config.yaml).
    static func previousStage(of experiment: URL, folds: [Int]) -> String? {
        for fold in folds {
            let url = ExperimentFolder(experiment).fold(fold).config
            guard let text = try? String(contentsOf: url, encoding: .utf8),
                  let config = try? TrainingConfig().merging(yaml: text, source: url.path) else { continue }
            return config.previous_stage.isEmpty ? nil : config.previous_stage
        }
        return nil
    }

    static func instructions(_ best: Candidate, folds: [Int], postprocessing: URL) -> String {
        let foldList = folds.map(String.init).joined(separator: " ")
        func predict(_ e: URL) -> String {
            "medseg predict --run \(e.path) --folds \(foldList) --checkpoint final" + (previousStage(of: e, folds: folds).map { " --previous-stage \($0)" } ?? "")
        }
        var lines = ["# Best on cross-validation: \(best.name), foreground mean Dice \(String(format: "%.4f", best.dice))", ""]
        if best.experiments.count == 1 {
            lines.append(predict(best.experiments[0]) + " --input INPUT_FOLDER --out OUTPUT_FOLDER --postprocessing \(postprocessing.path)")
        } else {
            for (i, e) in best.experiments.enumerated() {
                lines.append(predict(e) + " --input INPUT_FOLDER --out OUTPUT_FOLDER_\(i + 1) --save-probabilities")
            }
            let inputs = best.experiments.indices.map { "OUTPUT_FOLDER_\($0 + 1)" }.joined(separator: " ")
            lines.append("medseg ensemble --inputs \(inputs) --out OUTPUT_FOLDER --postprocessing \(postprocessing.path)")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Puts a copy of `source` at `target`, replacing what is there.
    private func replace(_ target: URL, with source: URL) throws {
        let fm = FileManager.default
        if fm.fileExists(atPath: target.path) { try fm.removeItem(at: target) }
        try fm.copyItem(at: source, to: target)
    }
}
