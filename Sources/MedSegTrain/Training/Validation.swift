import Foundation
import MedSegData
import Torch

/// Validation during and after training.
enum Validation {
    struct Result {
        var loss: Double
        var dicePerClass: [Double]
        var meanDice: Double
        var meanIoU: Double
        var accuracy: Double
    }

    /// Sums over validation cases, which ranks add up before the metrics are derived.
    struct Tallies {
        var counts: [ConfusionCounts]
        var lossSum: Double
        var cases: Int

        /// As one flat vector (for an all-reduce) and back.
        var flattened: [Double] { counts.flatMap { [Double($0.tp), Double($0.fp), Double($0.fn), Double($0.tn)] } + [lossSum, Double(cases)] }
        init(counts: [ConfusionCounts], lossSum: Double, cases: Int) { self.counts = counts; self.lossSum = lossSum; self.cases = cases }
        init(flattened v: [Double]) {
            let k = (v.count - 2) / 4
            counts = (0..<k).map { ConfusionCounts(tp: Int(v[4 * $0]), fp: Int(v[4 * $0 + 1]), fn: Int(v[4 * $0 + 2]), tn: Int(v[4 * $0 + 3])) }
            lossSum = v[4 * k]
            cases = Int(v[4 * k + 1])
        }

        /// Mean loss, and Dice per class from TP/FP/FN summed over the cases (nnU-Net's pseudo-Dice).
        var result: Result {
            let dice = counts.map { $0.dice.isNaN ? 0 : $0.dice }
            let total = counts.reduce(ConfusionCounts(), +)
            return Result(loss: lossSum / Double(max(1, cases)), dicePerClass: dice, meanDice: dice.reduce(0, +) / Double(max(1, dice.count)),
                          meanIoU: counts.map { $0.iou.isNaN ? 0 : $0.iou }.reduce(0, +) / Double(max(1, counts.count)),
                          accuracy: Double(total.tp + total.tn) / Double(max(1, total.tp + total.tn + total.fp + total.fn)))
        }
    }

    /// Whole-case sliding-window inference (no mirroring, for speed) on the given validation cases.
    static func tally(model: Module, cases: [LoadedCase], spec: ModelSpecRecord, loss: any SegmentationLoss, device: Device,
                      windowBatch: Int = 1) throws -> Tallies {
        let predictor = Predictor(model: model, spec: spec, mirror: false, device: device, window: WindowSettings(windowBatch: windowBatch))
        let classes = spec.evaluationClasses
        var counts = [ConfusionCounts](repeating: ConfusionCounts(), count: classes.groups.count)
        var lossSum = 0.0
        defer { model.train() }
        try withNoGrad {
            for c in cases {
                guard let label = c.label else { continue }
                let logits = try predictor.logits(normalizedImage: c.image)
                lossSum += try loss(logits.unsqueeze(0), label.unsqueeze(0).to(device: device)).item()
                let predicted = try predictor.labels(fromProbabilities: predictor.probabilities(fromLogits: logits)).to(device: .cpu).to(dtype: .int32).toArray(Int32.self)
                let reference = try label.to(dtype: .int32).toArray(Int32.self)
                for (k, c) in classes.counts(prediction: predicted, reference: reference).enumerated() { counts[k] = counts[k] + c }
            }
        }
        return Tallies(counts: counts, lossSum: lossSum, cases: cases.count)
    }

    /// Final validation: each case predicted in its raw grid (`inference` decides how; training
    /// uses mirror TTA), written to `folder` in the data set's format and geometry (with its
    /// probabilities when asked, for ensembling), and `summary.json` against the reference labels.
    static func writeSummary(inference: CaseInference, cases: [CaseFiles], dataset: RawDataset, folder: URL, nsdTolerance: Double,
                             saveProbabilities: Bool) throws -> EvaluationSummary {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let ending = dataset.description.file_ending
        var pairs: [(prediction: MedicalImage, reference: MedicalImage, predictionFile: String, referenceFile: String)] = []
        for files in cases {
            guard let labelURL = files.label else { continue }
            let reference = try ImageIO.read(labelURL)
            var prediction = try inference.predict(files, probabilities: saveProbabilities ? ProbabilityFile.url(for: files.identifier, in: folder) : nil).label
            guard prediction.size == reference.size else {
                throw DataError(file: labelURL, "label size \(reference.size) differs from the image's \(prediction.size)")
            }
            prediction.geometry = reference.geometry
            let out = folder.appendingPathComponent(files.identifier + ending)
            try ImageIO.write(prediction, to: out)
            pairs.append((prediction, reference, out.lastPathComponent, labelURL.lastPathComponent))
        }
        let summary = try EvaluationSummary.evaluate(cases: pairs, classes: EvaluationClasses(dataset.description), nsdTolerance: nsdTolerance)
        try summary.write(to: folder.appendingPathComponent("summary.json"))
        return summary
    }
}
