import Foundation
import XCTest
import TestSupport
@testable import Torch

/// The fixture, decoded with JSONDecoder (JSONSerialization can be off by an ulp on Linux).
private struct OptimFixture: Decodable {
    /// A number, or "NaN" / "Infinity" / "-Infinity" / "inf" for the non-finite ones.
    struct Number: Decodable {
        var value: Double
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let v = try? c.decode(Double.self) { value = v; return }
            let text = try c.decode(String.self)
            value = text == "NaN" ? .nan : (text.hasPrefix("-") ? -.infinity : .infinity)
        }
    }
    struct TensorValues: Decodable {
        var shape: [Int]
        var values: [Number]
        func tensor() throws -> Tensor { try Tensor(values.map { Float($0.value) }, shape: shape) }
    }
    struct ExportedState: Decodable {
        var metadata: OptimizerState.Metadata
        var tensors: [String: TensorValues]
        func state() throws -> OptimizerState {
            try OptimizerState(tensors: tensors.map { (name: $0.key, tensor: try $0.value.tensor()) }, metadata: metadata)
        }
    }
    struct Trajectory: Decodable {
        var steps: [[String: [Double]]]
        var state_dicts: [String: ExportedState]
    }
    struct Jumps: Decodable {
        var epochs: [Int]
        var lrs: [[Double]]
    }
    struct ClipCase: Decodable {
        var norm_type: Number
        var max_norm: Double
        var grads_before: [TensorValues]
        var total_norm: Number
        var grads_after: [TensorValues]
        var error_if_nonfinite_raises: Bool?
    }
    struct Schedulers: Decodable {
        var sequences: [String: [[Double]]] = [:]
        var jumps: [String: Jumps] = [:]
        init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: NameKey.self)
            for key in c.allKeys {
                if let j = try? c.decode(Jumps.self, forKey: key) { jumps[key.stringValue] = j }
                else { sequences[key.stringValue] = try c.decode([[Double]].self, forKey: key) }
            }
        }
    }
    var problem: [String: TensorValues]
    var trajectories: [String: Trajectory]
    var schedulers: Schedulers
    var clip: [ClipCase]

    static let shared: Result<OptimFixture, Error> = Result {
        let url = Bundle.module.url(forResource: "Fixtures", withExtension: nil)!.appendingPathComponent("optim/optim.json")
        return try JSONDecoder().decode(OptimFixture.self, from: Data(contentsOf: url))
    }
}

/// Optimizers, LR schedules and gradient clipping against PyTorch 1.13
/// (Fixtures/optim/optim.json, written by scripts/fixtures/make_optim_fixtures.py).
final class OptimTests: XCTestCase {
    private var fx: OptimFixture!

    override func setUpWithError() throws { fx = try OptimFixture.shared.get() }

    // MARK: helpers

    private func trajectory(_ name: String) throws -> OptimFixture.Trajectory { try XCTUnwrap(fx.trajectories[name], name) }

    /// Fresh leaf parameters (w, b, s, unused) with the fixture's initial values.
    private func makeParameters() throws -> [Tensor] {
        try ["w", "b", "s", "unused"].map { try fx.problem[$0]!.tensor().requiresGrad(true) }
    }

    private func loss(_ p: [Tensor]) throws -> Tensor {
        let x = try fx.problem["x"]!.tensor(), y = try fx.problem["y"]!.tensor()
        let (w, b, s) = (p[0], p[1], p[2])
        // Scalars as float32 0-dim tensors: Python's float scalars do not promote the 0-dim sums.
        let c1 = try Tensor(scalar: 0.1), c2 = try Tensor(scalar: 0.3)
        return try (x.matmul(w) + b - y).pow(2).mean() + (w.pow(3).sum() * c1) + (s * b.sum() - c2).square()
    }

    private func step(_ opt: Optimizer, _ params: [Tensor]) throws {
        try opt.zeroGrad()
        try loss(params).backward()
        try opt.step()
    }

