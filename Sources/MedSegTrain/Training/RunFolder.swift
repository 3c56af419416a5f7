import Foundation
import MedSegData

/// The checkpoints a run keeps.
public enum CheckpointName: Equatable, Sendable {
    case latest, best, final
    /// Kept every `save_every` epochs.
    case epoch(Int)

    public var fileName: String {
        switch self {
        case .latest: return "checkpoint_latest.\(Checkpoint.fileExtension)"
        case .best: return "checkpoint_best.\(Checkpoint.fileExtension)"
        case .final: return "checkpoint_final.\(Checkpoint.fileExtension)"
        case .epoch(let n): return "checkpoint_epoch_\(n).\(Checkpoint.fileExtension)"
        }
    }

    /// "best", "final" or "latest", as `predict --checkpoint` takes them.
    public init?(named name: String) {
        switch name {
        case "best": self = .best
        case "final": self = .final
        case "latest": self = .latest
        default: return nil
        }
    }
}

/// The folder of one training run (one fold): the one place that knows its file names.
public struct RunFolder: Equatable, Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    public func checkpoint(_ name: CheckpointName) -> URL { url.appendingPathComponent(name.fileName) }
    public var config: URL { url.appendingPathComponent("config.yaml") }
    /// The data set the run trained on, so that a resumed run needs no --dataset.
    public var datasetPath: URL { url.appendingPathComponent("dataset_path.txt") }
    /// The final validation's predictions and summary.json.
    public var validation: URL { url.appendingPathComponent("validation") }
    public var plans: URL { url.appendingPathComponent(ExperimentPlans.fileName) }

    public func hasCheckpoint(_ name: CheckpointName) -> Bool { FileManager.default.fileExists(atPath: checkpoint(name).path) }

    /// Whether a run was started here: any of its checkpoints or its config.
    public var holdsRun: Bool {
        hasCheckpoint(.latest) || hasCheckpoint(.final) || FileManager.default.fileExists(atPath: config.path)
    }

    /// Deletes every checkpoint of the folder (a run started afresh over an old one).
    public func removeCheckpoints() throws {
        let fm = FileManager.default
        for name in (try? fm.contentsOfDirectory(atPath: url.path)) ?? [] where name.hasPrefix("checkpoint_") {
            try fm.removeItem(at: url.appendingPathComponent(name))
        }
    }

    public var savedDataset: URL? {
        (try? String(contentsOf: datasetPath, encoding: .utf8)).map { URL(fileURLWithPath: $0) }
    }

    /// The folder of a run given as its folder or one of its checkpoint files.
    public static func containing(_ url: URL) -> RunFolder {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir)
        return RunFolder(isDir.boolValue ? url : url.deletingLastPathComponent())
    }
}

/// An experiment: the folds of one planned configuration (fold_0 .. fold_4, fold_all) and what
/// find-best writes beside them, as nnU-Net lays them out.
public struct ExperimentFolder: Equatable, Sendable {
    public let url: URL
    public init(_ url: URL) { self.url = url }

    /// Fold N, or -1 for "all".
    public static func foldFolderName(_ fold: Int) -> String { fold < 0 ? "fold_all" : "fold_\(fold)" }

    public func fold(_ fold: Int) -> RunFolder { RunFolder(url.appendingPathComponent(Self.foldFolderName(fold))) }

    /// A fold named as `predict --folds` takes it: a number or "all".
    public func fold(named name: String) -> RunFolder { RunFolder(url.appendingPathComponent("fold_\(name)")) }

    /// The numbered folds present, in order.
    public var numberedFolds: [Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? []
        return names.compactMap { $0.hasPrefix("fold_") ? Int($0.dropFirst(5)) : nil }.sorted()
    }

    /// Where the pooled cross-validation of these folds goes.
    public func crossValidation(folds: [Int]) -> URL {
        url.appendingPathComponent("crossval_results_folds_" + folds.map(String.init).joined(separator: "_"))
    }
}
