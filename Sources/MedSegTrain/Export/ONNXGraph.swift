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

        /// Whether weights (and the values between operators) are float16 rather than float32.
        let half: Bool
        /// Put before every weight's name: several networks (folds) in one graph keep theirs apart.
        var weightPrefix = ""
        /// Scan nodes written so far (their bodies' values are named apart).
        var scanCount = 0

        init(dims: Int, half: Bool = false) {
            self.dims = dims
            self.half = half
        }

        /// ONNX's element type of the graph's values: FLOAT16 or FLOAT.
        var elementType: UInt64 { half ? 10 : 1 }

        /// A weight, under its state_dict name, as an initializer of the graph's element type.
        mutating func initializer(_ name: String, _ tensor: Tensor) throws -> String {
            let name = weightPrefix + name
            guard written.insert(name).inserted else { return name }
            let values = try tensor.to(dtype: .float32).contiguous().toArray(Float.self)
            var raw = Data(capacity: values.count * (half ? 2 : 4))
            // Float16's rounding is IEEE's round to nearest even, as torch's .half().
            for v in values { half ? raw.append(littleEndian: Float16(v).bitPattern) : raw.append(littleEndian: v.bitPattern) }
            write(name, shape: tensor.shape, type: elementType, raw: raw)
            return name
        }

        /// An operator's float32 parameter (Resize's scales, float32 whatever the graph's type).
        mutating func floats(_ name: String, _ values: [Float]) -> String {
            guard written.insert(name).inserted else { return name }
            var raw = Data(capacity: values.count * 4)
            for v in values { raw.append(littleEndian: v.bitPattern) }
            write(name, shape: [values.count], type: 1, raw: raw)
            return name
        }

        private mutating func write(_ name: String, shape: [Int], type: UInt64, raw: Data) {
            var t = ProtoWriter()
            for d in shape { t.varint(1, UInt64(d)) }
            t.varint(2, type)
            t.string(8, name)
            t.bytes(9, raw)
            proto.message(5, t)
        }

        /// An int64 initializer (Pad's pads, Reshape's shapes, Gather's index); `scalar`: of shape [].
        mutating func integers(_ name: String, _ values: [Int], scalar: Bool = false) -> String {
            guard written.insert(name).inserted else { return name }
            var raw = Data(capacity: values.count * 8)
            for v in values { raw.append(littleEndian: Int64(v)) }
            write(name, shape: scalar ? [] : [values.count], type: 7, raw: raw)  // INT64
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
            write(op, inputs, [output], attributes)
            return output
        }

        /// A node of `op` with several outputs; their names.
        mutating func node(_ op: String, _ inputs: [String], _ attributes: [ProtoWriter] = [], outputs: Int) -> [String] {
            count += 1
            let names = (0..<outputs).map { "\(op.lowercased())_\(count)_\($0)" }
            write(op, inputs, names, attributes)
            return names
        }

        private mutating func write(_ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [ProtoWriter]) {
            proto.message(1, Self.nodeProto(op, inputs, outputs, attributes))
        }

        /// A NodeProto (named after its first output), for this graph or a subgraph (Scan's body).
        static func nodeProto(_ op: String, _ inputs: [String], _ outputs: [String], _ attributes: [ProtoWriter] = []) -> ProtoWriter {
            var n = ProtoWriter()
            for i in inputs { n.string(1, i) }
            for o in outputs { n.string(2, o) }
            n.string(3, outputs[0])
            n.string(4, op)
            for a in attributes { n.message(5, a) }
            return n
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
