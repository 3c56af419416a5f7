import XCTest
import TestSupport
@testable import Torch

/// The fused selective scan against a naive per-timestep loop built from Tensor ops (autograd
/// through the loop gives the reference gradients) and against PyTorch (Fixtures/scan/scan.json,
/// from scripts/fixtures/make_ultralight_fixtures.py).
final class SelectiveScanTests: XCTestCase {
    struct Inputs {
        var u, delta, A, B, C: Tensor
        var D, z, bias: Tensor?
        var all: [Tensor?] { [u, delta, A, B, C, D, z, bias] }
        static let names = ["u", "delta", "A", "B", "C", "D", "z", "delta_bias"]

        /// Fresh leaves holding the same values, recording gradients.
        func leaves() throws -> Inputs {
            func leaf(_ t: Tensor) throws -> Tensor { try t.detach().clone().requiresGrad(true) }
            return Inputs(u: try leaf(u), delta: try leaf(delta), A: try leaf(A), B: try leaf(B), C: try leaf(C),
                          D: try D.map(leaf), z: try z.map(leaf), bias: try bias.map(leaf))
        }
    }

    /// Random inputs; without softplus delta is drawn positive (a step size, as softplus makes it).
    static func random(batch: Int, channels: Int, length: Int, state: Int, withZ: Bool = true, withD: Bool = true,
                       withBias: Bool = true, softplus: Bool = true) throws -> Inputs {
        Inputs(u: try Tensor.randn([batch, channels, length]),
               delta: softplus ? try Tensor.randn([batch, channels, length]) * 0.5 - 1 : try Tensor.rand([batch, channels, length]) * 0.5 + 0.05,
               A: try 0 - (Tensor.rand([channels, state]) * 2.5).exp(),
               B: try Tensor.randn([batch, state, length]),
               C: try Tensor.randn([batch, state, length]),
               D: withD ? try Tensor.randn([channels]) : nil,
               z: withZ ? try Tensor.randn([batch, channels, length]) : nil,
               bias: withBias ? try Tensor.randn([channels]) * 0.3 : nil)
    }

    /// The recurrence one timestep at a time.
    static func naiveScan(_ x: Inputs, softplus: Bool) throws -> Tensor {
        var dt = x.delta
        if let bias = x.bias { dt = try dt + bias.unsqueeze(-1) }
        if softplus { dt = try F.softplus(dt) }
        let dA = try (dt.unsqueeze(-1) * x.A.unsqueeze(0).unsqueeze(2)).exp()                     // [b, e, l, n]
        let dBu = try dt.unsqueeze(-1) * x.u.unsqueeze(-1) * x.B.transpose(1, 2).unsqueeze(1)      // [b, e, l, n]
        let (b, e, l, n) = (x.u.size(0), x.u.size(1), x.u.size(2), x.A.size(1))
        var h = try Tensor.zeros([b, e, n])
        var ys: [Tensor] = []
        for t in 0..<l {
            h = try dA.select(dim: 2, index: t) * h + dBu.select(dim: 2, index: t)
            ys.append(try (h * x.C.select(dim: 2, index: t).unsqueeze(1)).sum(dim: -1))
        }
        var y = try Tensor.stack(ys, dim: 2)
        if let D = x.D { y = try y + x.u * D.unsqueeze(-1) }
        if let z = x.z { y = try y * F.silu(z) }
        return y
    }

    static func fused(_ x: Inputs, softplus: Bool) throws -> Tensor {
        try F.selectiveScan(x.u, delta: x.delta, A: x.A, B: x.B, C: x.C, D: x.D, z: x.z, deltaBias: x.bias, deltaSoftplus: softplus)
    }

    func compareWithNaive(_ x: Inputs, softplus: Bool, _ what: String) throws {
        let gy = try Tensor.randn(x.u.shape)
        let ref = try x.leaves(), mine = try x.leaves()
        let yRef = try Self.naiveScan(ref, softplus: softplus)
        try yRef.backward(gy)
        let y = try Self.fused(mine, softplus: softplus)
        try y.backward(gy)
        try FixtureSupport.assertClose(y, yRef, rtol: 1e-4, atol: 1e-4, "\(what): output")
        for (i, (a, b)) in zip(mine.all, ref.all).enumerated() {
            guard let a, let b else { continue }
            try FixtureSupport.assertClose(try XCTUnwrap(a.grad, "\(what): no grad for \(Inputs.names[i])"), try XCTUnwrap(b.grad),
                                           rtol: 1e-4, atol: 1e-4, "\(what): grad \(Inputs.names[i])")
        }
        // The explicit backward gives the same gradients without autograd.
        let g = try F.selectiveScanBackward(gy, u: x.u, delta: x.delta, A: x.A, B: x.B, C: x.C, D: x.D, z: x.z,
                                            deltaBias: x.bias, deltaSoftplus: softplus)
        let explicit: [Tensor] = [g.u, g.delta, g.A, g.B, g.C, g.D, g.z, g.deltaBias]
        for (i, (a, b)) in zip(explicit, mine.all).enumerated() {
            guard let b else { continue }
            try FixtureSupport.assertClose(a, try XCTUnwrap(b.grad), rtol: 1e-6, atol: 1e-6, "\(what): explicit grad \(Inputs.names[i])")
        }
    }

