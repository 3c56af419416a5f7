import Foundation
import MedSegDist
import XCTest
@testable import Torch

/// What one rank reports back to the test's thread (tensors stay on the thread that made them).
private final class RankResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Int: [String: [Float]]] = [:]
    private var errors: [String] = []
    private var names: [Int: [String]] = [:]
    /// The groups live until every rank is done (a rank leaving early could cut a peer's last collective).
    private var groups: [ProcessGroup] = []

    func keep(_ group: ProcessGroup) {
        lock.lock(); defer { lock.unlock() }
        groups.append(group)
    }

    func putNames(_ rank: Int, _ v: [String]) {
        lock.lock(); defer { lock.unlock() }
        names[rank] = v
    }
    func getNames(_ rank: Int) -> [String] {
        lock.lock(); defer { lock.unlock() }
        return names[rank] ?? []
    }

    func put(_ rank: Int, _ name: String, _ v: [Float]) {
        lock.lock(); defer { lock.unlock() }
        values[rank, default: [:]][name] = v
    }
    func fail(_ message: String) {
        lock.lock(); defer { lock.unlock() }
        errors.append(message)
    }
    func get(_ rank: Int, _ name: String) -> [Float] {
        lock.lock(); defer { lock.unlock() }
        return values[rank]?[name] ?? []
    }
    var failures: [String] {
        lock.lock(); defer { lock.unlock() }
        return errors
    }
}

