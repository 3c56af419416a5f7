import ArgumentParser

struct BenchmarkCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "benchmark", abstract: "Time training or inference steps of a model.")
    func run() throws {}
}