    func testMatchesTheNaiveLoop() throws {
        Torch.manualSeed(7)
        try compareWithNaive(try Self.random(batch: 2, channels: 6, length: 17, state: 16), softplus: true, "full")
        try compareWithNaive(try Self.random(batch: 3, channels: 4, length: 9, state: 5, withZ: false, withD: false, withBias: false,
                                                 softplus: false),
                             softplus: false, "no z, D, bias")
        try compareWithNaive(try Self.random(batch: 1, channels: 3, length: 64, state: 16, withZ: false), softplus: true, "long, no z")
        try compareWithNaive(try Self.random(batch: 4, channels: 2, length: 1, state: 16), softplus: true, "length 1")
    }

    func testMatchesPyTorch() throws {
        let fx = try fixtures.json("scan/scan.json")
        let cases = try XCTUnwrap(fx["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for (k, c) in cases.enumerated() {
            func t(_ name: String) throws -> Tensor? { c[name] == nil ? nil : try FixtureSupport.tensor(c[name]) }
            let x = Inputs(u: try t("u")!, delta: try t("delta")!, A: try t("A")!, B: try t("B")!, C: try t("C")!,
                           D: try t("D"), z: try t("z"), bias: try t("delta_bias"))
            let softplus = try XCTUnwrap(c["softplus"] as? Bool)
            let leaves = try x.leaves()
            let y = try Self.fused(leaves, softplus: softplus)
            try FixtureSupport.assertClose(y, try t("y")!, rtol: 1e-4, atol: 1e-4, "case \(k): output")
            try y.backward(try t("gy")!)
            for (i, p) in leaves.all.enumerated() {
                guard let p else { continue }
                try FixtureSupport.assertClose(try XCTUnwrap(p.grad), try t("grad_" + Inputs.names[i])!, rtol: 1e-4, atol: 1e-4,
                                               "case \(k): grad \(Inputs.names[i])")
            }
        }
    }

    func testTransposedViewsOfBAndCAreReadInPlace() throws {
        Torch.manualSeed(3)
        let x = try Self.random(batch: 2, channels: 3, length: 8, state: 4)
        let bLN = try x.B.transpose(1, 2).contiguous(), cLN = try x.C.transpose(1, 2).contiguous()
        let a = try Self.fused(x, softplus: true)
        var viewed = x
        viewed.B = try bLN.transpose(1, 2)
        viewed.C = try cLN.transpose(1, 2)
        XCTAssertFalse(viewed.B.isContiguous)
        try FixtureSupport.assertClose(try Self.fused(viewed, softplus: true), a, rtol: 0, atol: 0, "views")
    }

    func testBadShapesAreClearErrors() throws {
        let x = try Self.random(batch: 2, channels: 3, length: 8, state: 4)
        XCTAssertThrowsError(try F.selectiveScan(x.u, delta: x.delta, A: try Tensor.zeros([4, 4]), B: x.B, C: x.C)) {
            XCTAssertTrue("\($0)".contains("A must be [channels, state]"), "\($0)")
        }
        XCTAssertThrowsError(try F.selectiveScan(x.u, delta: x.delta, A: x.A, B: x.B, C: try Tensor.zeros([2, 4, 7]))) {
            XCTAssertTrue("\($0)".contains("C must be"), "\($0)")
        }
        XCTAssertThrowsError(try F.selectiveScan(x.u.to(dtype: .float64), delta: x.delta, A: x.A, B: x.B, C: x.C)) {
            XCTAssertTrue("\($0)".contains("float32"), "\($0)")
        }
    }

    func testBenchmarkHookRuns() throws {
        let r = try F.benchmarkSelectiveScan(batch: 2, channels: 4, length: 16, state: 16, iterations: 2)
        XCTAssertGreaterThan(r.forwardMs, 0)
        XCTAssertGreaterThan(r.backwardMs, 0)
    }
}
