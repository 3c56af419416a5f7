import Foundation
import XCTest
import Torch
@testable import MedSegData

/// Patch sampling with foreground oversampling, rank sharding and the prefetching loader.
final class LoaderTests: XCTestCase {
    // MARK: patch sampling

    /// A 100x100 case whose only foreground is 10 voxels (0.1 %) of class 2 near a corner.
    func sparseCase() throws -> PatchCase {
        var rng = RandomSource(seed: 1)
        let image = try rng.uniformTensor([1, 100, 100])
        var label = [Float](repeating: 0, count: 100 * 100)
        for x in 90..<95 { label[95 * 100 + x] = 2; label[96 * 100 + x] = 2 }
        let labelTensor = try Tensor(label, shape: [1, 100, 100])
        var fgRNG = RandomSource(seed: 2)
        let foreground = try ForegroundLocations.compute(label: labelTensor, classes: 2, rng: &fgRNG)
        return PatchCase(identifier: "sparse", image: image, label: labelTensor, foreground: foreground)
    }

    func testForegroundLocationsAreSubsampledPerClass() throws {
        var label = [Float](repeating: 0, count: 200 * 200)
        for i in 0..<30_000 { label[i] = 1 }
        for i in 30_000..<30_050 { label[i] = 3 }
        var rng = RandomSource(seed: 3)
        let locations = try ForegroundLocations.compute(label: Tensor(label, shape: [1, 200, 200]), maxPerClass: 10_000, rng: &rng)
        XCTAssertEqual(locations.count, 3)
        XCTAssertEqual(locations[0].count, 10_000)
        XCTAssertTrue(locations[0].allSatisfy { $0 < 30_000 })
        XCTAssertEqual(Set(locations[0]).count, 10_000, "without replacement")
        XCTAssertEqual(locations[1], [])
        XCTAssertEqual(locations[2], Array(30_000..<30_050))
    }

    func testLastSampleOfABatchOfThreeAlwaysHoldsForeground() throws {
        let c = try sparseCase()
        let sampler = PatchSampler(patchSize: [32, 32])
        XCTAssertEqual(sampler.forcedCount(batchSize: 3), 1)
        XCTAssertEqual(sampler.forcedCount(batchSize: 2), 1)
        XCTAssertEqual(sampler.forcedCount(batchSize: 8), 3)
        XCTAssertEqual(sampler.forcedCount(batchSize: 64), 21)
        XCTAssertEqual(sampler.forcedCount(batchSize: 1), 0, "nnU-Net never oversamples a batch of 1")
        XCTAssertEqual((0..<3).map { sampler.forcesForeground(sample: $0, batchSize: 3) }, [false, false, true])
        var unforcedWithForeground = 0
        for seed in 0..<60 {
            var rng = RandomSource(seed: UInt64(seed))
            let batch = try sampler.batch([c, c, c], rng: &rng)
            XCTAssertEqual(batch.image.shape, [3, 1, 32, 32])
            XCTAssertEqual(batch.label.shape, [3, 1, 32, 32])
            XCTAssertEqual(batch.caseIdentifiers, ["sparse", "sparse", "sparse"])
            XCTAssertGreaterThan(try batch.label[2].sum().item(), 0, "seed \(seed): the forced sample misses the foreground")
            for s in 0..<2 {
                if try batch.label[s].sum().item() > 0 { unforcedWithForeground += 1 }
            }
        }
        XCTAssertLessThan(unforcedWithForeground, 30, "random windows rarely hit 0.1 % foreground")
    }

    func testPatchLargerThanImageIsPaddedAndTheImageCanLieAnywhere() throws {
        let image = try Tensor.ones([2, 10, 12])
        let label = try Tensor.full([1, 10, 12], 1)
        let c = PatchCase(identifier: "small", image: image, label: label, foreground: [[0, 5, 119]])
        let sampler = PatchSampler(patchSize: [16, 16])
        XCTAssertEqual(sampler.startRange(shape: [10, 12]), [-6...0, -4...0])
        var starts = Set<[Int]>()
        var rng = RandomSource(seed: 4)
        for i in 0..<200 {
            let patch = try sampler.sample(c, forceForeground: i % 2 == 1, rng: &rng)
            XCTAssertEqual(patch.image.shape, [2, 16, 16])
            XCTAssertEqual(patch.label?.shape, [1, 16, 16])
            XCTAssertEqual(try patch.image.sum().item(), 240, "the whole image is inside the patch")
            XCTAssertEqual(try patch.label!.sum().item(), 120, "label padded with 0")
            starts.insert(patch.start)
        }
        XCTAssertTrue(starts.contains([-6, -4]) && starts.contains([0, 0]), "corners reached: \(starts.count) placements")
        XCTAssertGreaterThan(starts.count, 20)

        // A window reaching past the border of a larger image is zero-padded there.
        let big = PatchCase(identifier: "big", image: try Tensor.ones([1, 40, 40]), label: nil, foreground: [])
        let margin = PatchSampler(patchSize: [16, 16], margin: [8, 8])
        XCTAssertEqual(margin.startRange(shape: [40, 40]), [-4...28, -4...28])
        let cut = try margin.cut(big.image, start: [-4, 30])
        XCTAssertEqual(try cut.sum().item(), 12 * 10)
    }

