import ArgumentParser

struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "weights", abstract: "Inspect and convert weight files.")
    func run() throws {}
}
