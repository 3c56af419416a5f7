import Foundation

/// A one-line progress indicator that redraws in place on a terminal and prints occasional plain
/// lines otherwise (logs, CI).
final class ProgressLine {
    let label: String
    let isTerminal = isatty(STDOUT_FILENO) == 1
    private var lastPrinted = -1

    init(label: String) { self.label = label }

    func update(_ done: Int, _ total: Int) {
        let percent = total > 0 ? done * 100 / total : 100
        if isTerminal {
            let width = 30, filled = total > 0 ? done * width / total : width
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
            print("\r\(label) [\(bar)] \(done)/\(total)", terminator: "")
            fflush(stdout)
        } else if percent / 25 != lastPrinted / 25 || done == total {
            lastPrinted = percent
            print("\(label) \(done)/\(total)")
        }
    }

    func finish() { if isTerminal { print("") } }
}
