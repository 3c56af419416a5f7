import Foundation
import Torch

/// Ranks end with the launcher that started them: when a scheduler, the OOM killer or a user kills
/// the launcher (even with SIGKILL, which it cannot forward), orphaned ranks would otherwise keep
/// training and writing into the run folder that a restarted run writes too.
public enum LauncherBinding {
    /// Set by the launcher in each rank's environment: its own process id.
    public static let variable = "MEDSEG_LAUNCHER_PID"

    /// In a rank started by MedSeg's launcher: asks the kernel to kill this process when the
    /// launcher dies, and exits at once if it already has. Does nothing elsewhere (torchrun and
    /// other launchers manage their own workers).
    public static func bindToLauncher(environment: [String: String] = ProcessInfo.processInfo.environment) throws {
        guard let text = environment[variable], let launcher = Int32(text) else { return }
        if try !ParentProcess.endWith(launcher) {
            FileHandle.standardError.write(Data("medseg: the launcher (pid \(launcher)) that started this rank has ended; stopping\n".utf8))
            exit(1)
        }
    }
}