    /// The optimizer the fixture generator builds under `name`, on parameters (w, b, s, unused).
    private func makeOptimizer(_ name: String, _ p: [Tensor]) throws -> Optimizer {
        let (w, b, s, u) = (p[0], p[1], p[2], p[3])
        switch name {
        case "sgd_plain": return try SGD(p, lr: 0.1)
        case "sgd_momentum": return try SGD(p, lr: 0.05, momentum: 0.9, weightDecay: 1e-2)
        case "sgd_nesterov": return try SGD(p, lr: 0.05, momentum: 0.9, weightDecay: 1e-2, nesterov: true)
        case "sgd_dampening": return try SGD(p, lr: 0.05, momentum: 0.8, dampening: 0.3)
        case "sgd_maximize": return try SGD(p, lr: 0.01, momentum: 0.5, weightDecay: 0.1, maximize: true)
        case "sgd_two_groups":
            return try SGD(groups: [ParamGroup(params: [w, s], lr: 0.05, options: ["momentum": 0.9, "nesterov": true]),
                                    ParamGroup(params: [u, b], lr: 0.01, weightDecay: 0.1, options: ["dampening": 0.2])],
                           momentum: 0.5)
        case "adam": return Adam(p, lr: 0.01, weightDecay: 1e-3)
        case "adam_amsgrad": return Adam(p, lr: 0.01, betas: (0.8, 0.99), eps: 1e-6, amsgrad: true)
        case "adam_maximize": return Adam(p, lr: 0.005, weightDecay: 0.01, maximize: true)
        case "adamw": return AdamW(p, lr: 0.01, weightDecay: 0.1)
        case "adamw_amsgrad": return AdamW(p, lr: 0.02, amsgrad: true)
        case "adam_two_groups":
            return Adam(groups: [ParamGroup(params: [w], lr: 0.02),
                                 ParamGroup(params: [b, s, u], lr: 0.001, options: ["betas": .pair(0.5, 0.9), "amsgrad": true])])
        default: throw TorchError("no optimizer configuration '\(name)'")
        }
    }

    private static let optimizerNames = ["sgd_plain", "sgd_momentum", "sgd_nesterov", "sgd_dampening", "sgd_maximize", "sgd_two_groups",
                                         "adam", "adam_amsgrad", "adam_maximize", "adamw", "adamw_amsgrad", "adam_two_groups"]

    private func assertParameters(_ p: [Tensor], equal expected: [String: [Double]], _ what: String,
                                  file: StaticString = #filePath, line: UInt = #line) throws {
        for (i, key) in ["w", "b", "s", "unused"].enumerated() {
            let e = try Tensor(expected[key]!.map { Float($0) }, shape: p[i].shape)
            try FixtureSupport.assertClose(p[i], e, rtol: 1e-5, atol: 1e-7, "\(what) \(key)", file: file, line: line)
        }
    }

    // MARK: optimizers

    func testOptimizersFollowPyTorchTrajectories() throws {
        for name in Self.optimizerNames {
            let p = try makeParameters()
            let unusedBefore = try p[3].floats()
            let opt = try makeOptimizer(name, p)
            let steps = try trajectory(name).steps
            XCTAssertEqual(steps.count, 10)
            for (i, expected) in steps.enumerated() {
                try step(opt, p)
                try assertParameters(p, equal: expected, "\(name) step \(i + 1)")
            }
            // The parameter without a gradient is skipped: unchanged and without state.
            XCTAssertEqual(try p[3].floats(), unusedBefore, name)
            XCTAssertNil(opt.state[name == "sgd_two_groups" ? 2 : 3], name)
        }
    }

