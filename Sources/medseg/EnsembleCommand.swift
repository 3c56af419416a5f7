import ArgumentParser
import Foundation
import MedSegData
import MedSegTrain

/// `medseg ensemble --inputs A B --out C`: averages the probabilities of finished predictions.
struct EnsembleCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ensemble",
        abstract: "Average the probabilities of several prediction folders (written with --save-probabilities) into one prediction.")

    @Option(parsing: .upToNextOption, help: "Prediction folders holding CASE_probabilities.safetensors, or nnU-Net's CASE.npz (nnUNetv2_predict --save_probabilities).") var inputs: [String]
    @Option(help: "Output folder.") var out: String
    @Option(help: "postprocessing.json (from `medseg find-best`), or nnU-Net's postprocessing.pkl/.json, to apply.") var postprocessing: String?
    @Flag(help: "Also write the averaged probabilities.") var saveProbabilities = false

    func run() throws {
        guard inputs.count >= 2 else { throw ValidationError("--inputs needs at least two prediction folders") }
        for folder in inputs {
            try InputFiles.refuseSameFolder(output: URL(fileURLWithPath: out), outputOption: "--out",
                                            input: URL(fileURLWithPath: folder), inputOption: "--inputs")
        }
        let post = try postprocessing.map { try Postprocessing.load(URL(fileURLWithPath: $0)) }
        let ids = try ProbabilityEnsemble.run(folders: inputs.map { URL(fileURLWithPath: $0) }, out: URL(fileURLWithPath: out),
                                              postprocessing: post, saveProbabilities: saveProbabilities)
        print("wrote the ensemble of \(inputs.count) folders for \(ids.count) case(s) to \(out)")
    }
}
