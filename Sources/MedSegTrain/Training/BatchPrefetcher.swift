import Foundation
import Torch

/// Makes batches on background threads ahead of the training loop and hands them over in order.
/// Batch k is made by `make(k)` whichever thread runs it, so the sequence is the same for any
/// number of workers. At most `depth` finished batches wait at a time (bounded memory).
final class BatchPrefetcher: @unchecked Sendable {
    typealias Batch = (image: Tensor, label: Tensor)

    private let count: Int
    private let depth: Int
    private let make: (Int) throws -> Batch
    private let condition = NSCondition()
    private var nextToMake = 0
    private var nextToTake = 0
    private var ready: [Int: Result<Batch, Error>] = [:]
    private var stopped = false
    private var threads: [Thread] = []
    private var running = 0

    /// With `workers` 0 batches are made on the caller's thread when asked for.
    init(count: Int, workers: Int, depth: Int, make: @escaping (Int) throws -> Batch) {
        self.count = count
        self.depth = max(1, depth)
        self.make = make
        for _ in 0..<workers {
            let t = Thread { [unowned self] in self.work() }
            t.stackSize = 8 << 20
            threads.append(t)
        }
        running = threads.count
        threads.forEach { $0.start() }
    }

    deinit { stop() }

    private func work() {
        while true {
            condition.lock()
            while !stopped && nextToMake < count && nextToMake >= nextToTake + depth { condition.wait() }
            if stopped || nextToMake >= count {
                running -= 1
                condition.broadcast()
                condition.unlock()
                return
            }
            let k = nextToMake
            nextToMake += 1
            condition.unlock()
            let result = Result { try withNoGrad { try make(k) } }
            condition.lock()
            ready[k] = result
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next batch in order; a failure while making it is thrown here.
    func next() throws -> Batch {
        condition.lock()
        let k = nextToTake
        guard k < count else { condition.unlock(); throw TrainingError("no more batches in this epoch") }
        if threads.isEmpty {
            nextToTake += 1
            condition.unlock()
            return try withNoGrad { try make(k) }
        }
        while ready[k] == nil { condition.wait() }
        let result = ready.removeValue(forKey: k)!
        nextToTake += 1
        condition.broadcast()
        condition.unlock()
        return try result.get()
    }

    /// Stops the workers and waits for them to finish.
    func stop() {
        condition.lock()
        stopped = true
        condition.broadcast()
        while running > 0 { condition.wait() }
        condition.unlock()
    }
}