final class SyncBatchNormTests: XCTestCase {
    private static func assertClose(_ a: [Float], _ b: [Float], _ what: String, tolerance: Float = 1e-5,
                                    file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, file: file, line: line)
        XCTAssertFalse(a.isEmpty, what, file: file, line: line)
        let worst = zip(a, b).map { abs($0 - $1) / max(1, abs($1)) }.max() ?? 0
        XCTAssertLessThanOrEqual(worst, tolerance, "\(what): largest difference \(worst)", file: file, line: line)
    }

    /// The same batch of 4: on 1 rank through BatchNorm, and as 2 Gloo ranks (threads of this
    /// process) x 2 through SyncBatchNorm: same outputs, running statistics and gradients (input,
    /// and weight and bias summed over the ranks, as DDP's all-reduce does before averaging).
    func testTwoRanksOfTwoEqualOneRankOfFour() throws {
        try check(dims: 2)
    }

    func testTwoRanksOfTwoEqualOneRankOfFour3D() throws {
        try check(dims: 3)
    }

    private func check(dims: Int) throws {
        let c = 3
        let shape = dims == 2 ? [4, c, 5, 6] : [4, c, 3, 4, 5]
        Torch.manualSeed(5)
        let x = try Tensor.randn(shape) * 2 + 1
        let g = try Tensor.randn(shape)
        let weight = try Tensor.randn([c]), bias = try Tensor.randn([c])
        let xs = try x.floats(), gs = try g.floats(), ws = try weight.floats(), bs = try bias.floats()
        let half = xs.count / 2
        let rankShape = [2] + Array(shape.dropFirst())

        // Reference: plain BatchNorm over the whole batch, two training steps then eval.
        @Sendable func layer(_ group: ProcessGroup?) throws -> BatchNorm {
            let bn: BatchNorm = group == nil ? (dims == 2 ? try BatchNorm2d(c) : try BatchNorm3d(c)) : try SyncBatchNorm(c, group: group)
            try withNoGrad {
                try bn.weight!.copy_(Tensor(ws))
                try bn.bias!.copy_(Tensor(bs))
            }
            return bn
        }
        let reference = try layer(nil)
        let xr = try Tensor(xs, shape: shape)
        xr.requiresGrad = true
        let yr = try reference(xr)
        try (yr * Tensor(gs, shape: shape)).sum().backward()
        _ = try reference(Tensor(xs, shape: shape))  // a second step: running stats compound
        reference.eval()
        let evalRef = try reference(Tensor(xs, shape: shape)).floats()

        let results = RankResults()
        let port = try Launcher.freePort()
        let done = DispatchGroup()
        for rank in 0..<2 {
            done.enter()
            let thread = Thread {
                defer { done.leave() }
                do {
                    let group = try ProcessGroup(masterAddress: "127.0.0.1", masterPort: port, rank: rank, worldSize: 2, timeout: 30)
                    results.keep(group)
                    let bn = try layer(group)
                    let part = Array(xs[(rank * half)..<((rank + 1) * half)])
                    let xi = try Tensor(part, shape: rankShape)
                    xi.requiresGrad = true
                    let y = try bn(xi)
                    try (y * Tensor(Array(gs[(rank * half)..<((rank + 1) * half)]), shape: rankShape)).sum().backward()
                    let dw = try bn.weight!.grad!.clone(), db = try bn.bias!.grad!.clone()
                    try group.allReduceSum(dw)
                    try group.allReduceSum(db)
                    _ = try bn(Tensor(part, shape: rankShape))
                    bn.eval()
                    results.put(rank, "eval", try bn(Tensor(part, shape: rankShape)).floats())
                    results.put(rank, "y", try y.floats())
                    results.put(rank, "dx", try xi.grad!.floats())
                    results.put(rank, "dw", try dw.floats())
                    results.put(rank, "db", try db.floats())
                    results.put(rank, "running_mean", try bn.runningMean!.floats())
                    results.put(rank, "running_var", try bn.runningVar!.floats())
                    results.put(rank, "tracked", [Float(try bn.numBatchesTracked!.item())])
                    results.putNames(rank, bn.namedStateTensors().map(\.name))
                } catch {
                    results.fail("rank \(rank): \(error)")
                }
            }
            thread.start()
        }
        XCTAssertEqual(done.wait(timeout: .now() + 120), .success, "the ranks did not finish")
        XCTAssertEqual(results.failures, [])

        let y = try yr.floats(), dx = try xr.grad!.floats()
        let keys = reference.namedStateTensors().map(\.name)
        for rank in 0..<2 {
            let range = (rank * half)..<((rank + 1) * half)
            Self.assertClose(results.get(rank, "y"), Array(y[range]), "output of rank \(rank)")
            Self.assertClose(results.get(rank, "dx"), Array(dx[range]), "input gradient of rank \(rank)")
            Self.assertClose(results.get(rank, "dw"), try reference.weight!.grad!.floats(), "weight gradient (summed) on rank \(rank)")
            Self.assertClose(results.get(rank, "db"), try reference.bias!.grad!.floats(), "bias gradient (summed) on rank \(rank)")
            Self.assertClose(results.get(rank, "running_mean"), try reference.runningMean!.floats(), "running mean on rank \(rank)")
            Self.assertClose(results.get(rank, "running_var"), try reference.runningVar!.floats(), "running var on rank \(rank)")
            Self.assertClose(results.get(rank, "eval"), Array(evalRef[range]), "eval output of rank \(rank)")
            XCTAssertEqual(results.get(rank, "tracked"), [2])
            XCTAssertEqual(results.getNames(rank), keys, "state_dict names")
        }
    }

    /// convert() makes the BatchNorms of a tree synchronize in place: same objects, parameters and names.
    func testConvertKeepsLayersParametersAndNames() throws {
        let net = Sequential(try Conv2d(1, 4, kernelSize: 3), try BatchNorm2d(4), ReLU(), Sequential(try BatchNorm2d(4)))
        let before = net.namedStateTensors().map { ($0.name, ObjectIdentifier($0.tensor)) }
        let port = try Launcher.freePort()
        let group = try ProcessGroup(masterAddress: "127.0.0.1", masterPort: port, rank: 0, worldSize: 1, timeout: 10)
        XCTAssertEqual(SyncBatchNorm.convert(net, group: group), 2)
        let after = net.namedStateTensors().map { ($0.name, ObjectIdentifier($0.tensor)) }
        XCTAssertEqual(before.map(\.0), after.map(\.0))
        XCTAssertEqual(before.map(\.1), after.map(\.1))
        XCTAssertTrue(net.namedModules().compactMap { $0.module as? BatchNorm }.allSatisfy { $0.syncGroup === group })
        // One rank: the same as BatchNorm.
        let x = try Tensor.randn([2, 1, 6, 6])
        XCTAssertNoThrow(try net(x))
        XCTAssertEqual(SyncBatchNorm.convert(net, group: nil), 2)
        XCTAssertTrue(net.namedModules().compactMap { $0.module as? BatchNorm }.allSatisfy { $0.syncGroup == nil })
    }
}
