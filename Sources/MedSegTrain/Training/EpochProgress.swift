import Foundation

/// The per-epoch progress bar (iteration, loss, lr, img/s, ETA); plain lines when the output is
/// not a terminal.
final class EpochProgress {
    let epoch: Int, epochs: Int, iterations: Int
    let enabled: Bool
    let terminal = isatty(STDOUT_FILENO) == 1
    private let started = DispatchTime.now().uptimeNanoseconds
    private var lastLine = 0.0

    init(epoch: Int, epochs: Int, iterations: Int, enabled: Bool) {
        self.epoch = epoch; self.epochs = epochs; self.iterations = iterations; self.enabled = enabled
    }

    func update(_ iteration: Int, loss: Double, lr: Double, imagesPerSecond: Double) {
        guard enabled else { return }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        let eta = elapsed / Double(iteration) * Double(iterations - iteration)
        let text = String(format: "epoch %d/%d %d/%d loss %.4f lr %.2e %.1f img/s ETA %.0fs", epoch, epochs, iteration, iterations, loss, lr, imagesPerSecond, eta)
        if terminal {
            let width = 20, filled = iteration * width / max(1, iterations)
            print("\r[" + String(repeating: "=", count: filled) + String(repeating: " ", count: width - filled) + "] " + text, terminator: "")
            fflush(stdout)
        } else if elapsed - lastLine >= 30 {
            lastLine = elapsed
            print(text)
        }
    }

    func finish() { if enabled && terminal { print("") } }
}
