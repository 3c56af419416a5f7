import Foundation
import XCTest
import Torch

/// Reads fixtures written by scripts/fixtures/*.py from a test target's `Fixtures` folder.
public struct FixtureSupport {
    public let root: URL

    public init(bundle: Bundle) {
        root = bundle.url(forResource: "Fixtures", withExtension: nil)!
    }

    public func json(_ path: String) throws -> [String: Any] {
        let data = try Data(contentsOf: root.appendingPathComponent(path))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    /// A tensor from {"shape", "dtype", "values"} or {"shape", "dtype", "b64"} (raw little-endian bytes).
    public static func tensor(_ object: Any?) throws -> Tensor {
        let o = object as! [String: Any]
        let shape = o["shape"] as! [Int]
        let dtype: DType
        switch o["dtype"] as? String ?? "float32" {
        case "int64": dtype = .int64
        case "float64": dtype = .float64
        case "bool": dtype = .bool
        case "int32": dtype = .int32
        default: dtype = .float32
        }
        if let b64 = o["b64"] as? String {
            let bytes = Data(base64Encoded: b64)!
            return try bytes.withUnsafeBytes { try Tensor(bytes: $0, shape: shape, dtype: dtype) }
        }
        let values = (o["values"] as! [NSNumber]).map(\.doubleValue)
        return try Tensor(values, shape: shape).to(dtype: dtype)
    }

    /// Asserts elementwise |a - b| <= atol + rtol * |b| and reports the worst element.
    public static func assertClose(_ a: Tensor, _ b: Tensor, rtol: Double = 1e-5, atol: Double = 1e-6, _ what: String,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(a.shape, b.shape, "\(what): shape", file: file, line: line)
        guard a.shape == b.shape else { return }
        let x = try a.to(dtype: .float64).toArray(Double.self), y = try b.to(dtype: .float64).toArray(Double.self)
        var worst = 0.0, worstIndex = 0
        for i in x.indices {
            let excess = abs(x[i] - y[i]) - (atol + rtol * abs(y[i]))
            if excess > worst { worst = excess; worstIndex = i }
        }
        XCTAssertEqual(worst, 0, "\(what): element \(worstIndex) differs: \(x.isEmpty ? 0 : x[worstIndex]) vs \(y.isEmpty ? 0 : y[worstIndex])",
                       file: file, line: line)
    }
}

extension FixtureSupport {
    /// Compares a multi-output network with a fixture holding PyTorch's "outputs", the value of
    /// the loss sum_k (k+1) * mean(output_k^2) as "loss", and every parameter's gradient of it as
    /// "grads" (all within 1e-4); the network must hold the fixture's weights already.
    public static func assertOutputsAndGradients(_ outputs: [Tensor], of network: Module, fixture fx: [String: Any], _ what: String,
                                                 file: StaticString = #filePath, line: UInt = #line) throws {
        let expected = fx["outputs"] as! [Any]
        XCTAssertEqual(outputs.count, expected.count, "\(what): number of outputs", file: file, line: line)
        for (k, (o, e)) in zip(outputs, expected).enumerated() {
            try assertClose(o, try tensor(e), rtol: 1e-4, atol: 1e-4, "\(what) output \(k)", file: file, line: line)
        }
        var loss = try outputs[0].square().mean()
        for k in 1..<outputs.count { loss = try loss + outputs[k].square().mean() * Double(k + 1) }
        XCTAssertEqual(try loss.item(), fx["loss"] as! Double, accuracy: 1e-4, "\(what): loss", file: file, line: line)
        try loss.backward()
        let grads = fx["grads"] as! [String: Any]
        for (name, p) in network.namedParameters() {
            let g = try XCTUnwrap(p.grad, "\(what): no gradient for \(name)", file: file, line: line)
            try assertClose(g, try tensor(grads[name]), rtol: 1e-4, atol: 1e-4, "\(what) grad \(name)", file: file, line: line)
        }
    }

    /// Parity of `network` with a PyTorch reference's fixture: its parameter names
    /// ("param_names", in PyTorch's order), parameter count, and with the fixture's weights loaded
    /// its outputs for "input" and their gradients (`assertOutputsAndGradients`). `stateKeys`, when
    /// given, must equal PyTorch's state_dict keys ("state_keys").
    public static func assertParity(_ network: Module, fixture fx: [String: Any], stateKeys: [String]? = nil, _ what: String,
                                    file: StaticString = #filePath, line: UInt = #line,
                                    outputs: (Tensor) throws -> [Tensor]) throws {
        let names = fx["param_names"] as! [String]
        XCTAssertEqual(network.namedStateTensors().map(\.name), names, "\(what): parameter names", file: file, line: line)
        if let stateKeys { XCTAssertEqual(stateKeys, fx["state_keys"] as! [String], "\(what): state_dict keys", file: file, line: line) }
        XCTAssertEqual(network.parameterCount(), fx["param_count"] as! Int, "\(what): parameter count", file: file, line: line)
        let state = fx["state"] as! [String: Any]
        try network.loadState(names.map { ($0, try tensor(state[$0])) })
        try assertOutputsAndGradients(try outputs(try tensor(fx["input"])), of: network, fixture: fx, what, file: file, line: line)
    }
}
