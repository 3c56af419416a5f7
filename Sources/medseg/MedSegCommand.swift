import ArgumentParser
import MedSegDist
import Foundation
import Torch

@main
struct MedSegCommand: ParsableCommand {
    static func main() {
        // Each line reaches a redirected log (`> train.log`, `tee`) as it is printed, not at exit.
        setvbuf(stdout, nil, _IOLBF, 0)
        OpenMPWaitPolicy.applyOnce()
        Setting.render(with: CommandLineSetting.flag)
        do { try LauncherBinding.bindToLauncher() } catch { exit(withError: error) }
        // As ParsableCommand.main, but an error from a running command is its one line: the root's
        // usage adds nothing there (a mistake in the arguments still shows its subcommand's usage),
        // and Foundation's file errors become one readable line.
        var command: ParsableCommand
        do { command = try parseAsRoot(nil) } catch { exit(withError: error) }
        do {
            try command.run()
        } catch {
            let error = FileErrorText.readable(error) ?? error
            let code = exitCode(for: error)
            let text = message(for: error)
            guard code != .success, !text.isEmpty else { exit(withError: error) }
            FileHandle.standardError.write(Data("Error: \(text)\n".utf8))
            Foundation.exit(code.rawValue)
        }
    }

    static let configuration = CommandConfiguration(
        commandName: "medseg",
        abstract: "Train, evaluate and serve medical image segmentation networks (2D and 3D) on libtorch.",
        version: MedSegVersion.string,
        subcommands: [DoctorCommand.self, DataCommand.self, PlanCommand.self, PreprocessCommand.self, TrainCommand.self, EvaluateCommand.self, PredictCommand.self, ExportCommand.self, EnsembleCommand.self, FindBestCommand.self, WeightsCommand.self, BenchmarkCommand.self, CheckpointStressCommand.self, DDPCheckCommand.self]
    )
}

enum MedSegVersion {
    static let string = "0.1.0"
}
