import Foundation
import MedSegData
import Torch

/// One epoch's numbers, as logged to the console, log.txt, training_log.csv, TensorBoard and
/// progress.png.
public struct EpochRecord: Codable, Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var learningRate: Double
    public var seconds: Double
    public var imagesPerSecond: Double
    public var valLoss: Double?
    /// Mean foreground Dice on the validation cases, and per class.
    public var valDice: Double?
    public var valDicePerClass: [Double]?
    public var valIoU: Double?
    public var valAccuracy: Double?
    /// Exponential moving average of the validation Dice (nnU-Net's pseudo-Dice EMA).
    public var emaDice: Double?
}

/// Where a training run says anything: the console (when `console`) and, once `open`ed on the run
/// folder, log.txt, training_log.csv, TensorBoard events and progress.png. Lines said before the
/// folder exists (checking the data, preprocessing) reach log.txt when it opens; a logger never
/// opened (ranks other than 0) writes no file.
public final class RunLogger {
    public private(set) var folder: URL?
    public let console: Bool
    private var logFile: FileHandle?
    private var tensorBoard: TensorBoardWriter?
    private var records: [EpochRecord] = []
    private var pending: [String] = []

    public init(console: Bool = true) { self.console = console }

    /// A logger writing into `folder` at once.
    public convenience init(folder: URL, resumedRecords: [EpochRecord] = [], tensorBoard: Bool = true, console: Bool = true) throws {
        self.init(console: console)
        try open(folder: folder, resumedRecords: resumedRecords, tensorBoard: tensorBoard)
    }

    /// Starts writing the run folder's logs (log.txt appended to), after the lines said so far.
    public func open(folder: URL, resumedRecords: [EpochRecord] = [], tensorBoard: Bool = true) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let logURL = folder.appendingPathComponent("log.txt")
        if !FileManager.default.fileExists(atPath: logURL.path) {
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        }
        let file = try FileHandle(forWritingTo: logURL)
        try file.seekToEnd()
        self.folder = folder
        logFile = file
        self.tensorBoard = tensorBoard ? try TensorBoardWriter(directory: folder) : nil
        records = resumedRecords
        for line in pending { try? file.write(contentsOf: Data(line.utf8)) }
        pending = []
    }

    deinit { try? logFile?.close() }

    public var history: [EpochRecord] { records }

    /// A line to the console and to log.txt, with a timestamp in the file.
    public func log(_ message: String, console: Bool? = nil) {
        if console ?? self.console { print(message) }
        let line = "\(ISO8601DateFormatter().string(from: Date())) \(message)\n"
        if let logFile { try? logFile.write(contentsOf: Data(line.utf8)) } else { pending.append(line) }
    }

    /// An epoch's numbers into training_log.csv, TensorBoard and progress.png (kept in `history`).
    public func record(_ r: EpochRecord) throws {
        records.removeAll { $0.epoch >= r.epoch }
        records.append(r)
        guard folder != nil else { return }
        try writeCSV()
        if let tb = tensorBoard {
            try tb.addScalar("train/loss", r.trainLoss, step: r.epoch)
            try tb.addScalar("train/lr", r.learningRate, step: r.epoch)
            try tb.addScalar("train/img_per_s", r.imagesPerSecond, step: r.epoch)
            if let v = r.valLoss { try tb.addScalar("val/loss", v, step: r.epoch) }
            if let v = r.valDice { try tb.addScalar("val/dice", v, step: r.epoch) }
            if let v = r.valIoU { try tb.addScalar("val/iou", v, step: r.epoch) }
            if let v = r.valAccuracy { try tb.addScalar("val/accuracy", v, step: r.epoch) }
            if let v = r.emaDice { try tb.addScalar("val/ema_dice", v, step: r.epoch) }
            try tb.flush()
        }
        try drawProgress()
    }

    private func writeCSV() throws {
        let classCount = records.compactMap { $0.valDicePerClass?.count }.max() ?? 0
        var header = ["epoch", "train_loss", "val_loss", "val_dice", "ema_dice", "val_iou", "val_accuracy", "lr", "seconds", "img_per_s"]
        header += (0..<classCount).map { "val_dice_class\($0 + 1)" }
        func f(_ v: Double?) -> String { v.map { String(format: "%.6g", $0) } ?? "" }
        var lines = [header.joined(separator: ",")]
        for r in records {
            var row = [String(r.epoch), f(r.trainLoss), f(r.valLoss), f(r.valDice), f(r.emaDice), f(r.valIoU), f(r.valAccuracy),
                       f(r.learningRate), f(r.seconds), f(r.imagesPerSecond)]
            row += (0..<classCount).map { c in f(r.valDicePerClass.flatMap { c < $0.count ? $0[c] : nil }) }
            lines.append(row.joined(separator: ","))
        }
        try AtomicFile.write(Data((lines.joined(separator: "\n") + "\n").utf8), to: folder!.appendingPathComponent("training_log.csv"))
    }

    /// Redraws progress.png with the loss and Dice curves.
    private func drawProgress() throws {
        let plot = ProgressPlot(series: [
            .init(name: "train loss", color: (31, 119, 180), points: records.map { (Double($0.epoch), $0.trainLoss) }),
            .init(name: "val loss", color: (214, 39, 40), points: records.compactMap { r in r.valLoss.map { (Double(r.epoch), $0) } }),
            .init(name: "val dice", color: (44, 160, 44), points: records.compactMap { r in r.valDice.map { (Double(r.epoch), $0) } }, unitRange: true),
            .init(name: "ema dice", color: (148, 103, 189), points: records.compactMap { r in r.emaDice.map { (Double(r.epoch), $0) } }, unitRange: true),
        ])
        let rgb = plot.render()
        let n = plot.width * plot.height
        var planar = [Float](repeating: 0, count: n * 3)
        for i in 0..<n { for c in 0..<3 { planar[c * n + i] = Float(rgb[i * 3 + c]) } }
        let image = MedicalImage(size: [plot.width, plot.height], channels: 3, voxels: planar, pixelType: .rgb8)
        try ImageIO.write(image, to: folder!.appendingPathComponent("progress.png"))
    }
}
