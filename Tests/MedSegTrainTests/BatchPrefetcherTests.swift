import Foundation
import XCTest
import Torch
@testable import MedSegTrain

final class BatchPrefetcherTests: XCTestCase {
    private func batch(_ k: Int) throws -> BatchPrefetcher.Batch {
        (try Tensor.full([2, 3], Double(k)), try Tensor.full([1], Double(k * k)))
    }

    func testSameOrderAndContentForAnyNumberOfWorkers() throws {
        for workers in [0, 1, 3] {
            let p = BatchPrefetcher(count: 12, workers: workers, depth: 2) { try self.batch($0) }
            for k in 0..<12 {
                let (x, y) = try p.next()
                XCTAssertEqual(try x.floats(), Array(repeating: Float(k), count: 6), "workers \(workers) batch \(k)")
                XCTAssertEqual(try y.item(), Double(k * k))
            }
            XCTAssertThrowsError(try p.next())
            p.stop()
        }
    }

    func testWorkersStayABoundedDistanceAhead() throws {
        let made = NSLock()
        var highest = -1
        let p = BatchPrefetcher(count: 50, workers: 3, depth: 4) { k in
            made.lock(); highest = max(highest, k); made.unlock()
            return try self.batch(k)
        }
        for k in 0..<10 {
            _ = try p.next()
            usleep(5_000)
            made.lock(); let ahead = highest - k; made.unlock()
            XCTAssertLessThanOrEqual(ahead, 4 + 3, "at most depth + workers batches beyond the consumer")
        }
        p.stop()
    }

    func testAFailureSurfacesAtItsBatch() throws {
        struct Broken: Error {}
        let p = BatchPrefetcher(count: 5, workers: 2, depth: 2) { k in
            if k == 2 { throw Broken() }
            return try self.batch(k)
        }
        _ = try p.next()
        _ = try p.next()
        XCTAssertThrowsError(try p.next()) { XCTAssertTrue($0 is Broken) }
        p.stop()
    }
}