    func testForcedWindowIsCentredOnTheForegroundVoxel() throws {
        let sampler = PatchSampler(patchSize: [8, 8, 8])
        var rng = RandomSource(seed: 5)
        // Voxel (10, 20, 30) of a 40^3 volume as a flat index.
        let flat = (10 * 40 + 20) * 40 + 30
        let start = try sampler.window(shape: [40, 40, 40], foreground: [[], [flat]], forceForeground: true, rng: &rng)
        XCTAssertEqual(start, [6, 16, 26])
        // Near the border the window is moved back into range but still holds the voxel.
        let corner = try sampler.window(shape: [40, 40, 40], foreground: [[39 * 1600 + 39 * 40 + 39]], forceForeground: true, rng: &rng)
        XCTAssertEqual(corner, [32, 32, 32])
    }

    // MARK: distributed sampler

    func testDistributedSamplerSizesAsPyTorch() {
        let padded = (0..<3).map { DistributedSampler(count: 10, replicas: 3, rank: $0, seed: 4) }
        XCTAssertEqual(padded[0].numSamples, 4)
        XCTAssertEqual(padded[0].totalSize, 12)
        let shards = padded.map { $0.indices() }
        XCTAssertTrue(shards.allSatisfy { $0.count == 4 })
        XCTAssertEqual(Set(shards.joined()), Set(0..<10), "every index is covered")

        let dropped = (0..<3).map { DistributedSampler(count: 10, replicas: 3, rank: $0, seed: 4, dropLast: true) }
        XCTAssertEqual(dropped[0].numSamples, 3)
        XCTAssertEqual(dropped[0].totalSize, 9)
        let droppedShards = dropped.map { $0.indices() }
        XCTAssertEqual(Set(droppedShards.joined()).count, 9, "disjoint, one index dropped")

        // Without shuffling the result is exactly PyTorch's.
        let ordered = (0..<3).map { DistributedSampler(count: 10, replicas: 3, rank: $0, shuffle: false).indices() }
        XCTAssertEqual(ordered, [[0, 3, 6, 9], [1, 4, 7, 0], [2, 5, 8, 1]])
        let orderedDrop = (0..<3).map { DistributedSampler(count: 10, replicas: 3, rank: $0, shuffle: false, dropLast: true).indices() }
        XCTAssertEqual(orderedDrop, [[0, 3, 6], [1, 4, 7], [2, 5, 8]])
        // Padding longer than the data set repeats it (PyTorch: indices * ceil(pad / len)).
        XCTAssertEqual(DistributedSampler(count: 2, replicas: 5, rank: 0, shuffle: false).allIndices(), [0, 1, 0, 1, 0])
        XCTAssertEqual(DistributedSampler(count: 2, replicas: 5, rank: 4, shuffle: false).indices(), [0])
        XCTAssertEqual(DistributedSampler(count: 2, replicas: 5, rank: 0, dropLast: true).numSamples, 0)
        XCTAssertEqual(DistributedSampler(count: 0, replicas: 2, rank: 1).indices(), [])
    }

    func testDistributedSamplerShardsAreDisjointDeterministicAndChangeWithTheEpoch() {
        var ranks = (0..<4).map { DistributedSampler(count: 20, replicas: 4, rank: $0, seed: 7) }
        let epoch0 = ranks.map { $0.indices() }
        XCTAssertEqual(Set(epoch0.joined()).count, 20, "disjoint when divisible")
        XCTAssertEqual(epoch0.joined().count, 20)
        XCTAssertEqual(ranks.map { $0.allIndices() }.reduce(into: Set<[Int]>()) { $0.insert($1) }.count, 1, "same list on every rank")
        XCTAssertEqual(DistributedSampler(count: 20, replicas: 4, rank: 2, seed: 7).indices(), epoch0[2], "deterministic")
        XCTAssertNotEqual(epoch0[0] + epoch0[1], Array(0..<10), "shuffled")
        for i in ranks.indices { ranks[i].setEpoch(1) }
        let epoch1 = ranks.map { $0.indices() }
        XCTAssertNotEqual(epoch1, epoch0)
        XCTAssertEqual(Set(epoch1.joined()).count, 20)
        ranks[0].setEpoch(0)
        XCTAssertEqual(ranks[0].indices(), epoch0[0])
        XCTAssertNotEqual(DistributedSampler(count: 20, replicas: 4, rank: 0, seed: 8).indices(), epoch0[0], "seed matters")
    }

