import Foundation

/// A storage reference produced by a persistent id: key, element type, element count, optional view.
struct StorageRef {
    let key: String
    let dtype: DType
    let numel: Int
    /// Legacy view: (view key, element offset, element count).
    let view: (key: String, offset: Int, size: Int)?
}

/// A tensor rebuilt by `_rebuild_tensor_v2`, not yet bound to bytes.
struct TensorSpec {
    let storage: StorageRef
    let offset: Int
    let size: [Int]
    let stride: [Int]
}

final class PList { var items: [PValue] = [] }
final class PDict { var items: [(PValue, PValue)] = [] }
final class PTuple {
    var items: [PValue]
    init(_ items: [PValue]) { self.items = items }
}

/// Owns every container an unpickler creates. Tearing it down empties the containers one by one, so that a hostile,
/// deeply nested pickle is released without recursion (no stack overflow); keep it alive while using the values.
final class PArena {
    private var lists: [PList] = []
    private var dicts: [PDict] = []
    private var tuples: [PTuple] = []
    func list(_ items: [PValue] = []) -> PValue { let l = PList(); l.items = items; lists.append(l); return .list(l) }
    func dict(_ items: [(PValue, PValue)] = []) -> PValue { let d = PDict(); d.items = items; dicts.append(d); return .dict(d) }
    func tuple(_ items: [PValue]) -> PValue { let t = PTuple(items); tuples.append(t); return .tuple(t) }
    deinit {
        for l in lists { l.items.removeAll() }
        for d in dicts { d.items.removeAll() }
        for t in tuples { t.items.removeAll() }
    }
}

/// Values the restricted unpickler can build. No object other than these ever exists.
indirect enum PValue {
    case none, bool(Bool), int(Int), float(Double), string(String), bytes([UInt8])
    case list(PList), tuple(PTuple), dict(PDict)
    case global(String)
    case storageType(DType)
    case storage(StorageRef)
    case tensor(TensorSpec)
    case bound(TensorSpec, ByteSlice)
    case mark

    var asInt: Int? { if case let .int(v) = self { return v }; if case let .bool(b) = self { return b ? 1 : 0 }; return nil }
    var asString: String? { if case let .string(s) = self { return s }; return nil }
    var asIntArray: [Int]? {
        var xs: [PValue]
        switch self {
        case let .tuple(t): xs = t.items
        case let .list(l): xs = l.items
        default: return nil
        }
        var out = [Int]()
        for x in xs { guard let v = x.asInt else { return nil }; out.append(v) }
        return out
    }
}

