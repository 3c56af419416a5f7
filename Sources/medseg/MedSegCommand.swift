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
        do { try LauncherBinding.bindToLauncher() } catch { exit(withError: error) }
        // As ParsableCommand.main, with Foundation's file errors in one readable line.
        do {
            var command = try parseAsRoot(nil)
            try command.run()
        } catch {
            exit(withError: FileErrorText.readable(error) ?? error)
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
