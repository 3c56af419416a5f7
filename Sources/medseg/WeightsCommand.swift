import ArgumentParser
import Foundation
import MedSegData
import Torch

struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights", abstract: "Inspect and convert weight files (.safetensors, PyTorch .pth/.pt).",
        subcommands: [Inspect.self, Convert.self])

    /// Reads either format; a MedSeg checkpoint's model weights are found like any nested state dict.
    static func read(_ path: String) throws -> (StateDict, [String: String]) {
        try WeightsFile.read(URL(fileURLWithPath: path))
    }

    struct Inspect: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List every tensor's name, dtype and shape, and the total number of elements.")
        @Argument(help: "A .safetensors, .pth or .pt file.") var file: String

        func run() throws {
            let (dict, metadata) = try WeightsCommand.read(file)
            let width = min(72, dict.keys.map(\.count).max() ?? 0)
            var total = 0
            for (name, t) in dict {
                total += t.count
                print(name.padding(toLength: max(width, name.count), withPad: " ", startingAt: 0) + "  "
                      + t.dtype.description.padding(toLength: 9, withPad: " ", startingAt: 0) + "[" + t.shape.map(String.init).joined(separator: ", ") + "]")
            }
            for (k, v) in metadata.sorted(by: { $0.key < $1.key }) where v.count < 200 { print("metadata \(k): \(v)") }
            print("\(dict.count) tensors, \(total.formatted()) elements")
        }
    }

    struct Convert: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Convert a PyTorch .pth/.pt state dict to .safetensors.")
        @Argument(help: "Input .pth/.pt (or .safetensors).") var input: String
        @Argument(help: "Output .safetensors.") var output: String

        func run() throws {
            guard output.hasSuffix(".safetensors") else { throw ValidationError("\(output): the output must end in .safetensors") }
            var inputs = InputFiles()
            inputs.add([URL(fileURLWithPath: input)], as: "the input")
            try inputs.refuseOverwriting(URL(fileURLWithPath: output), option: "output file")
            let (dict, metadata) = try WeightsCommand.read(input)
            try Safetensors.save(dict, metadata: metadata.merging(["source": URL(fileURLWithPath: input).lastPathComponent]) { a, _ in a },
                                 to: URL(fileURLWithPath: output))
            print("wrote \(dict.count) tensors to \(output)")
        }
    }
}
