import Foundation
import Torch

/// Starts and supervises the local ranks of a distributed run, like torchrun: sets each rank's
/// environment, streams its output prefixed with its rank, stops the others as soon as one fails
/// (naming it), and restarts the whole local group up to `maxRestarts` times.
public final class Launcher {
    public struct Options: Sendable {
        public var nprocPerNode: Int
        public var nnodes = 1
        public var nodeRank = 0
        public var masterAddress = "127.0.0.1"
        public var masterPort = 29500
        public var maxRestarts = 0
        /// Seconds a rank gets to exit after SIGTERM before SIGKILL.
        public var gracePeriod: TimeInterval = 5

        public init(nprocPerNode: Int, nnodes: Int = 1, nodeRank: Int = 0, masterAddress: String = "127.0.0.1",
                    masterPort: Int = 29500, maxRestarts: Int = 0) {
            self.nprocPerNode = nprocPerNode; self.nnodes = nnodes; self.nodeRank = nodeRank
            self.masterAddress = masterAddress; self.masterPort = masterPort; self.maxRestarts = maxRestarts
        }
    }

    public let executable: URL
    public let options: Options
    /// Arguments for each (re)start: given the restart count, what the ranks run.
    public let arguments: (Int) -> [String]
    private let outputLock = NSLock()

    public init(executable: URL, options: Options, arguments: @escaping (Int) -> [String]) {
        self.executable = executable
        self.options = options
        self.arguments = arguments
    }

    /// A free TCP port on this machine (for --master-port 0).
    public static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw DistributedError("cannot open a socket to find a free port") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = INADDR_ANY
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw DistributedError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs the ranks to completion; returns 0 when every rank succeeded.
    public func run() throws -> Int32 {
        var port = options.masterPort
        if port == 0 {
            guard options.nnodes == 1 else { throw DistributedError("\(Setting.named("master_port", value: "0")) picks a free port on one node only; give every node the same port") }
            port = try Self.freePort()
        }
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let threads = ProcessInfo.processInfo.environment["OMP_NUM_THREADS"].flatMap(Int.init) ?? max(1, cores / options.nprocPerNode)
        log("launching \(options.nprocPerNode) rank(s) on node \(options.nodeRank) of \(options.nnodes) (world size \(options.nprocPerNode * options.nnodes)), master \(options.masterAddress):\(port), \(threads) thread(s) per rank")
        var restart = 0
        while true {
            let failure = try runGroup(restart: restart, port: port, threads: threads)
            guard let failure else { return 0 }
            log(failure)
            if restart >= options.maxRestarts {
                if options.maxRestarts > 0 { log("giving up after \(restart) restart(s)") }
                return 1
            }
            restart += 1
            log("restarting the group (restart \(restart) of \(options.maxRestarts)) from the latest checkpoint")
        }
    }

    /// Starts every local rank and waits; returns nil on success or a message naming the failed rank.
    private func runGroup(restart: Int, port: Int, threads: Int) throws -> String? {
        var processes: [(rank: Int, process: Process)] = []
        let args = arguments(restart)
        for local in 0..<options.nprocPerNode {
            let vars = DistributedEnvironment.variables(localRank: local, nproc: options.nprocPerNode, nodeRank: options.nodeRank,
                                                        nnodes: options.nnodes, masterAddress: options.masterAddress, masterPort: port,
                                                        restartCount: restart, maxRestarts: options.maxRestarts, threadsPerRank: threads)
            let rank = Int(vars["RANK"]!)!
            let p = Process()
            p.executableURL = executable
            p.arguments = args
            p.environment = ProcessInfo.processInfo.environment.merging(vars) { _, new in new }
                .merging([LauncherBinding.variable: String(getpid())]) { _, new in new }
            let pipe = Pipe()
            p.standardOutput = pipe
            p.standardError = pipe
            stream(pipe, prefix: "[rank \(rank)] ")
            try p.run()
            processes.append((rank, p))
        }
        defer { for (_, p) in processes { p.waitUntilExit() } }
        func failed(_ p: Process) -> Bool { !p.isRunning && (p.terminationReason == .uncaughtSignal || p.terminationStatus != 0) }
        while true {
            if processes.contains(where: { failed($0.process) }) {
                // The ranks that lose their peer fail too, an instant later: let them, then name
                // the ranks that died by a signal first, as they are the likely cause.
                let deadline = Date().addingTimeInterval(1)
                while processes.contains(where: \.process.isRunning) && Date() < deadline { usleep(20_000) }
                let failures = processes.filter { failed($0.process) }
                    .sorted { ($0.process.terminationReason == .uncaughtSignal ? 0 : 1, $0.rank) < ($1.process.terminationReason == .uncaughtSignal ? 0 : 1, $1.rank) }
                stopAll(processes.map(\.process))
                let described = failures.map { rank, p in
                    "rank \(rank) (pid \(p.processIdentifier)) " + (p.terminationReason == .uncaughtSignal
                        ? "was killed by signal \(p.terminationStatus)" : "exited with status \(p.terminationStatus)")
                }
                return described.joined(separator: "; then ") + "; stopped the other rank(s) of this node"
            }
            if !processes.contains(where: \.process.isRunning) { return nil }
            usleep(100_000)
        }
    }

    private func stopAll(_ processes: [Process]) {
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(options.gracePeriod)
        while processes.contains(where: \.isRunning) && Date() < deadline { usleep(50_000) }
        for p in processes where p.isRunning { kill(p.processIdentifier, SIGKILL) }
    }

    /// Forwards a rank's output line by line with its prefix.
    private func stream(_ pipe: Pipe, prefix: String) {
        let buffer = LineBuffer()
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            if data.isEmpty {
                handle.readabilityHandler = nil
                if let rest = buffer.flush() { self?.emit(prefix + rest) }
                return
            }
            for line in buffer.append(data) { self?.emit(prefix + line) }
        }
    }

    private func emit(_ line: String) {
        outputLock.lock()
        defer { outputLock.unlock() }
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    private func log(_ message: String) { emit("[launcher] " + message) }
}

/// Splits a byte stream into lines (progress-bar carriage returns count as line ends).
final class LineBuffer: @unchecked Sendable {
    private var pending = Data()
    private let lock = NSLock()

    func append(_ data: Data) -> [String] {
        lock.lock()
        defer { lock.unlock() }
        pending.append(data)
        var lines: [String] = []
        while let end = pending.firstIndex(where: { $0 == 0x0a || $0 == 0x0d }) {
            let line = String(decoding: pending[pending.startIndex..<end], as: UTF8.self)
            pending.removeSubrange(pending.startIndex...end)
            if !line.isEmpty { lines.append(line) }
        }
        return lines
    }

    func flush() -> String? {
        lock.lock()
        defer { lock.unlock() }
        guard !pending.isEmpty else { return nil }
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }
}
