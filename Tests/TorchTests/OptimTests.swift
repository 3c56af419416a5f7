import XCTest
import TestSupport
@testable import Torch

/// Optimizer trajectories, schedules and clipping against PyTorch (Fixtures/optim/optim.json).
final class OptimTests: XCTestCase {
    private var fx: [String: Any] = [:]

    override func setUpWithError() throws { fx = try fixtures.json("optim/optim.json") }

    private func floats(_ key: String) -> [Float] { (fx[key] as! [NSNumber]).map(\.floatValue) }

    /// Runs the fixture's problem for 10 steps and compares every step's parameters.
    private func checkTrajectory(_ name: String, file: StaticString = #filePath, line: UInt = #line,
                                 _ make: ([Tensor]) throws -> Optimizer) throws {
        let x = try Tensor(floats("x"), shape: [6, 3]), y = try Tensor(floats("y"), shape: [6, 4])
        let w = try Tensor(floats("w"), shape: [3, 4]).requiresGrad(true), b = try Tensor(floats("b"), shape: [4]).requiresGrad(true)
        let opt = try make([w, b])
        let expected = fx[name] as! [[String: [NSNumber]]]
        for (step, e) in expected.enumerated() {
            try opt.zeroGrad()
            let loss = try (x.matmul(w) + b - y).square().mean() + (w.pow(3).sum() * 0.1)
            try loss.backward()
            try opt.step()
            try FixtureSupport.assertClose(w, try Tensor(e["w"]!.map(\.floatValue), shape: [3, 4]), rtol: 1e-5, atol: 1e-6, "\(name) w step \(step + 1)", file: file, line: line)
            try FixtureSupport.assertClose(b, try Tensor(e["b"]!.map(\.floatValue), shape: [4]), rtol: 1e-5, atol: 1e-6, "\(name) b step \(step + 1)", file: file, line: line)
        }
    }

    func testSGDMatchesPyTorch() throws {
        try checkTrajectory("sgd_nesterov") { try SGD($0, lr: 0.05, momentum: 0.9, weightDecay: 1e-2, nesterov: true) }
        try checkTrajectory("sgd_dampening") { try SGD($0, lr: 0.05, momentum: 0.8, dampening: 0.3) }
    }

    func testAdamAndAdamWMatchPyTorch() throws {
        try checkTrajectory("adam") { Adam($0, lr: 0.01, weightDecay: 1e-3) }
        try checkTrajectory("adam_amsgrad") { Adam($0, lr: 0.01, amsgrad: true) }
        try checkTrajectory("adamw") { AdamW($0, lr: 0.01, weightDecay: 0.1) }
        try checkTrajectory("adam_two_groups") { Adam(groups: [ParamGroup(params: [$0[0]], lr: 0.02), ParamGroup(params: [$0[1]], lr: 0.001)]) }
    }

    func testOptimizerStateRoundTripContinuesExactly() throws {
        func run(_ steps: Int, on w: Tensor, _ opt: Optimizer) throws {
            for _ in 0..<steps {
                try opt.zeroGrad()
                try (w.pow(2).sum() + w.sum()).backward()
                try opt.step()
            }
        }
        let straight = try Tensor([1, -2, 3] as [Float]).requiresGrad(true)
        try run(10, on: straight, Adam([straight], lr: 0.1))

        let w = try Tensor([1, -2, 3] as [Float]).requiresGrad(true)
        let first = Adam([w], lr: 0.1)
        try run(5, on: w, first)
        let saved = try first.stateTensors().map { ($0.name, try $0.tensor.clone()) }
        let scalars = first.scalars
        XCTAssertEqual(Set(saved.map(\.0)), ["state.0.exp_avg", "state.0.exp_avg_sq"])
        let second = Adam([w], lr: 0.1)
        try second.load(stateTensors: saved, scalars: scalars)
        try run(5, on: w, second)
        XCTAssertEqual(try w.floats(), try straight.floats())
        XCTAssertThrowsError(try second.load(stateTensors: [("state.7.exp_avg", try Tensor.zeros([3]))], scalars: scalars))
    }

    func testSchedulesMatchPyTorch() throws {
        let s = fx["schedulers"] as! [String: Any]
        func check(_ name: String, _ schedule: any LRSchedule) throws {
            let expected = (s[name] as! [NSNumber]).map(\.doubleValue)
            let opt = try SGD([try Tensor.zeros([1])], lr: 0.1)
            let scheduler = LRScheduler(opt, schedule)
            var got: [Double] = []
            for _ in expected.indices {
                got.append(opt.paramGroups[0].lr)
                scheduler.step()
            }
            for (i, (a, b)) in zip(got, expected).enumerated() {
                XCTAssertEqual(a, b, accuracy: 1e-9 + 1e-6 * abs(b), "\(name) step \(i)")
            }
        }
        try check("poly", PolyLR(maxSteps: 30))
        try check("polynomial_1_13", PolyLR(maxSteps: 30))
        try check("cosine", CosineAnnealingLR(tMax: 12, etaMin: 1e-3))
        try check("step", StepLR(stepSize: 7, gamma: 0.5))
        try check("linear", LinearWarmupLR(startFactor: 0.1, totalSteps: 8))
        try check("warmup_cosine", SequentialLR([LinearWarmupLR(startFactor: 0.01, totalSteps: 5), CosineAnnealingLR(tMax: 25)], milestones: [5]))
        try check("poly", LambdaLR { Foundation.pow(1 - Double($0) / 30, 0.9) })
    }

    func testGradientClippingMatchesPyTorch() throws {
        let c = fx["clip"] as! [String: Any]
        let shapes = c["shapes"] as! [[Int]]
        let values = (c["params"] as! [[NSNumber]]).map { $0.map(\.floatValue) }
        let params = try zip(values, shapes).map { try Tensor($0, shape: $1).requiresGrad(true) }
        try (params.map { try $0.square().sum() }.reduce(Tensor.zeros([]), +) * 3).backward()
        let total = try clipGradNorm(params, maxNorm: 1)
        XCTAssertEqual(total, (c["total_norm"] as! NSNumber).doubleValue, accuracy: 1e-4)
        for (p, (g, shape)) in zip(params, zip(c["grads_after"] as! [[NSNumber]], shapes)) {
            try FixtureSupport.assertClose(try XCTUnwrap(p.grad), try Tensor(g.map(\.floatValue), shape: shape), "clipped gradient")
        }
        XCTAssertThrowsError(try SGD([try Tensor.zeros([1])], lr: 0.1, nesterov: true))
    }
}
