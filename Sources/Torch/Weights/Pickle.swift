import Foundation

/// A value decoded from a Python pickle. Nothing is executed: globals are kept as names, calls
/// (REDUCE, NEWOBJ, BUILD) as data, so a loader can interpret the few it knows.
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int64)
    case float(Double)
    case string(String)
    case bytes(Data)
    case list([PickleValue])
    case tuple([PickleValue])
    case dict([(PickleValue, PickleValue)])
    case set([PickleValue])
    case global(module: String, name: String)
    /// callable(args), optionally followed by BUILD(state).
    case call(PickleValue, [PickleValue], state: PickleValue?)
    case persistent(PickleValue)
    /// A tensor rebuilt by a loader (torch._utils._rebuild_tensor_v2).
    case tensor(Tensor)

    public var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .float(let f): return String(f)
        case .string(let s): return "'\(s)'"
        case .bytes(let d): return "bytes(\(d.count))"
        case .list(let v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
        case .tuple(let v): return "(" + v.map(\.description).joined(separator: ", ") + ")"
        case .dict(let p): return "{" + p.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        case .set(let v): return "set(\(v.count))"
        case .global(let m, let n): return "\(m).\(n)"
        case .call(let f, let a, _): return "\(f)(\(a.map(\.description).joined(separator: ", ")))"
        case .persistent(let p): return "persistent(\(p))"
        case .tensor(let t): return "tensor(\(t.dtype), \(t.shape))"
        }
    }

    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var int: Int64? {
        switch self {
        case .int(let i): return i
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }
    /// Elements of a tuple or list.
    public var items: [PickleValue]? {
        switch self {
        case .tuple(let v), .list(let v): return v
        default: return nil
        }
    }
}

/// Reads pickle protocols 2 to 5 (the opcodes torch.save and common checkpoints use).
public struct PickleReader {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    let data: [UInt8]
    var position = 0
    var stack: [PickleValue] = []
    var marks: [Int] = []
    var memo: [Int: PickleValue] = [:]
    /// Resolves persistent ids (torch storages) as they are met.
    var persistentLoad: (PickleValue) throws -> PickleValue
    /// Rebuilds known calls (tensors) as they are met.
    var reduce: (PickleValue, [PickleValue]) throws -> PickleValue?

    public init(_ data: Data, persistentLoad: @escaping (PickleValue) throws -> PickleValue = { .persistent($0) },
                reduce: @escaping (PickleValue, [PickleValue]) throws -> PickleValue? = { _, _ in nil }) {
        self.data = [UInt8](data)
        self.persistentLoad = persistentLoad
        self.reduce = reduce
    }

    mutating func fail(_ why: String) -> Failure { Failure(description: "pickle byte \(position): \(why)") }

