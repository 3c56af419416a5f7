import Foundation

/// A value decoded from a Python pickle. Nothing is executed: globals stay names and calls
/// (REDUCE, NEWOBJ, BUILD) stay data, so a loader interprets only the few it knows.
public indirect enum PickleValue: CustomStringConvertible {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer that does not fit Int64: its little-endian two's-complement bytes.
    case bigInt(Data)
    case float(Double)
    case string(String)
    case bytes(Data)
    case list([PickleValue])
    case tuple([PickleValue])
    /// Entries in pickle order; keys may be any value.
    case dict([(PickleValue, PickleValue)])
    /// A set or frozenset, in pickle order.
    case set([PickleValue])
    /// A module-level name (`collections.OrderedDict`), never imported.
    case global(module: String, name: String)
    /// `callable(*args)`, with the state a later BUILD gave it (REDUCE, NEWOBJ, OBJ, INST).
    case call(PickleValue, [PickleValue], state: PickleValue?)
    /// A persistent id a loader did not resolve.
    case persistent(PickleValue)
    /// A tensor rebuilt by a loader (torch._utils._rebuild_tensor_v2).
    case tensor(Tensor)

    public var description: String {
        switch self {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .bigInt(let d): return "int(\(d.count) bytes)"
        case .float(let f): return String(f)
        case .string(let s): return "'\(s)'"
        case .bytes(let d): return "bytes(\(d.count))"
        case .list(let v): return "[" + v.map(\.description).joined(separator: ", ") + "]"
        case .tuple(let v): return "(" + v.map(\.description).joined(separator: ", ") + (v.count == 1 ? ",)" : ")")
        case .dict(let p): return "{" + p.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
        case .set(let v): return "{" + v.map(\.description).joined(separator: ", ") + "}"
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
    public var double: Double? {
        switch self {
        case .float(let f): return f
        case .int(let i): return Double(i)
        default: return nil
        }
    }
    public var tensor: Tensor? { if case .tensor(let t) = self { return t }; return nil }
    /// Elements of a tuple or list.
    public var items: [PickleValue]? {
        switch self {
        case .tuple(let v), .list(let v): return v
        default: return nil
        }
    }
    /// Entries of a dict.
    public var pairs: [(PickleValue, PickleValue)]? { if case .dict(let p) = self { return p }; return nil }
    /// The value under a string key of a dict (the first such entry).
    public subscript(_ key: String) -> PickleValue? { pairs?.first { $0.0.string == key }?.1 }
}

/// Reads pickle protocols 2 to 5 (and the protocol 0/1 opcodes checkpoints still contain)
/// without executing anything.
public struct PickleReader {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// A mutable container met while reading. Memo entries share it, so a dict or list filled
    /// after it was memoized is seen filled wherever it is referenced again.
    final class Node {
        enum Kind { case list, tuple, dict, set, call }
        let kind: Kind
        /// Elements of a list, tuple or set; items APPENDed to a call (a list subclass).
        var items: [Slot] = []
        /// Entries of a dict; entries SETITEM'd on a call (a dict subclass).
        var pairs: [(Slot, Slot)] = []
        var callable: Slot?
        var args: [Slot] = []
        var state: Slot?
        init(_ kind: Kind, items: [Slot] = []) {
            self.kind = kind
            self.items = items
        }

        /// Moves the nodes this one holds into `pending`, leaving it empty.
        func detachChildren(into pending: inout [Node]) {
            func take(_ slot: Slot?) { if case .node(let n)? = slot { pending.append(n) } }
            items.forEach(take)
            pairs.forEach { take($0.0); take($0.1) }
            args.forEach(take)
            take(callable)
            take(state)
            items = []
            pairs = []
            args = []
            callable = nil
            state = nil
        }

        // Releases deeply nested containers one at a time: a hostile pickle nesting a million lists
        // would otherwise overflow the stack with recursive deinits.
        deinit {
            guard !items.isEmpty || !pairs.isEmpty || !args.isEmpty || callable != nil || state != nil else { return }
            var pending: [Node] = []
            detachChildren(into: &pending)
            while var node = pending.popLast() {
                if isKnownUniquelyReferenced(&node) { node.detachChildren(into: &pending) }
            }
        }
    }

    enum Slot {
        case value(PickleValue)
        case node(Node)
    }

    let data: [UInt8]
    var position = 0
    var stack: [Slot] = []
    var marks: [Int] = []
    var memo: [Int: Slot] = [:]
    /// Resolves persistent ids (torch storages) as they are met.
    var persistentLoad: (PickleValue) throws -> PickleValue
    /// Rebuilds known calls (tensors) as they are met; nil keeps the call as data.
    var reduce: (PickleValue, [PickleValue]) throws -> PickleValue?

    /// Nesting deeper than this is refused rather than risking the call stack.
    static let maxDepth = 1_000

    public init(_ data: Data, persistentLoad: @escaping (PickleValue) throws -> PickleValue = { .persistent($0) },
                reduce: @escaping (PickleValue, [PickleValue]) throws -> PickleValue? = { _, _ in nil }) {
        self.data = [UInt8](data)
        self.persistentLoad = persistentLoad
        self.reduce = reduce
    }

    func fail(_ why: String, at offset: Int? = nil) -> Failure {
        Failure(description: "pickle byte \(offset ?? position): \(why)")
    }

    // MARK: Reading bytes

    mutating func byte() throws -> UInt8 {
        guard position < data.count else { throw fail("truncated stream (expected 1 more byte)") }
        defer { position += 1 }
        return data[position]
    }

    mutating func bytes(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= data.count - position else {
            throw fail("truncated stream (needs \(n) more bytes, \(data.count - position) left)")
        }
        defer { position += n }
        return data[position..<(position + n)]
    }

    mutating func uint(_ n: Int) throws -> UInt64 {
        var v: UInt64 = 0
        for (i, b) in try bytes(n).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        return v
    }

    /// A length prefix of `n` bytes, checked against what is left of the stream.
    mutating func length(_ n: Int) throws -> Int {
        let start = position
        let v = try uint(n)
        guard v <= UInt64(data.count - position) else {
            throw fail("truncated stream (length \(v) exceeds the \(data.count - position) bytes left)", at: start)
        }
        return Int(v)
    }

    mutating func line() throws -> String {
        guard let end = data[position...].firstIndex(of: 0x0a) else { throw fail("truncated stream (unterminated text line)") }
        defer { position = end + 1 }
        return String(decoding: data[position..<end], as: UTF8.self)
    }

    mutating func text(_ n: Int) throws -> String { String(decoding: try bytes(n), as: UTF8.self) }

    /// Two's-complement little-endian integer bytes (LONG1, LONG4).
    static func integer(_ b: [UInt8]) -> PickleValue {
        if b.isEmpty { return .int(0) }
        if b.count > 8 {
            // Python writes the shortest form, but trim redundant sign bytes anyway.
            var trimmed = b
            while trimmed.count > 8, let last = trimmed.last, let prev = trimmed.dropLast().last,
                  (last == 0 && prev & 0x80 == 0) || (last == 0xff && prev & 0x80 != 0) {
                trimmed.removeLast()
            }
            if trimmed.count > 8 { return .bigInt(Data(trimmed)) }
            return integer(trimmed)
        }
        var v: UInt64 = 0
        for (i, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(i)) }
        if b.count < 8 && b[b.count - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(b.count)) }
        return .int(Int64(bitPattern: v))
    }

    // MARK: The stack

    mutating func push(_ v: PickleValue) { stack.append(.value(v)) }

    mutating func pop() throws -> Slot {
        if let m = marks.last, stack.count <= m { throw fail("stack underflow (popping past a MARK)") }
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        return v
    }

    mutating func popMark() throws -> [Slot] {
        guard let m = marks.popLast() else { throw fail("no MARK on the stack") }
        defer { stack.removeSubrange(m...) }
        return Array(stack[m...])
    }

    mutating func top() throws -> Slot {
        guard let v = stack.last else { throw fail("stack underflow") }
        return v
    }

    mutating func memoize(_ key: Int) throws {
        memo[key] = try top()
    }

    mutating func recall(_ key: Int) throws {
        guard let v = memo[key] else { throw fail("memo key \(key) is not defined") }
        stack.append(v)
    }

    /// The decoded value of a stack slot; `seen` maps nodes already decoded (shared references).
    func resolve(_ slot: Slot, _ seen: inout [ObjectIdentifier: PickleValue], depth: Int = 0) throws -> PickleValue {
        guard case .node(let node) = slot else {
            if case .value(let v) = slot { return v }
            return .none
        }
        let id = ObjectIdentifier(node)
        if let done = seen[id] { return done }
        guard depth < Self.maxDepth else { throw fail("objects nested more than \(Self.maxDepth) deep") }
        // A reference cycle (a list containing itself) decodes the inner reference as None.
        seen[id] = PickleValue.none
        let items = try node.items.map { try resolve($0, &seen, depth: depth + 1) }
        let pairs = try node.pairs.map { (try resolve($0.0, &seen, depth: depth + 1), try resolve($0.1, &seen, depth: depth + 1)) }
        let state = try node.state.map { try resolve($0, &seen, depth: depth + 1) }
        let value: PickleValue
        switch node.kind {
        case .list: value = .list(items)
        case .tuple: value = .tuple(items)
        case .set: value = .set(items)
        case .dict:
            // BUILD on a dict (an OrderedDict's attributes, such as a state_dict's `_metadata`)
            // adds the state's entries after the items.
            if let state, case .dict(let extra) = state { value = .dict(pairs + extra) } else { value = .dict(pairs) }
        case .call:
            if !pairs.isEmpty {
                // A dict subclass filled by SETITEMS (defaultdict, AttributeDict...): its entries.
                if let state, case .dict(let extra) = state { value = .dict(pairs + extra) } else { value = .dict(pairs) }
            } else if !items.isEmpty {
                // A list subclass filled by APPENDS: its elements.
                value = .list(items)
            } else {
                let callable = try node.callable.map { try resolve($0, &seen, depth: depth + 1) } ?? .none
                let args = try node.args.map { try resolve($0, &seen, depth: depth + 1) }
                value = .call(callable, args, state: state)
            }
        }
        seen[id] = value
        return value
    }

    func resolve(_ slot: Slot) throws -> PickleValue {
        var seen: [ObjectIdentifier: PickleValue] = [:]
        return try resolve(slot, &seen)
    }

    /// REDUCE, NEWOBJ, OBJ, INST: a known rebuild, an empty dict for `OrderedDict()`, or a call node.
    mutating func call(_ callable: Slot, _ args: [Slot], at offset: Int) throws -> Slot {
        let f = try resolve(callable)
        let a = try args.map { try resolve($0) }
        // Errors of the loader's own (a missing storage) pass through as they are.
        if let rebuilt = try reduce(f, a) { return .value(rebuilt) }
        let builtin: String? = {
            if case .global(let module, let name) = f, module == "builtins" || module == "__builtin__" { return name }
            return nil
        }()
        // Protocols 2 and 3 spell sets as set(list) / frozenset(list), and protocol 2 spells bytes
        // as _codecs.encode(latin-1 text, "latin1") (bytes() when empty).
        if builtin == "set" || builtin == "frozenset" {
            if a.isEmpty { return .node(Node(.set)) }
            if a.count == 1, let elements = a[0].items { return .node(Node(.set, items: elements.map { .value($0) })) }
        }
        if builtin == "bytes" || builtin == "bytearray", a.isEmpty { return .value(.bytes(Data())) }
        if case .global("_codecs", "encode") = f, a.count == 2, let text = a[0].string, a[1].string == "latin1" || a[1].string == "latin-1" {
            let scalars = text.unicodeScalars
            if scalars.allSatisfy({ $0.value < 256 }) { return .value(.bytes(Data(scalars.map { UInt8($0.value) }))) }
        }
        if case .global(let module, let name) = f, (module == "collections" && name == "OrderedDict") || builtin == "dict" {
            let node = Node(.dict)
            if a.count == 1, let entries = a[0].items {
                // OrderedDict([(k, v), ...])
                for entry in entries {
                    guard let kv = entry.items, kv.count == 2 else { throw fail("\(name) argument is not a list of pairs", at: offset) }
                    node.pairs.append((.value(kv[0]), .value(kv[1])))
                }
                return .node(node)
            }
            if a.isEmpty { return .node(node) }
        }
        let node = Node(.call)
        node.callable = callable
        node.args = args
        return .node(node)
    }

    // MARK: Decoding

    /// Decodes the whole stream and returns the top-level value.
    public mutating func load() throws -> PickleValue {
        while true {
            let start = position
            let op = try byte()
            switch op {
            case 0x80:                                                 // PROTO
                let proto = try byte()
                guard proto <= 5 else { throw fail("unsupported pickle protocol \(proto)", at: start) }
            case 0x95: _ = try bytes(8)                                // FRAME (its contents follow inline)
            case 0x2e:                                                 // STOP
                guard let last = stack.last else { throw fail("STOP with an empty stack", at: start) }
                return try resolve(last)
            case 0x28: marks.append(stack.count)                       // MARK
            case 0x4e: push(.none)                                     // NONE
            case 0x88: push(.bool(true))                               // NEWTRUE
            case 0x89: push(.bool(false))                              // NEWFALSE
            case 0x4b: push(.int(Int64(try byte())))                   // BININT1
            case 0x4d: push(.int(Int64(try uint(2))))                  // BININT2
            case 0x4a: push(.int(Int64(Int32(truncatingIfNeeded: try uint(4)))))   // BININT
            case 0x8a: push(Self.integer(Array(try bytes(Int(try byte())))))       // LONG1
            case 0x8b:                                                 // LONG4
                let n = Int32(truncatingIfNeeded: try uint(4))
                guard n >= 0 else { throw fail("negative LONG4 length", at: start) }
                push(Self.integer(Array(try bytes(Int(n)))))
            case 0x49:                                                 // INT (text)
                let l = try line()
                if l == "01" { push(.bool(true)) } else if l == "00" { push(.bool(false)) } else {
                    guard let v = Int64(l) else { throw fail("bad INT '\(l)'", at: start) }
                    push(.int(v))
                }
            case 0x4c:                                                 // LONG (text, "123L")
                let l = try line()
                guard let v = Int64(l.hasSuffix("L") ? String(l.dropLast()) : l) else { throw fail("bad LONG '\(l)'", at: start) }
                push(.int(v))
            case 0x46:                                                 // FLOAT (text)
                let l = try line()
                guard let v = Double(l) else { throw fail("bad FLOAT '\(l)'", at: start) }
                push(.float(v))
            case 0x47:                                                 // BINFLOAT (big endian)
                var bits: UInt64 = 0
                for b in try bytes(8) { bits = bits << 8 | UInt64(b) }
                push(.float(Double(bitPattern: bits)))
            case 0x58: push(.string(try text(try length(4))))          // BINUNICODE
            case 0x8c: push(.string(try text(try length(1))))          // SHORT_BINUNICODE
            case 0x8d: push(.string(try text(try length(8))))          // BINUNICODE8
            case 0x54:                                                 // BINSTRING (Python 2 str)
                let n = Int32(truncatingIfNeeded: try uint(4))
                guard n >= 0 else { throw fail("negative BINSTRING length", at: start) }
                push(.string(try text(Int(n))))
            case 0x55: push(.string(try text(try length(1))))          // SHORT_BINSTRING
            case 0x42: push(.bytes(Data(try bytes(try length(4)))))    // BINBYTES
            case 0x43: push(.bytes(Data(try bytes(try length(1)))))    // SHORT_BINBYTES
            case 0x8e: push(.bytes(Data(try bytes(try length(8)))))    // BINBYTES8
            case 0x96: push(.bytes(Data(try bytes(try length(8)))))    // BYTEARRAY8
            case 0x5d: stack.append(.node(Node(.list)))                // EMPTY_LIST
            case 0x29: push(.tuple([]))                                // EMPTY_TUPLE
            case 0x7d: stack.append(.node(Node(.dict)))                // EMPTY_DICT
            case 0x8f: stack.append(.node(Node(.set)))                 // EMPTY_SET
            case 0x74: stack.append(.node(Node(.tuple, items: try popMark())))     // TUPLE
            case 0x85: stack.append(.node(Node(.tuple, items: [try pop()])))       // TUPLE1
            case 0x86:                                                 // TUPLE2
                let b = try pop(), a = try pop()
                stack.append(.node(Node(.tuple, items: [a, b])))
            case 0x87:                                                 // TUPLE3
                let c = try pop(), b = try pop(), a = try pop()
                stack.append(.node(Node(.tuple, items: [a, b, c])))
            case 0x6c: stack.append(.node(Node(.list, items: try popMark())))      // LIST
            case 0x64:                                                 // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items", at: start) }
                let node = Node(.dict)
                node.pairs = stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
                stack.append(.node(node))
            case 0x91: stack.append(.node(Node(.set, items: try popMark())))       // FROZENSET
            case 0x61:                                                 // APPEND
                let v = try pop()
                try append([v], to: try top(), op: "APPEND", at: start)
            case 0x65:                                                 // APPENDS
                let items = try popMark()
                try append(items, to: try top(), op: "APPENDS", at: start)
            case 0x73:                                                 // SETITEM
                let v = try pop(), k = try pop()
                try setItems([(k, v)], on: try top(), op: "SETITEM", at: start)
            case 0x75:                                                 // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items", at: start) }
                try setItems(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }, on: try top(), op: "SETITEMS", at: start)
            case 0x90:                                                 // ADDITEMS
                let items = try popMark()
                guard case .node(let node) = try top(), node.kind == .set else { throw fail("ADDITEMS on a non-set", at: start) }
                node.items += items
            case 0x63:                                                 // GLOBAL
                let module = try line(), name = try line()
                push(.global(module: module, name: name))
            case 0x93:                                                 // STACK_GLOBAL
                let name = try resolve(try pop()), module = try resolve(try pop())
                guard let m = module.string, let n = name.string else { throw fail("STACK_GLOBAL needs two strings", at: start) }
                push(.global(module: m, name: n))
            case 0x52:                                                 // REDUCE
                let args = try pop(), callable = try pop()
                stack.append(try call(callable, try arguments(args, op: "REDUCE", at: start), at: start))
            case 0x81:                                                 // NEWOBJ
                let args = try pop(), cls = try pop()
                stack.append(try call(cls, try arguments(args, op: "NEWOBJ", at: start), at: start))
            case 0x92:                                                 // NEWOBJ_EX
                let kwargs = try pop(), args = try pop(), cls = try pop()
                var list = try arguments(args, op: "NEWOBJ_EX", at: start)
                if case .node(let k) = kwargs, !k.pairs.isEmpty { list.append(kwargs) }
                stack.append(try call(cls, list, at: start))
            case 0x6f:                                                 // OBJ
                var items = try popMark()
                guard !items.isEmpty else { throw fail("OBJ without a class", at: start) }
                let cls = items.removeFirst()
                stack.append(try call(cls, items, at: start))
            case 0x69:                                                 // INST
                let module = try line(), name = try line()
                stack.append(try call(.value(.global(module: module, name: name)), try popMark(), at: start))
            case 0x62:                                                 // BUILD
                let state = try pop()
                if case .node(let node) = try top(), node.kind == .call || node.kind == .dict { node.state = state }
                // BUILD on anything else (a rebuilt tensor receiving attributes) keeps the object.
            case 0x51:                                                 // BINPERSID
                let pid = try resolve(try pop())
                push(try persistentLoad(pid))
            case 0x50:                                                 // PERSID (text)
                let pid = try line()
                push(try persistentLoad(.string(pid)))
            case 0x71: try memoize(Int(try byte()))                    // BINPUT
            case 0x72: try memoize(Int(try uint(4)))                   // LONG_BINPUT
            case 0x70:                                                 // PUT
                let l = try line()
                guard let k = Int(l) else { throw fail("bad PUT key '\(l)'", at: start) }
                try memoize(k)
            case 0x94: try memoize(memo.count)                         // MEMOIZE
            case 0x68: try recall(Int(try byte()))                     // BINGET
            case 0x6a: try recall(Int(try uint(4)))                    // LONG_BINGET
            case 0x67:                                                 // GET
                let l = try line()
                guard let k = Int(l) else { throw fail("bad GET key '\(l)'", at: start) }
                try recall(k)
            case 0x30:                                                 // POP (a MARK when nothing follows it)
                if let m = marks.last, m == stack.count { marks.removeLast() } else { _ = try pop() }
            case 0x31: _ = try popMark()                               // POP_MARK
            case 0x32: stack.append(try top())                         // DUP
            case 0x97, 0x98:
                throw fail("out-of-band buffers (pickle protocol 5 NEXT_BUFFER) are not supported", at: start)
            default:
                throw fail(String(format: "unsupported opcode 0x%02x", op), at: start)
            }
        }
    }

    /// The argument tuple of a call.
    func arguments(_ args: Slot, op: String, at offset: Int) throws -> [Slot] {
        switch args {
        case .node(let n) where n.kind == .tuple || n.kind == .list: return n.items
        case .value(.tuple(let v)): return v.map { .value($0) }
        default: throw fail("\(op) arguments are not a tuple", at: offset)
        }
    }

    func append(_ items: [Slot], to target: Slot, op: String, at offset: Int) throws {
        // A list, or a list subclass built by a call (its items, like list.extend).
        guard case .node(let node) = target, node.kind == .list || node.kind == .call else {
            throw fail("\(op) on a non-list", at: offset)
        }
        node.items += items
    }

    func setItems(_ pairs: [(Slot, Slot)], on target: Slot, op: String, at offset: Int) throws {
        // A dict, or a dict subclass built by a call (defaultdict, AttributeDict...).
        guard case .node(let node) = target, node.kind == .dict || node.kind == .call else {
            throw fail("\(op) on a non-dict", at: offset)
        }
        node.pairs += pairs
    }
}