    func testStateDictMatchesPyTorchLayout() throws {
        for name in Self.optimizerNames {
            let p = try makeParameters()
            let opt = try makeOptimizer(name, p)
            for _ in 0..<10 { try step(opt, p) }
            let mine = opt.stateDict()
            let theirs = try XCTUnwrap(trajectory(name).state_dicts["10"]).state()

            XCTAssertEqual(mine.tensors.map(\.name), theirs.tensors.map(\.name).sorted(), "\(name): state tensor names")
            let theirTensors = Dictionary(uniqueKeysWithValues: theirs.tensors.map { ($0.name, $0.tensor) })
            for (key, t) in mine.tensors {
                guard let expected = theirTensors[key] else { continue }
                try FixtureSupport.assertClose(t, expected, rtol: 1e-5, atol: 1e-7, "\(name) \(key)")
            }
            XCTAssertEqual(mine.metadata.steps, theirs.metadata.steps, "\(name): steps")
            XCTAssertEqual(mine.paramGroups.count, theirs.paramGroups.count, name)
            for (g, (a, b)) in zip(mine.paramGroups, theirs.paramGroups).enumerated() {
                XCTAssertEqual(a.params, b.params, "\(name) group \(g) params")
                XCTAssertEqual(a.lr, b.lr, "\(name) group \(g) lr")
                for (key, value) in a.options {
                    XCTAssertEqual(b.options[key], value, "\(name) group \(g) option \(key)")
                }
            }
        }
        // The JSON reads like PyTorch's param_groups.
        let p = try makeParameters()
        let json = try Adam([p[0]], lr: 0.01).stateDict().metadataJSON()
        XCTAssertEqual(json, #"{"param_groups":[{"amsgrad":false,"betas":[0.9,0.999],"eps":1e-08,"lr":0.01,"maximize":false,"params":[0],"weight_decay":0}],"state":{}}"#)
    }

    /// 5 steps, state to safetensors + JSON, a new optimizer on new parameter tensors loads it,
    /// 5 more steps: bit for bit the 10 straight steps.
    func testStateRoundTripThroughCheckpointFilesContinuesExactly() throws {
        let folder = try makeTemporaryFolder("optim")
        defer { try? FileManager.default.removeItem(at: folder) }
        for name in ["sgd_nesterov", "sgd_two_groups", "adam_amsgrad", "adamw", "adam_two_groups"] {
            let straight = try makeParameters()
            let reference = try makeOptimizer(name, straight)
            for _ in 0..<10 { try step(reference, straight) }

            let p = try makeParameters()
            let first = try makeOptimizer(name, p)
            for _ in 0..<5 { try step(first, p) }
            let saved = first.stateDict()
            let file = folder.appendingPathComponent("\(name).safetensors")
            try Safetensors.save(StateDict(saved.tensors.map { ($0.name, $0.tensor) }), metadata: ["optimizer": try saved.metadataJSON()], to: file)

            let (tensors, metadata) = try Safetensors.load(file)
            let resumed = try p.map { try $0.detach().clone().requiresGrad(true) }
            let second = try makeOptimizer(name, resumed)
            try second.loadStateDict(try OptimizerState(tensors: tensors.pairs, metadataJSON: try XCTUnwrap(metadata["optimizer"])))
            XCTAssertEqual(second.stateDict().metadata, saved.metadata, name)
            for _ in 0..<5 { try step(second, resumed) }
            for (a, b) in zip(resumed, straight) { XCTAssertEqual(try a.floats(), try b.floats(), name) }
        }
    }

    /// PyTorch's state after 5 steps, loaded into a fresh optimizer, continues to PyTorch's step 10.
    func testLoadsPyTorchStateDicts() throws {
        for name in Self.optimizerNames {
            let t = try trajectory(name)
            let shapes = try makeParameters().map(\.shape)
            let p = try ["w", "b", "s", "unused"].enumerated().map { i, key in
                try Tensor(t.steps[4][key]!.map { Float($0) }, shape: shapes[i]).requiresGrad(true)
            }
            let opt = try makeOptimizer(name, p)
            try opt.loadStateDict(try XCTUnwrap(t.state_dicts["5"]).state())
            for _ in 0..<5 { try step(opt, p) }
            try assertParameters(p, equal: t.steps[9], "\(name) resumed from PyTorch's state")
        }
    }

    func testLoadStateDictRejectsMismatchesAndKeepsState() throws {
        let p = try makeParameters()
        let opt = Adam(p, lr: 0.01)
        for _ in 0..<2 { try step(opt, p) }
        let good = opt.stateDict()
        let before = try XCTUnwrap(opt.state[0]?["exp_avg"]).floats()

        var wrongShape = good
        wrongShape.state[0]!.tensors["exp_avg"] = try Tensor.zeros([7])
        XCTAssertThrowsError(try opt.loadStateDict(wrongShape))
        var unknownIndex = good
        unknownIndex.state[9] = ParameterState(step: 1)
        XCTAssertThrowsError(try opt.loadStateDict(unknownIndex))
        var twoGroups = good
        twoGroups.paramGroups.append(OptimizerState.Group(params: [4], lr: 0.1))
        XCTAssertThrowsError(try opt.loadStateDict(twoGroups))
        var shortGroup = good
        shortGroup.paramGroups[0].params.removeLast()
        XCTAssertThrowsError(try opt.loadStateDict(shortGroup))
        XCTAssertEqual(try XCTUnwrap(opt.state[0]?["exp_avg"]).floats(), before)
        XCTAssertThrowsError(try OptimizerState(tensors: [("state.x.exp_avg", try Tensor.zeros([1]))], metadata: good.metadata))

        // Loading copies: the loaded state does not alias the source tensors.
        let other = Adam(try makeParameters(), lr: 0.01)
        try other.loadStateDict(good)
        try XCTUnwrap(good.state[0]?["exp_avg"]).zero_()
        XCTAssertEqual(try XCTUnwrap(other.state[0]?["exp_avg"]).floats(), before)
        // Hyperparameters come from the saved groups.
        var faster = good
        faster.paramGroups[0].lr = 0.5
        faster.paramGroups[0].options["eps"] = 1e-3
        try other.loadStateDict(faster)
        XCTAssertEqual(other.paramGroups[0].lr, 0.5)
        XCTAssertEqual(other.paramGroups[0][option: "eps"], 1e-3)
    }

    func testZeroGradValidationAndClosure() throws {
        let p = try makeParameters()
        let opt = try SGD(p, lr: 0.1, momentum: 0.9)
        try loss(p).backward()
        try opt.zeroGrad(setToNone: false)
        XCTAssertEqual(try XCTUnwrap(p[0].grad).floats(), [Float](repeating: 0, count: 12))
        try opt.zeroGrad()
        XCTAssertNil(p[0].grad)
        // A step without gradients changes nothing and creates no state.
        try opt.step()
        XCTAssertTrue(opt.state.isEmpty)
        let value = try opt.step { let l = try loss(p); try l.backward(); return l }
        XCTAssertEqual(try value.item(), try loss(try makeParameters()).item(), accuracy: 1e-6)
        XCTAssertEqual(opt.state.keys.sorted(), [0, 1, 2])

        XCTAssertThrowsError(try SGD(p, lr: 0.1, nesterov: true))
        XCTAssertThrowsError(try SGD(p, lr: 0.1, momentum: 0.9, dampening: 0.1, nesterov: true))
        XCTAssertThrowsError(try SGD(p, lr: -1))
        XCTAssertThrowsError(try SGD([], lr: 0.1))
        let adam = Adam(p, lr: 0.1, betas: (1.0, 0.999))
        try loss(p).backward()
        XCTAssertThrowsError(try adam.step())
        adam.paramGroups[0][option: "betas"] = .pair(0.9, 0.999)
        try adam.step()
        let grown = Adam([p[0]], lr: 0.1, eps: 1e-6)
        XCTAssertThrowsError(try grown.addParamGroup(ParamGroup(params: [p[1]], lr: 0.1, weightDecay: -1)))
        try grown.addParamGroup(ParamGroup(params: [p[1]], lr: 0.01))
        XCTAssertEqual(grown.paramGroups[1][option: "eps"], 1e-6)
        XCTAssertEqual(grown.stateDict().paramGroups.map(\.params), [[0], [1]])
        // AdamW's default weight decay is PyTorch's 1e-2; a group's own value wins.
        let adamw = AdamW(groups: [ParamGroup(params: [p[0]], lr: 0.1), ParamGroup(params: [p[1]], lr: 0.1, weightDecay: 0)])
        XCTAssertEqual(adamw.paramGroups.map(\.weightDecay), [1e-2, 0])
    }

    // MARK: schedulers

    private func twoGroupOptimizer() throws -> Optimizer {
        try SGD(groups: [ParamGroup(params: [try Tensor.zeros([1])], lr: 0.1), ParamGroup(params: [try Tensor.zeros([1])], lr: 0.02)])
    }

    /// Both groups' rates before each step, as the fixture records them.
    private func sequence(_ schedule: any LRSchedule, steps: Int, lastEpoch: Int = -1, initialLRs: [Double]? = nil) throws -> [[Double]] {
        let opt = try twoGroupOptimizer()
        if let initialLRs { for i in initialLRs.indices { opt.paramGroups[i].initialLR = initialLRs[i] } }
        let scheduler = LRScheduler(opt, schedule, lastEpoch: lastEpoch)
        var out: [[Double]] = []
        for _ in 0..<steps {
            out.append(opt.paramGroups.map(\.lr))
            XCTAssertEqual(scheduler.currentLRs, out.last!)
            scheduler.step()
        }
        return out
    }

    private func expected(_ name: String) -> [[Double]] {
        fx.schedulers.sequences[name] ?? []
    }

    private func assertRates(_ got: [[Double]], _ want: [[Double]], _ name: String, relative: Double = 0,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(got.count, want.count, name, file: file, line: line)
        for (i, (a, b)) in zip(got, want).enumerated() {
            for (x, y) in zip(a, b) where !(x == y || Swift.abs(x - y) <= relative * Swift.abs(y)) {
                XCTFail("\(name) step \(i): \(x) vs PyTorch's \(y)", file: file, line: line)
            }
        }
    }

    func testSchedulesReproducePyTorchSequences() throws {
        let exact: [(String, any LRSchedule)] = [
            ("polynomial", PolynomialLR(totalIters: 30, power: 0.9)),
            ("polynomial_short", PolynomialLR(totalIters: 10, power: 2)),
            ("cosine", CosineAnnealingLR(tMax: 12, etaMin: 1e-3)),
            ("step", StepLR(stepSize: 7, gamma: 0.5)),
            ("exponential", ExponentialLR(gamma: 0.9)),
            ("linear", LinearWarmupLR(startFactor: 0.1, totalSteps: 8)),
            ("linear_end", LinearLR(startFactor: 0.25, endFactor: 0.75, totalIters: 10)),
            ("constant", ConstantLR(factor: 0.5, totalIters: 4)),
            ("lambda", LambdaLR { Foundation.pow(0.95, Double($0)) }),
            ("warmup_cosine", SequentialLR([LinearWarmupLR(startFactor: 0.01, totalSteps: 5), CosineAnnealingLR(tMax: 25)], milestones: [5])),
            ("warmup_poly", SequentialLR([LinearWarmupLR(startFactor: 1e-3, totalSteps: 3), PolynomialLR(totalIters: 27, power: 0.9)], milestones: [3])),
            ("three_phase", SequentialLR([ConstantLR(factor: 0.5, totalIters: 3), ExponentialLR(gamma: 0.9), StepLR(stepSize: 3, gamma: 0.5)],
                                         milestones: [4, 12])),
            ("poly_formula", PolyLR(maxSteps: 30)),
        ]
        for (name, schedule) in exact {
            let want = expected(name)
            assertRates(try sequence(schedule, steps: want.count), want, name)
        }
        // nnU-Net's formula set directly and PyTorch's recursive PolynomialLR agree to rounding.
        assertRates(try sequence(PolyLR(maxSteps: 30), steps: 30), expected("polynomial"), "PolyLR vs PolynomialLR", relative: 1e-12)
        assertRates(try sequence(LambdaLR { Foundation.pow(1 - Double($0) / 30, 0.9) }, steps: 30), expected("poly_formula"), "poly as LambdaLR")
        // Resuming: PyTorch's first step after construction with last_epoch takes the closed form.
        assertRates(try sequence(CosineAnnealingLR(tMax: 12, etaMin: 1e-3), steps: 20, lastEpoch: 7, initialLRs: [0.2, 0.05]),
                    expected("cosine_resume"), "cosine_resume")
        // Jumps (PyTorch's step(epoch)) take the closed form.
        for (name, schedule) in [("cosine_jumps", CosineAnnealingLR(tMax: 12, etaMin: 1e-3) as any LRSchedule),
                                 ("step_jumps", StepLR(stepSize: 7, gamma: 0.5))] {
            let f = try XCTUnwrap(fx.schedulers.jumps[name], name)
            let opt = try twoGroupOptimizer()
            let scheduler = LRScheduler(opt, schedule)
            var got: [[Double]] = []
            for e in f.epochs {
                scheduler.step(epoch: e)
                got.append(opt.paramGroups.map(\.lr))
                XCTAssertEqual(scheduler.lastEpoch, e)
            }
            assertRates(got, f.lrs, name)
        }
    }

    func testSchedulerStateRoundTripContinuesExactly() throws {
        let make = { SequentialLR([LinearWarmupLR(startFactor: 0.01, totalSteps: 5), CosineAnnealingLR(tMax: 25)], milestones: [5]) }
        let want = expected("warmup_cosine")

        let opt = try twoGroupOptimizer()
        let scheduler = LRScheduler(opt, make())
        for _ in 0..<12 { scheduler.step() }
        XCTAssertEqual(scheduler.lastEpoch, 12)
        XCTAssertEqual(scheduler.stepCount, 13)
        XCTAssertEqual(scheduler.baseLRs, [0.1, 0.02])
        let json = try JSONEncoder().encode(scheduler.state)
        let keys = try XCTUnwrap(JSONSerialization.jsonObject(with: json) as? [String: Any]).keys.sorted()
        XCTAssertEqual(keys, ["_last_lr", "_step_count", "base_lrs", "last_epoch"])

        // A new optimizer and scheduler (whose construction resets the rates), then the state.
        let opt2 = try twoGroupOptimizer()
        let resumed = LRScheduler(opt2, make())
        try resumed.loadState(try JSONDecoder().decode(LRScheduler.State.self, from: json))
        var got: [[Double]] = []
        for _ in 12..<30 {
            got.append(opt2.paramGroups.map(\.lr))
            resumed.step()
        }
        assertRates(got, Array(want[12...]), "warmup_cosine resumed")
        XCTAssertThrowsError(try resumed.loadState(LRScheduler.State(lastEpoch: 1, stepCount: 2, baseLRs: [0.1], lastLRs: [0.1])))

        // The older resume path (closed form at each epoch) agrees to rounding.
        let opt3 = try twoGroupOptimizer()
        let jumping = LRScheduler(opt3, make())
        for e in 0..<30 {
            jumping.set(step: e)
            for (x, y) in zip(opt3.paramGroups.map(\.lr), want[e]) { XCTAssertEqual(x, y, accuracy: 1e-12 * Swift.abs(y), "set(step: \(e))") }
        }
    }

    // MARK: gradient clipping

    func testClipGradNormMatchesPyTorch() throws {
        for (n, c) in fx.clip.enumerated() {
            let before = try c.grads_before.map { try $0.tensor() }
            var params = try before.map { try Tensor.zeros($0.shape).requiresGrad(true) }
            for (p, g) in zip(params, before) { p.grad = try g.clone() }
            params.append(try Tensor.zeros([2]).requiresGrad(true))  // no gradient: skipped
            let normType = c.norm_type.value, maxNorm = c.max_norm, total = c.total_norm.value

            if c.error_if_nonfinite_raises == true {
                XCTAssertThrowsError(try clipGradNorm(params, maxNorm: maxNorm, normType: normType, errorIfNonfinite: true))
                XCTAssertEqual(try XCTUnwrap(params[0].grad).floats().map(\.isNaN), [false, false, false], "gradients untouched after the error")
            }
            let got = try clipGradNorm(params, maxNorm: maxNorm, normType: normType)
            if total.isFinite {
                XCTAssertEqual(got, total, accuracy: 1e-6 * total, "case \(n) total norm")
            } else {
                XCTAssertEqual(got, total, "case \(n) total norm")
            }
            for (i, expected) in c.grads_after.enumerated() {
                let a = try XCTUnwrap(params[i].grad).floats(), b = try expected.tensor().floats()
                for (x, y) in zip(a, b) {
                    XCTAssertTrue(x == y || (x.isNaN && y.isNaN) || Swift.abs(x - y) <= 1e-6 * Swift.abs(y),
                                  "case \(n) gradient \(i): \(x) vs PyTorch's \(y)")
                }
            }
            XCTAssertNil(params.last!.grad)
        }
        XCTAssertEqual(try clipGradNorm([try Tensor.zeros([3]).requiresGrad(true)], maxNorm: 1), 0)

        let p = try Tensor([3, -4] as [Float]).requiresGrad(true)
        p.grad = try Tensor([3, -4] as [Float])
        try clipGradValue([p], clipValue: 3.5)
        XCTAssertEqual(try XCTUnwrap(p.grad).floats(), [3, -3.5])
    }
}

