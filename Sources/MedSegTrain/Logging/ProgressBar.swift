import Foundation

/// The one progress indicator of every long command (synth, import, preprocess, predict and each
/// training epoch): a bar redrawn in place on a terminal; when the output is a log or a pipe,
/// plain lines at each quarter, or with `plainEvery` at most one line per that many seconds
/// (a training epoch, whose own summary line follows).
public final class ProgressBar {
    public let label: String
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private let enabled: Bool
    private let plainEvery: TimeInterval?
    private let started = DispatchTime.now().uptimeNanoseconds
    private var lastQuarter = -1
    private var lastPlain = 0.0

    public init(label: String, enabled: Bool = true, plainEvery: TimeInterval? = nil) {
        self.label = label
        self.enabled = enabled
        self.plainEvery = plainEvery
    }

    /// `done` of `total`, with `detail` after the count (an epoch's loss, rate and time left).
    public func update(_ done: Int, _ total: Int, detail: String = "") {
        guard enabled else { return }
        let tail = detail.isEmpty ? "" : " " + detail
        if isTerminal {
            let width = 30, filled = total > 0 ? min(width, done * width / total) : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            print("\r\(label) [\(bar)] \(done)/\(total)\(tail)", terminator: "")
            fflush(stdout)
            return
        }
        if let plainEvery {
            let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            guard elapsed - lastPlain >= plainEvery else { return }
            lastPlain = elapsed
            print("\(label) \(done)/\(total)\(tail)")
            return
        }
        let quarter = total > 0 ? done * 4 / total : 4
        if quarter != lastQuarter || done == total {
            lastQuarter = quarter
            print("\(label) \(done)/\(total)\(tail)")
        }
    }

    /// Ends the bar's line on a terminal.
    public func finish() { if enabled && isTerminal { print("") } }
}
