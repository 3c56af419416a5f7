import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Compare predicted label maps with references; writes nnU-Net-style summary.json and prints a table.")

    @Option(help: "Folder of predictions.") var pred: String
    @Option(help: "Folder of reference labels (same file names).") var ref: String
    @Option(parsing: .upToNextOption, help: "Label values to evaluate (default: every non-zero value found).") var labels: [Int] = []
    @Option(name: .customLong("dataset-json"), help: "A dataset.json whose labels (or regions) and ignore label are evaluated, as nnU-Net's -djfile.")
    var datasetJSON: String?
    @Option(help: "Where to write the summary (default: PRED/summary.json).") var out: String?
    @Flag(help: "Skip HD95 and NSD (faster on large volumes).") var noHd95 = false
    @Option(parsing: .unconditional, help: "Tolerance in mm of the normalized surface Dice (NSD, beside HD95).") var nsdTolerance = EvaluationSummary.defaultNSDTolerance

    func validate() throws { try checkNSDTolerance(nsdTolerance) }

    func run() throws {
        let predDir = URL(fileURLWithPath: pred), refDir = URL(fileURLWithPath: ref)
        let names = try FileManager.default.contentsOfDirectory(atPath: refDir.path)
            .filter { name in ImageIO.readableEndings.contains { name.lowercased().hasSuffix($0) } && !name.hasPrefix(".") }.sorted()
        guard !names.isEmpty else { throw ValidationError("\(ref): no label images found") }
        var files: [(prediction: URL, reference: URL)] = []
        for name in names {
            let p = predDir.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: p.path) else { throw ValidationError("\(p.path): missing prediction for reference \(name)") }
            files.append((p, refDir.appendingPathComponent(name)))
        }
        var classes: EvaluationClasses? = labels.isEmpty ? nil : EvaluationClasses(labels: labels)
        if let datasetJSON {
            guard labels.isEmpty else { throw ValidationError("give --labels or --dataset-json, not both") }
            classes = EvaluationClasses(try DatasetDescription.load(URL(fileURLWithPath: datasetJSON)))
        }
        let outURL = out.map { URL(fileURLWithPath: $0) } ?? predDir.appendingPathComponent("summary.json")
        var inputs = InputFiles()
        inputs.add(files.map(\.prediction), as: "a prediction")
        inputs.add(files.map(\.reference), as: "a reference label")
        inputs.add(datasetJSON.map { [URL(fileURLWithPath: $0)] } ?? [], as: "the --dataset-json")
        try inputs.refuseOverwriting(outURL, option: "--out")
        let summary = try EvaluationSummary.evaluate(files: files, classes: classes, surfaceDistance: !noHd95, nsdTolerance: nsdTolerance) {
            FileHandle.standardError.write(Data(($0 + "\n").utf8))
        }
        try summary.write(to: outURL)
        print("\(files.count) cases")
        print(summary.table())
        print("wrote \(outURL.path)")
    }
}