    // MARK: loader

    /// Batch k holds k and numbers from its generator; counts calls and how far ahead of the
    /// consumer they start.
    final class CountingSource: BatchSource {
        let lock = NSLock()
        var started = 0
        var maxAhead = 0
        weak var loader: BatchLoader?
        var failAt: Int? = nil
        var delay: TimeInterval = 0

        func makeBatch(index: Int, rng: inout RandomSource) throws -> Batch {
            lock.lock()
            started += 1
            let delivered = loader?.delivered ?? 0
            maxAhead = max(maxAhead, index + 1 - delivered)
            lock.unlock()
            XCTAssertFalse(isGradEnabled, "batches are made without autograd")
            if delay > 0 { Thread.sleep(forTimeInterval: delay) }
            if index == failAt {
                return try CaseError.naming("case_00\(index)") { () throws -> Batch in throw DataError("truncated file") }
            }
            let noise = try rng.uniformTensor([2, 1, 4, 4])
            return Batch(image: try noise + Double(index), label: try Tensor.full([2, 1, 4, 4], Double(index)))
        }
    }

    func collect(_ loader: BatchLoader) throws -> [[Float]] {
        var out: [[Float]] = []
        while let batch = try loader.next() { out.append(try batch.image.floats()) }
        return out
    }

    func testBatchesArriveInOrderWithTheSameContentForAnyNumberOfWorkers() throws {
        let runs = try [0, 1, 3].map { workers in
            try collect(BatchLoader(source: CountingSource(), batches: 12, workers: workers, prefetch: 2, seed: 9, epoch: 1))
        }
        XCTAssertEqual(runs[0].count, 12)
        XCTAssertEqual(runs[0], runs[1])
        XCTAssertEqual(runs[0], runs[2])
        for (k, values) in runs[2].enumerated() {
            XCTAssertTrue(values.allSatisfy { $0 >= Float(k) && $0 < Float(k + 1) }, "batch \(k) out of order")
        }
        let otherEpoch = try collect(BatchLoader(source: CountingSource(), batches: 12, workers: 2, seed: 9, epoch: 2))
        XCTAssertNotEqual(otherEpoch, runs[0])
    }

    func testPrefetchIsBounded() throws {
        for (workers, prefetch) in [(1, 1), (3, 2)] {
            let source = CountingSource()
            let loader = BatchLoader(source: source, batches: 40, workers: workers, prefetch: prefetch, seed: 1)
            source.lock.lock(); source.loader = loader; source.lock.unlock()
            var taken = 0
            while let _ = try loader.next() {
                taken += 1
                Thread.sleep(forTimeInterval: 0.002)   // a slow consumer: workers run ahead
            }
            XCTAssertEqual(taken, 40)
            source.lock.lock()
            XCTAssertLessThanOrEqual(source.maxAhead, prefetch + workers, "workers \(workers) prefetch \(prefetch)")
            XCTAssertGreaterThan(source.maxAhead, 1, "batches are made ahead")
            XCTAssertEqual(source.started, 40)
            source.lock.unlock()
        }
    }

    func testAnErrorInTheSourceSurfacesForItsBatch() throws {
        let source = CountingSource()
        source.failAt = 2
        let loader = BatchLoader(source: source, batches: 5, workers: 2, prefetch: 1)
        XCTAssertNotNil(try loader.next())
        XCTAssertNotNil(try loader.next())
        XCTAssertThrowsError(try loader.next()) { error in
            guard let e = error as? BatchLoaderError else { return XCTFail("\(error)") }
            XCTAssertEqual(e.batch, 2)
            XCTAssertEqual(e.caseIdentifier, "case_002")
            XCTAssertTrue("\(e)".contains("case_002") && "\(e)".contains("truncated file"), "\(e)")
        }
        XCTAssertNotNil(try loader.next(), "later batches still come")
        XCTAssertNotNil(try loader.next())
        XCTAssertNil(try loader.next())
    }

