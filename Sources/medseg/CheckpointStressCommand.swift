import ArgumentParser
import Foundation
import Torch

/// Writes a large safetensors checkpoint over and over until killed; each version's tensors are
/// all filled with its version number, recorded in its metadata. Used by the crash-safety test.
struct CheckpointStressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "checkpoint-stress", shouldDisplay: false)

    @Option var out: String
    @Option var megabytes = 64

    func run() throws {
        let url = URL(fileURLWithPath: out)
        let elements = megabytes * 1024 * 1024 / 4 / 4
        var version = 0
        while true {
            version += 1
            let dict = StateDict(try (0..<4).map { ("t\($0)", try Tensor.full([elements], Double(version))) })
            try Safetensors.save(dict, metadata: ["version": String(version)], to: url)
            print("saved \(version)")
            fflush(stdout)
        }
    }
}