/// A restricted unpickler equivalent to `torch.load(weights_only=True)`: it understands only the opcodes a
/// state dict needs, and resolves only allow-listed globals to inert markers. Nothing is ever called or executed.
struct Unpickler {
    static let storageTypes: [String: DType] = [
        "FloatStorage": .float32, "HalfStorage": .float16, "BFloat16Storage": .bfloat16, "DoubleStorage": .float64,
        "LongStorage": .int64, "IntStorage": .int32, "ShortStorage": .int16, "CharStorage": .int8,
        "ByteStorage": .uint8, "BoolStorage": .bool,
    ]
    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state", "builtins.dict", "builtins.list", "builtins.tuple",
        "__builtin__.dict", "__builtin__.list", "__builtin__.tuple", "_codecs.encode", "builtins.set",
    ]
    /// Limits that keep hostile inputs from exhausting memory.
    static let maxStack = 1 << 20
    static let maxMemo = 1 << 22
    static let maxTotalStringBytes = 1 << 28

    let data: UnsafeRawBufferPointer
    let path: String
    var pos: Int
    var stack: [PValue] = []
    var marks: [Int] = []
    var memo: [Int: PValue] = [:]
    var stringBytes = 0
    /// Called for BINPERSID with the persistent id tuple.
    let persistentLoad: ([PValue]) throws -> PValue

    let arena: PArena

    init(data: UnsafeRawBufferPointer, start: Int = 0, path: String, arena: PArena = PArena(),
         persistentLoad: @escaping ([PValue]) throws -> PValue) {
        self.arena = arena
        self.data = data
        self.pos = start
        self.path = path
        self.persistentLoad = persistentLoad
    }

    private func corrupt(_ r: String) -> CheckpointError { .corrupt(path: path, reason: "pickle at byte \(pos): \(r)") }

    private mutating func byte() throws -> UInt8 {
        guard pos < data.count else { throw corrupt("unexpected end of data") }
        defer { pos += 1 }
        return data[pos]
    }
    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= data.count - pos else { throw corrupt("needs \(n) bytes, \(data.count - pos) left") }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: data[pos..<(pos + n)])
    }
    private mutating func uint(_ n: Int) throws -> UInt64 {
        let b = try take(n)
        var v: UInt64 = 0
        for i in stride(from: n - 1, through: 0, by: -1) { v = v << 8 | UInt64(b[i]) }
        return v
    }
    private mutating func line() throws -> String {
        guard let nl = data[pos...].firstIndex(of: 0x0A), nl - pos < 4096 else { throw corrupt("unterminated text line") }
        let s = String(decoding: UnsafeRawBufferPointer(rebasing: data[pos..<nl]), as: UTF8.self)
        pos = nl + 1
        return s
    }
    private mutating func text(_ n: Int) throws -> String {
        stringBytes += n
        guard stringBytes <= Unpickler.maxTotalStringBytes else { throw corrupt("too much string data") }
        return String(decoding: try take(n), as: UTF8.self)
    }
    private mutating func push(_ v: PValue) throws {
        guard stack.count < Unpickler.maxStack else { throw corrupt("stack too deep") }
        stack.append(v)
    }
    private mutating func pop() throws -> PValue {
        guard let v = stack.popLast() else { throw corrupt("stack underflow") }
        if case .mark = v { throw corrupt("unexpected mark") }
        return v
    }
    private mutating func popMark() throws -> [PValue] {
        guard let m = marks.popLast(), m < stack.count else { throw corrupt("no mark") }
        guard case .mark = stack[m] else { throw corrupt("mark mismatch") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }
    private mutating func memoPut(_ i: Int, _ v: PValue) throws {
        guard i >= 0, memo.count < Unpickler.maxMemo || memo[i] != nil else { throw corrupt("memo too large") }
        memo[i] = v
    }
    private func memoGet(_ i: Int) throws -> PValue {
        guard let v = memo[i] else { throw corrupt("memo key \(i) undefined") }
        return v
    }

    private func resolveGlobal(_ module: String, _ name: String) throws -> PValue {
        let full = "\(module).\(name)"
        if module == "torch", let dt = Unpickler.storageTypes[name] { return .storageType(dt) }
        guard Unpickler.allowedGlobals.contains(full) else { throw CheckpointError.forbiddenGlobal(full, path: path) }
        return .global(full)
    }

    /// Applies an allow-listed callable to its arguments; builds data only.
    private func call(_ fn: PValue, _ args: [PValue]) throws -> PValue {
        guard case let .global(name) = fn else { throw corrupt("REDUCE on a non-callable value") }
        switch name {
        case "collections.OrderedDict", "builtins.dict", "__builtin__.dict":
            var items: [(PValue, PValue)] = []
            if let first = args.first {
                switch first {
                case let .dict(src): items = src.items
                case let .list(l):
                    for it in l.items { if case let .tuple(kv) = it, kv.items.count == 2 { items.append((kv.items[0], kv.items[1])) } }
                default: break
                }
            }
            return arena.dict(items)
        case "builtins.list", "__builtin__.list", "builtins.set":
            var items: [PValue] = []
            if let first = args.first {
                if case let .list(src) = first { items = src.items }
                if case let .tuple(t) = first { items = t.items }
            }
            return arena.list(items)
        case "builtins.tuple", "__builtin__.tuple":
            if let first = args.first {
                if case let .list(src) = first { return arena.tuple(src.items) }
                if case .tuple = first { return first }
            }
            return arena.tuple([])
        case "_codecs.encode":
            guard let s = args.first?.asString else { throw corrupt("_codecs.encode needs a string") }
            return .bytes(s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        case "torch._utils._rebuild_tensor_v2":
            guard args.count >= 4, case let .storage(st) = args[0], let off = args[1].asInt,
                  let size = args[2].asIntArray, let stride = args[3].asIntArray else {
                throw corrupt("bad arguments to _rebuild_tensor_v2")
            }
            guard size.count == stride.count, size.count <= 64 else { throw corrupt("tensor rank mismatch") }
            return .tensor(TensorSpec(storage: st, offset: off, size: size, stride: stride))
        case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
            guard let first = args.first, case .tensor = first else { throw corrupt("bad arguments to \(name)") }
            return first
        default:
            throw CheckpointError.forbiddenGlobal(name, path: path)
        }
    }

    /// Runs the pickle program up to STOP and returns its result; `pos` then points after STOP.
    mutating func load() throws -> PValue {
        while true {
            let op = try byte()
            switch op {
            case 0x80: _ = try byte() // PROTO
            case 0x95: _ = try take(8) // FRAME
            case 0x2E: // STOP
                return try pop()
            case 0x28: marks.append(stack.count); try push(.mark) // MARK
            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4A: try push(.int(Int(Int32(bitPattern: UInt32(try uint(4)))))) // BININT
            case 0x4B: try push(.int(Int(try byte()))) // BININT1
            case 0x4D: try push(.int(Int(try uint(2)))) // BININT2
            case 0x8A: // LONG1
                let n = Int(try byte())
                let b = try take(n)
                if n > 8 { try push(.bytes(Array(b))); continue } // big integers only as raw bytes (legacy magic)
                var v: UInt64 = 0
                for i in stride(from: n - 1, through: 0, by: -1) { v = v << 8 | UInt64(b[i]) }
                if n > 0, n < 8, b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << UInt64(8 * n) }
                try push(.int(Int(Int64(bitPattern: v))))
            case 0x49: // INT (text)
                let s = try line()
                if s == "01" { try push(.bool(true)) } else if s == "00" { try push(.bool(false)) }
                else { guard let v = Int(s) else { throw corrupt("bad INT") }; try push(.int(v)) }
            case 0x4C: // LONG (text)
                var s = try line(); if s.hasSuffix("L") { s.removeLast() }
                guard let v = Int(s) else { throw corrupt("bad LONG") }
                try push(.int(v))
            case 0x47: // BINFLOAT (big-endian)
                let b = try take(8)
                var v: UInt64 = 0
                for i in 0..<8 { v = v << 8 | UInt64(b[i]) }
                try push(.float(Double(bitPattern: v)))
            case 0x58: try push(.string(try text(Int(try uint(4))))) // BINUNICODE
            case 0x8C: try push(.string(try text(Int(try byte())))) // SHORT_BINUNICODE
            case 0x8D: let n = try uint(8); guard n < UInt64(Int.max) else { throw corrupt("bad length") }; try push(.string(try text(Int(n))))
            case 0x54: try push(.string(try text(Int(try uint(4))))) // BINSTRING
            case 0x55: try push(.string(try text(Int(try byte())))) // SHORT_BINSTRING
            case 0x42: let n = Int(try uint(4)); _ = try text(0); try push(.bytes(Array(try take(n)))) // BINBYTES
            case 0x43: let n = Int(try byte()); try push(.bytes(Array(try take(n)))) // SHORT_BINBYTES
            case 0x5D: try push(arena.list()) // EMPTY_LIST
            case 0x7D: try push(arena.dict()) // EMPTY_DICT
            case 0x29: try push(arena.tuple([])) // EMPTY_TUPLE
            case 0x74: try push(arena.tuple(try popMark())) // TUPLE
            case 0x85: let a = try pop(); try push(arena.tuple([a]))
            case 0x86: let b = try pop(), a = try pop(); try push(arena.tuple([a, b]))
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(arena.tuple([a, b, c]))
            case 0x6C: try push(arena.list(try popMark())) // LIST
            case 0x64: // DICT
                let items = try popMark()
                guard items.count % 2 == 0 else { throw corrupt("odd DICT items") }
                var pairs: [(PValue, PValue)] = []
                for i in stride(from: 0, to: items.count, by: 2) { pairs.append((items[i], items[i + 1])) }
                try push(arena.dict(pairs))
            case 0x61: // APPEND
                let v = try pop()
                guard case let .list(l) = stack.last ?? .none else { throw corrupt("APPEND to a non-list") }
                l.items.append(v)
            case 0x65: // APPENDS
                let vs = try popMark()
                guard case let .list(l) = stack.last ?? .none else { throw corrupt("APPENDS to a non-list") }
                l.items.append(contentsOf: vs)
            case 0x73: // SETITEM
                let v = try pop(), k = try pop()
                guard case let .dict(d) = stack.last ?? .none else { throw corrupt("SETITEM on a non-dict") }
                d.items.append((k, v))
            case 0x75: // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0, case let .dict(d) = stack.last ?? .none else { throw corrupt("bad SETITEMS") }
                for i in stride(from: 0, to: items.count, by: 2) { d.items.append((items[i], items[i + 1])) }
            case 0x71: try memoPut(Int(try byte()), stack.last ?? .none) // BINPUT
            case 0x72: try memoPut(Int(try uint(4)), stack.last ?? .none) // LONG_BINPUT
            case 0x94: try memoPut(memo.count, stack.last ?? .none) // MEMOIZE
            case 0x70: guard let i = Int(try line()) else { throw corrupt("bad PUT") }; try memoPut(i, stack.last ?? .none)
            case 0x68: try push(try memoGet(Int(try byte()))) // BINGET
            case 0x6A: try push(try memoGet(Int(try uint(4)))) // LONG_BINGET
            case 0x67: guard let i = Int(try line()) else { throw corrupt("bad GET") }; try push(try memoGet(i))
            case 0x63: // GLOBAL
                let module = try line(), name = try line()
                try push(try resolveGlobal(module, name))
            case 0x93: // STACK_GLOBAL
                let n = try pop(), m = try pop()
                guard let name = n.asString, let module = m.asString else { throw corrupt("bad STACK_GLOBAL") }
                try push(try resolveGlobal(module, name))
            case 0x52: // REDUCE
                let args = try pop(), fn = try pop()
                guard case let .tuple(a) = args else { throw corrupt("REDUCE arguments are not a tuple") }
                try push(try call(fn, a.items))
            case 0x81: // NEWOBJ
                let args = try pop(), cls = try pop()
                guard case let .tuple(a) = args else { throw corrupt("NEWOBJ arguments are not a tuple") }
                try push(try call(cls, a.items))
            case 0x62: // BUILD: state for an OrderedDict (e.g. _metadata) or a tensor; kept inert
                _ = try pop()
                guard let top = stack.last else { throw corrupt("BUILD on empty stack") }
                switch top {
                case .dict, .tensor, .list: break
                default: throw corrupt("BUILD on an unsupported object")
                }
            case 0x51: // BINPERSID
                let pid = try pop()
                guard case let .tuple(t) = pid else { throw corrupt("persistent id is not a tuple") }
                try push(try persistentLoad(t.items))
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popMark() // POP_MARK
            case 0x32: guard let t = stack.last else { throw corrupt("DUP on empty stack") }; try push(t) // DUP
            default:
                throw CheckpointError.forbiddenOpcode(op, path: path)
            }
        }
    }

    /// Parses a persistent id `('storage', StorageType, key, location, numel[, view_metadata])`.
    static func storageRef(_ t: [PValue], path: String) throws -> StorageRef {
        guard t.count >= 5, t[0].asString == "storage", case let .storageType(dt) = t[1],
              let numel = t[4].asInt, numel >= 0 else {
            throw CheckpointError.corrupt(path: path, reason: "pickle: unexpected persistent id")
        }
        let key: String
        if let s = t[2].asString { key = s } else if let i = t[2].asInt { key = String(i) } else {
            throw CheckpointError.corrupt(path: path, reason: "pickle: storage key is not a string")
        }
        var view: (String, Int, Int)?
        if t.count >= 6, case let .tuple(vt) = t[5], vt.items.count == 3, let vk = vt.items[0].asString ?? vt.items[0].asInt.map(String.init),
           let off = vt.items[1].asInt, let sz = vt.items[2].asInt {
            view = (vk, off, sz)
        }
        return StorageRef(key: key, dtype: dt, numel: numel, view: view)
    }
}
