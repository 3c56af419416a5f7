import ArgumentParser
import MedSegTrain

/// `--threads` of the commands that take it: 1 to what the machine sensibly runs.
func checkThreads(_ threads: Int?) throws {
    guard let threads else { return }
    guard (1...TrainingConfig.maximumThreads).contains(threads) else {
        throw ValidationError("--threads must be 1 to \(TrainingConfig.maximumThreads) on this machine, got \(threads)")
    }
}

/// --nsd-tolerance is a distance in mm.
func checkNSDTolerance(_ tolerance: Double) throws {
    guard tolerance.isFinite, tolerance >= 0 else { throw ValidationError("--nsd-tolerance must be a distance in mm, 0 or more, got \(tolerance)") }
}