    mutating func byte() throws -> UInt8 {
        guard position < data.count else { throw fail("truncated stream") }
        defer { position += 1 }
        return data[position]
    }

    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, position + n <= data.count else { throw fail("truncated stream (needs \(n) more bytes)") }
        defer { position += n }
        return data[position..<(position + n)]
    }

    mutating func uint(_ n: Int) throws -> UInt64 {
        try bytes(n).enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
    }

    mutating func line() throws -> String {
        guard let end = data[position...].firstIndex(of: 0x0a) else { throw fail("unterminated text line") }
        defer { position = end + 1 }
        return String(decoding: data[position..<end], as: UTF8.self)
    }

    mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }

    mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast(), m <= stack.count else { throw fail("no MARK") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    mutating func text(_ n: Int) throws -> String { String(decoding: try bytes(n), as: UTF8.self) }

    mutating func call(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue {
        if let rebuilt = try reduce(callable, args) { return rebuilt }
        // OrderedDict() and similar empty constructions behave as plain containers.
        if case .global(_, let name) = callable, args.isEmpty, name == "OrderedDict" || name == "dict" { return .dict([]) }
        return .call(callable, args, state: nil)
    }

    /// Decodes the whole stream and returns the top-level value.
    public mutating func load() throws -> PickleValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte()                                  // PROTO
            case 0x95: _ = try bytes(8)                                // FRAME
            case 0x2e: return try pop()                                // STOP
            case 0x28: marks.append(stack.count)                       // MARK
            case 0x4e: stack.append(.none)                             // NONE
            case 0x88: stack.append(.bool(true))                       // NEWTRUE
            case 0x89: stack.append(.bool(false))                      // NEWFALSE
            case 0x4b: stack.append(.int(Int64(try byte())))           // BININT1
            case 0x4d: stack.append(.int(Int64(try uint(2))))          // BININT2
            case 0x4a: stack.append(.int(Int64(Int32(truncatingIfNeeded: try uint(4)))))  // BININT
            case 0x8a:                                                 // LONG1
                let n = Int(try byte())
                let b = Array(try bytes(n))
                guard n <= 8 else { throw fail("integer of \(n) bytes is too large") }
                var v: UInt64 = 0
                for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
                if n > 0 && n < 8 && b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
                stack.append(.int(Int64(bitPattern: v)))
            case 0x49:                                                 // INT (text)
                let l = try line()
                if l == "01" { stack.append(.bool(true)) } else if l == "00" { stack.append(.bool(false)) }
                else { guard let v = Int64(l) else { throw fail("bad INT \(l)") }; stack.append(.int(v)) }
            case 0x47:                                                 // BINFLOAT (big endian)
                let b = try bytes(8)
                stack.append(.float(Double(bitPattern: b.reduce(UInt64(0)) { $0 << 8 | UInt64($1) })))
            case 0x58: stack.append(.string(try text(Int(try uint(4)))))    // BINUNICODE
            case 0x8c: stack.append(.string(try text(Int(try byte()))))     // SHORT_BINUNICODE
            case 0x8d: stack.append(.string(try text(Int(try uint(8)))))    // BINUNICODE8
            case 0x54: stack.append(.string(try text(Int(try uint(4)))))    // BINSTRING
            case 0x55: stack.append(.string(try text(Int(try byte()))))     // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Data(try bytes(Int(try uint(4))))))  // BINBYTES
            case 0x43: stack.append(.bytes(Data(try bytes(Int(try byte())))))   // SHORT_BINBYTES
            case 0x8e: stack.append(.bytes(Data(try bytes(Int(try uint(8))))))  // BINBYTES8
            case 0x5d: stack.append(.list([]))                         // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                        // EMPTY_TUPLE
            case 0x7d: stack.append(.dict([]))                         // EMPTY_DICT
            case 0x8f: stack.append(.set([]))                          // EMPTY_SET
            case 0x74: stack.append(.tuple(try popMark()))             // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))               // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))       // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x6c: stack.append(.list(try popMark()))              // LIST
            case 0x64:                                                 // DICT
                let items = try popMark()
                stack.append(.dict(stride(from: 0, to: items.count - 1, by: 2).map { (items[$0], items[$0 + 1]) }))
            case 0x91: stack.append(.set(try popMark()))               // FROZENSET
            case 0x61:                                                 // APPEND
                let v = try pop()
                guard case .list(var l) = try pop() else { throw fail("APPEND to a non-list") }
                l.append(v); stack.append(.list(l))
            case 0x65:                                                 // APPENDS
                let items = try popMark()
                guard case .list(var l) = try pop() else { throw fail("APPENDS to a non-list") }
                l += items; stack.append(.list(l))
            case 0x73:                                                 // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(var d) = try pop() else { throw fail("SETITEM on a non-dict") }
                d.append((k, v)); stack.append(.dict(d))
            case 0x75:                                                 // SETITEMS
                let items = try popMark()
                guard case .dict(var d) = try pop() else { throw fail("SETITEMS on a non-dict") }
                for i in stride(from: 0, to: items.count - 1, by: 2) { d.append((items[i], items[i + 1])) }
                stack.append(.dict(d))
            case 0x90:                                                 // ADDITEMS
                let items = try popMark()
                guard case .set(var s) = try pop() else { throw fail("ADDITEMS on a non-set") }
                s += items; stack.append(.set(s))
            case 0x63:                                                 // GLOBAL
                let module = try line(), name = try line()
                stack.append(.global(module: module, name: name))
            case 0x93:                                                 // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let m = module.string, let n = name.string else { throw fail("STACK_GLOBAL needs two strings") }
                stack.append(.global(module: m, name: n))
            case 0x52:                                                 // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, args.items ?? [args]))
            case 0x81:                                                 // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try call(cls, args.items ?? [args]))
            case 0x62:                                                 // BUILD
                let state = try pop()
                let obj = try pop()
                switch obj {
                case .call(let f, let a, _): stack.append(.call(f, a, state: state))
                case .dict(var d):
                    if case .dict(let extra) = state { d += extra }
                    stack.append(.dict(d))
                default: stack.append(obj)   // e.g. a rebuilt tensor receiving attributes
                }
            case 0x51: stack.append(try persistentLoad(try pop()))     // BINPERSID
            case 0x71: memo[Int(try byte())] = stack.last              // BINPUT
            case 0x72: memo[Int(try uint(4))] = stack.last             // LONG_BINPUT
            case 0x70: memo[Int(try line()) ?? -1] = stack.last        // PUT
            case 0x94: memo[memo.count] = stack.last                   // MEMOIZE
            case 0x68: try pushMemo(Int(try byte()))                   // BINGET
            case 0x6a: try pushMemo(Int(try uint(4)))                  // LONG_BINGET
            case 0x67: try pushMemo(Int(try line()) ?? -1)             // GET
            case 0x30: _ = try pop()                                   // POP
            case 0x31: _ = try popMark()                               // POP_MARK
            case 0x32: guard let top = stack.last else { throw fail("DUP on empty stack") }; stack.append(top)
            default:
                position -= 1
                throw fail(String(format: "unsupported opcode 0x%02x", op))
            }
        }
    }

    mutating func pushMemo(_ key: Int) throws {
        guard let v = memo[key] else { throw fail("memo key \(key) is not defined") }
        stack.append(v)
    }
}
