import Foundation
import Torch

extension ONNXModel {
    /// Nodes and initializers of a graph being written; values are named by the nodes that make them.
    struct Graph {
        /// Spatial dimensions of the network's input (2 or 3).
        let dims: Int
        private(set) var proto = ProtoWriter()
        private var count = 0
        /// Initializers already written (shared constants are written once).
        private var written: Set<String> = []

        init(dims: Int) { self.dims = dims }

        /// A weight, under its state_dict name, as a float32 initializer.
        mutating func initializer(_ name: String, _ tensor: Tensor) throws -> String {
            guard written.insert(name).inserted else { return name }
            let values = try tensor.to(dtype: .float32).contiguous().toArray(Float.self)
            var t = ProtoWriter()
            for d in tensor.shape { t.varint(1, UInt64(d)) }
            t.varint(2, 1)  // FLOAT
            t.string(8, name)
            var raw = Data(capacity: values.count * 4)
            for v in values { raw.append(littleEndian: v.bitPattern) }
            t.bytes(9, raw)
            proto.message(5, t)
            return name
        }

        /// An int64 initializer (Pad's pads).
        mutating func integers(_ name: String, _ values: [Int]) -> String {
            var t = ProtoWriter()
            t.varint(1, UInt64(values.count))
            t.varint(2, 7)  // INT64
            t.string(8, name)
            var raw = Data(capacity: values.count * 8)
            for v in values { raw.append(littleEndian: Int64(v)) }
            t.bytes(9, raw)
            proto.message(5, t)
            return name
        }

        /// Exact GELU, x * (1 + erf(x / sqrt 2)) / 2 (opset 17 has Erf, not Gelu).
        mutating func gelu(_ x: String) throws -> String {
            let root2 = try initializer("gelu.sqrt2", try Tensor([Float(2).squareRoot()], shape: [1]))
            let one = try initializer("gelu.one", try Tensor([Float(1)], shape: [1]))
            let half = try initializer("gelu.half", try Tensor([Float(0.5)], shape: [1]))
            let erf = node("Erf", [node("Div", [x, root2])])
            return node("Mul", [node("Mul", [x, node("Add", [erf, one])]), half])
        }

        /// A node of `op` on `inputs`; its output's name.
        mutating func node(_ op: String, _ inputs: [String], _ attributes: [ProtoWriter] = [], named: String? = nil) -> String {
            count += 1
            let output = named ?? "\(op.lowercased())_\(count)"
            var n = ProtoWriter()
            for i in inputs { n.string(1, i) }
            n.string(2, output)
            n.string(3, output)
            n.string(4, op)
            for a in attributes { n.message(5, a) }
            proto.message(1, n)
            return output
        }

        static func ints(_ name: String, _ values: [Int]) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            for v in values { a.varint(8, UInt64(bitPattern: Int64(v))) }
            a.varint(20, 7)  // INTS
            return a
        }

        static func int(_ name: String, _ value: Int) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            a.varint(3, UInt64(bitPattern: Int64(value)))
            a.varint(20, 2)  // INT
            return a
        }

        static func string(_ name: String, _ value: String) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            a.string(4, value)
            a.varint(20, 3)  // STRING
            return a
        }

        static func float(_ name: String, _ value: Double) -> ProtoWriter {
            var a = ProtoWriter()
            a.string(1, name)
            a.float(2, Float(value))
            a.varint(20, 1)  // FLOAT
            return a
        }
    }
}