    func testStopJoinsTheWorkersAndDeinitReleasesThem() throws {
        let source = CountingSource()
        source.delay = 0.005
        let loader = BatchLoader(source: source, batches: 1000, workers: 3, prefetch: 2)
        XCTAssertNotNil(try loader.next())
        loader.stop()
        XCTAssertEqual(loader.runningWorkers, 0)
        XCTAssertNil(try loader.next(), "nothing after stop")
        source.lock.lock()
        let startedAtStop = source.started
        source.lock.unlock()
        Thread.sleep(forTimeInterval: 0.05)
        source.lock.lock()
        XCTAssertEqual(source.started, startedAtStop, "no work after stop")
        XCTAssertLessThanOrEqual(startedAtStop, 1 + 2 + 3)
        source.lock.unlock()
        loader.stop()   // idempotent

        // Dropping a running loader stops its threads, which then release the source.
        weak var weakSource: CountingSource?
        do {
            let s = CountingSource()
            s.delay = 0.005
            weakSource = s
            let l = BatchLoader(source: s, batches: 1000, workers: 2, prefetch: 2)
            XCTAssertNotNil(try l.next())
        }
        let deadline = Date().addingTimeInterval(3)
        while weakSource != nil && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertNil(weakSource, "worker threads still hold the source after the loader was released")
    }

    /// The full path: random cases, patches with oversampling, nnU-Net augmentation, workers.
    struct AugmentedPatches: BatchSource {
        let cases: [PatchCase]
        let sampler: PatchSampler
        let pipeline: AugmentationPipeline
        let batchSize: Int

        func makeBatch(index: Int, rng: inout RandomSource) throws -> Batch {
            var picked: [PatchCase] = []
            for _ in 0..<batchSize { picked.append(cases[rng.int(below: cases.count)]) }
            var batch = try sampler.batch(picked, rng: &rng)
            let out = try pipeline.apply(image: batch.image, label: batch.label, rng: &rng)
            batch.image = out.image
            batch.label = out.label!
            return batch
        }
    }

    func testAugmentedPatchBatchesAreReproducibleAcrossWorkerCounts() throws {
        let c = try sparseCase()
        let source = AugmentedPatches(cases: [c, c], sampler: PatchSampler(patchSize: [40, 40]),
                                      pipeline: .nnUNet(dims: 2), batchSize: 3)
        func run(_ workers: Int) throws -> [([Float], [Float])] {
            let loader = BatchLoader(source: source, batches: 6, workers: workers, prefetch: 2, seed: 77)
            var out: [([Float], [Float])] = []
            while let b = try loader.next() {
                XCTAssertEqual(b.image.shape, [3, 1, 40, 40])
                out.append((try b.image.floats(), try b.label.floats()))
            }
            return out
        }
        let one = try run(1), three = try run(3)
        XCTAssertEqual(one.count, 6)
        for (a, b) in zip(one, three) {
            XCTAssertEqual(a.0, b.0)
            XCTAssertEqual(a.1, b.1)
        }
    }

    // MARK: batch transfer

    func smallBatch() throws -> Batch {
        var rng = RandomSource(seed: 5)
        return Batch(image: try rng.uniformTensor([2, 1, 8, 8]), label: try Tensor.zeros([2, 1, 8, 8]), caseIdentifiers: ["a", "b"])
    }

    /// A batch already on the target device is handed on as it is, without a copy.
    func testABatchOnItsDeviceIsNotCopied() throws {
        let batch = try smallBatch()
        let same = try batch.moved(to: .cpu)
        XCTAssertTrue(same.image === batch.image && same.label === batch.label, "no copy on the device it is on")
        XCTAssertEqual(same.caseIdentifiers, ["a", "b"])
    }

    /// To a GPU the tensors arrive with the same values (pinned and non-blocking on the way).
    func testBatchesMoveToTheGPU() throws {
        guard Torch.cudaAvailable else { throw XCTSkip("no CUDA device for the pinned, non-blocking path") }
        let batch = try smallBatch()
        let moved = try batch.moved(to: .cuda(0))
        XCTAssertEqual(moved.image.device, .cuda(0))
        XCTAssertEqual(moved.label.device, .cuda(0))
        XCTAssertTrue(try moved.image.to(device: .cpu).equal(batch.image))
        XCTAssertTrue(try moved.label.to(device: .cpu).equal(batch.label))
        XCTAssertEqual(moved.caseIdentifiers, ["a", "b"])
    }
}
