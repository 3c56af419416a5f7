import Foundation
import Torch

/// A training batch: image [B, C, (D,) H, W], label [B, 1, (D,) H, W], and the cases it was cut
/// from (when the source says).
public struct Batch {
    public var image: Tensor
    public var label: Tensor
    public var caseIdentifiers: [String]

    public init(image: Tensor, label: Tensor, caseIdentifiers: [String] = []) {
        self.image = image; self.label = label; self.caseIdentifiers = caseIdentifiers
    }
}

/// Makes batch `index` of an epoch. Called concurrently from the loader's worker threads, so an
/// implementation must be safe for that (reading shared case tensors is; mutating shared state
/// needs a lock). All randomness must come from `rng`, which the loader derives from
/// (seed, epoch, index): then batch k is the same whichever worker makes it, and when.
/// Throw `CaseError` (or use `CaseError.naming`) to have a failure name its case.
public protocol BatchSource {
    func makeBatch(index: Int, rng: inout RandomSource) throws -> Batch
}

/// An error tied to one case of a data set.
public struct CaseError: Error, CustomStringConvertible, LocalizedError {
    public let identifier: String
    public let underlying: Error

    public init(identifier: String, underlying: Error) {
        self.identifier = identifier; self.underlying = underlying
    }

    /// Runs `body`, reporting any error as one about case `identifier` (once: an error that
    /// already names a case keeps it).
    public static func naming<R>(_ identifier: String, _ body: () throws -> R) throws -> R {
        do { return try body() } catch let error as CaseError { throw error } catch {
            throw CaseError(identifier: identifier, underlying: error)
        }
    }

    public var description: String { "case \(identifier): \(underlying)" }
    public var errorDescription: String? { description }
}

/// A failure while making a batch, delivered to the consumer in that batch's place.
public struct BatchLoaderError: Error, CustomStringConvertible, LocalizedError {
    public let batch: Int
    /// The case it happened in, when the source said (via `CaseError`).
    public let caseIdentifier: String?
    public let underlying: Error

    public init(batch: Int, error: Error) {
        self.batch = batch
        if let caseError = error as? CaseError {
            caseIdentifier = caseError.identifier
            underlying = caseError.underlying
        } else {
            caseIdentifier = nil
            underlying = error
        }
    }

    public var description: String {
        "batch \(batch)" + (caseIdentifier.map { " (case \($0))" } ?? "") + ": \(underlying)"
    }
    public var errorDescription: String? { description }
}

/// Makes the batches of one epoch on background threads, ahead of the training loop, and hands
/// them over in order 0, 1, 2, ...
///
/// - Deterministic: batch k is made with `BatchLoader.rng(seed:epoch:batch:)`, whichever worker
///   makes it, so the sequence is the same for any number of workers.
/// - Bounded memory: a worker starts batch k only while k < taken + prefetch + workers, where
///   `taken` is the number of batches the consumer has received; so at most `prefetch` finished
///   batches wait, plus one in progress per worker.
/// - A failure while making batch k is thrown by the `next()` call that would have returned it
///   (as a `BatchLoaderError` naming the batch and, when known, the case); later batches are
///   still delivered.
/// - `stop()` (also run on deinit) lets workers finish the batch in hand, then waits until every
///   worker thread has returned.
/// - Batches are made under `withNoGrad` (grad mode is per thread in libtorch).
/// With `workers` 0 batches are made on the caller's thread inside `next()`.
public final class BatchLoader: @unchecked Sendable {
    public let count: Int
    public let workers: Int
    public let prefetch: Int
    public let seed: UInt64
    public let epoch: Int
    private let state: State

    /// The generator batch `batch` of `epoch` is made with.
    public static func rng(seed: UInt64, epoch: Int, batch: Int) -> RandomSource {
        RandomSource.derived(seed: seed, epoch, batch)
    }

    public init(source: any BatchSource, batches count: Int, workers: Int = 2, prefetch: Int = 2,
                seed: UInt64 = 0, epoch: Int = 0) {
        self.count = max(0, count)
        self.workers = max(0, workers)
        self.prefetch = max(0, prefetch)
        self.seed = seed
        self.epoch = epoch
        state = State(source: source, count: self.count, ahead: max(1, self.prefetch + self.workers), seed: seed, epoch: epoch)
        if self.workers > 0 { state.start(workers: self.workers) }
    }

    deinit { state.stop() }

    /// The next batch in order, nil after the last one (or once stopped).
    public func next() throws -> Batch? {
        try state.next(synchronous: workers == 0)
    }

    /// Stops the workers and waits for their threads to return. Idempotent.
    public func stop() { state.stop() }

    /// Worker threads that have not yet returned.
    public var runningWorkers: Int { state.runningCount }

    /// Batches handed to the consumer so far.
    public var delivered: Int { state.takenCount }

    /// The state the workers share. Workers hold it, never the loader, so the loader can be
    /// released (and stop them from its deinit) while they run.
    private final class State: @unchecked Sendable {
        let source: any BatchSource
        let count: Int
        let ahead: Int
        let seed: UInt64
        let epoch: Int
        let condition = NSCondition()
        var nextToMake = 0
        var taken = 0
        var ready: [Int: Result<Batch, Error>] = [:]
        var stopped = false
        var running = 0

        init(source: any BatchSource, count: Int, ahead: Int, seed: UInt64, epoch: Int) {
            self.source = source; self.count = count; self.ahead = ahead; self.seed = seed; self.epoch = epoch
        }

        func start(workers: Int) {
            condition.lock()
            running = workers
            condition.unlock()
            for i in 0..<workers {
                let thread = Thread { [self] in self.work() }
                thread.name = "medseg.loader.\(i)"
                thread.stackSize = 8 << 20
                thread.start()
            }
        }

        var runningCount: Int {
            condition.lock(); defer { condition.unlock() }
            return running
        }

        var takenCount: Int {
            condition.lock(); defer { condition.unlock() }
            return taken
        }

        func make(_ k: Int) -> Result<Batch, Error> {
            var rng = BatchLoader.rng(seed: seed, epoch: epoch, batch: k)
            return Result { try withNoGrad { try source.makeBatch(index: k, rng: &rng) } }
        }

        func work() {
            while true {
                condition.lock()
                while !stopped && nextToMake < count && nextToMake >= taken + ahead { condition.wait() }
                if stopped || nextToMake >= count {
                    running -= 1
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                let k = nextToMake
                nextToMake += 1
                condition.unlock()
                let result = make(k)
                condition.lock()
                if !stopped { ready[k] = result }
                condition.broadcast()
                condition.unlock()
            }
        }

        func next(synchronous: Bool) throws -> Batch? {
            condition.lock()
            let k = taken
            guard k < count, !stopped else { condition.unlock(); return nil }
            let result: Result<Batch, Error>
            if synchronous {
                taken += 1
                condition.unlock()
                result = make(k)
            } else {
                while ready[k] == nil && !stopped { condition.wait() }
                guard let made = ready.removeValue(forKey: k) else { condition.unlock(); return nil }
                result = made
                taken += 1
                condition.broadcast()
                condition.unlock()
            }
            do { return try result.get() } catch { throw BatchLoaderError(batch: k, error: error) }
        }

        func stop() {
            condition.lock()
            stopped = true
            ready.removeAll()
            condition.broadcast()
            while running > 0 { condition.wait() }
            condition.unlock()
        }
    }
}
