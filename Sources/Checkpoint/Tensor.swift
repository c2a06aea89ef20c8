import Foundation

/// One tensor of a checkpoint: a strided view (element strides, element offset) into a storage that stays
/// memory-mapped; values are copied only when asked for.
public struct CheckpointTensor: Sendable {
    /// Dotted key, e.g. "conv_first.weight".
    public let name: String
    /// Element type of the storage.
    public let dtype: DType
    /// Sizes, outermost first (PyTorch order; for conv weights O, I, KH, KW).
    public let shape: [Int]
    /// Element strides, one per dimension.
    public let strides: [Int]
    /// Offset of element [0, …, 0] in the storage, in elements.
    public let storageOffset: Int
    let storage: ByteSlice

    /// Number of elements (product of the shape).
    public var count: Int { shape.reduce(1, *) }

    /// True when the elements are laid out densely in row-major order.
    public var isContiguous: Bool {
        var expected = 1
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] != 1 {
            if strides[d] != expected { return false }
            expected *= shape[d]
        }
        return true
    }

    /// Builds a tensor after checking that every element it addresses lies inside `storage`.
    init(name: String, dtype: DType, shape: [Int], strides: [Int]? = nil, storageOffset: Int = 0,
         storage: ByteSlice, path: String) throws {
        guard shape.allSatisfy({ $0 >= 0 }), let n = SafeMath.product(shape) else {
            throw CheckpointError.corrupt(path: path, reason: "tensor '\(name)': invalid shape \(shape)")
        }
        var st = strides ?? []
        if strides == nil {
            var acc = 1
            st = Array(repeating: 0, count: shape.count)
            for d in stride(from: shape.count - 1, through: 0, by: -1) { st[d] = acc; acc = acc &* max(shape[d], 1) }
        }
        guard st.count == shape.count else {
            throw CheckpointError.corrupt(path: path, reason: "tensor '\(name)': \(shape.count) sizes but \(st.count) strides")
        }
        guard storageOffset >= 0 else {
            throw CheckpointError.corrupt(path: path, reason: "tensor '\(name)': negative storage offset")
        }
        let capacity = storage.count / dtype.byteSize
        if n > 0 {
            var maxIndex = storageOffset
            for d in 0..<shape.count {
                guard st[d] >= 0, let span = SafeMath.mul(shape[d] - 1, st[d]), let m = SafeMath.add(maxIndex, span) else {
                    throw CheckpointError.corrupt(path: path, reason: "tensor '\(name)': invalid strides \(st)")
                }
                maxIndex = m
            }
            guard n <= capacity else {
                throw CheckpointError.corrupt(path: path,
                    reason: "tensor '\(name)' has \(n) elements but its storage holds \(capacity) (broadcast or overlapping views are refused)")
            }
            guard maxIndex < capacity else {
                throw CheckpointError.corrupt(path: path,
                    reason: "tensor '\(name)' (shape \(shape), offset \(storageOffset)) reaches element \(maxIndex) but its storage holds \(capacity)")
            }
        }
        self.name = name
        self.dtype = dtype
        self.shape = shape
        self.strides = st
        self.storageOffset = storageOffset
        self.storage = storage
    }

    /// An in-memory float32 tensor (row-major `values`, e.g. for tests or converted weights).
    /// Fails when `values.count` differs from the product of `shape`.
    public init(name: String, shape: [Int], values: [Float]) throws {
        guard let n = SafeMath.product(shape), n == values.count else {
            throw CheckpointError.shapeMismatch(key: name, expected: shape, actual: [values.count])
        }
        let bytes = values.withUnsafeBytes { Array($0) }
        try self.init(name: name, dtype: .float32, shape: shape, storage: ByteSlice(region: ByteRegion.copying(bytes)), path: "<memory>")
    }

    /// The same tensor under another key.
    func renamed(_ newName: String) -> CheckpointTensor {
        CheckpointTensor(unchecked: newName, dtype, shape, strides, storageOffset, storage)
    }

    private init(unchecked name: String, _ dtype: DType, _ shape: [Int], _ strides: [Int], _ off: Int, _ storage: ByteSlice) {
        self.name = name; self.dtype = dtype; self.shape = shape; self.strides = strides
        self.storageOffset = off; self.storage = storage
    }

    /// Calls `body` with the storage index of every element in row-major order.
    private func forEachIndex(_ body: (Int, Int) -> Void) {
        let n = count
        if n == 0 { return }
        if isContiguous {
            for i in 0..<n { body(i, storageOffset + i) }
            return
        }
        let r = shape.count
        var idx = Array(repeating: 0, count: r)
        var pos = storageOffset
        for i in 0..<n {
            body(i, pos)
            var d = r - 1
            while d >= 0 {
                idx[d] += 1
                pos += strides[d]
                if idx[d] < shape[d] { break }
                pos -= strides[d] * shape[d]
                idx[d] = 0
                d -= 1
            }
        }
    }

    /// Values as contiguous row-major Float (fp16/bf16 upcast exactly; float64 and integers converted), each
    /// multiplied by `scale` (as Float, in the same pass: the same bits as scaling the result afterwards).
    public func floats(scale: Float = 1) -> [Float] {
        let p = storage.pointer
        let n = count
        if dtype == .float32, isContiguous, n > 0 {
            // one pass over the file's bytes, no zero-fill first: each destination page is touched once
            return [Float](unsafeUninitializedCapacity: n) { o, done in
                let src = UnsafeRawPointer(p + storageOffset * 4)
                if scale == 1 {
                    UnsafeMutableRawPointer(o.baseAddress!).copyMemory(from: src, byteCount: n * 4)
                } else {
                    for i in 0..<n { o[i] = Float(bitPattern: src.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self).littleEndian) * scale }
                }
                done = n
            }
        }
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { o in
            switch dtype {
            case .float32: forEachIndex { i, s in o[i] = Float(bitPattern: p.loadUnaligned(fromByteOffset: s * 4, as: UInt32.self).littleEndian) }
            case .float16: forEachIndex { i, s in o[i] = halfToFloat(p.loadUnaligned(fromByteOffset: s * 2, as: UInt16.self).littleEndian) }
            case .bfloat16: forEachIndex { i, s in o[i] = Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: s * 2, as: UInt16.self).littleEndian) << 16) }
            case .float64: forEachIndex { i, s in o[i] = Float(Double(bitPattern: p.loadUnaligned(fromByteOffset: s * 8, as: UInt64.self).littleEndian)) }
            case .int64: forEachIndex { i, s in o[i] = Float(Int64(littleEndian: p.loadUnaligned(fromByteOffset: s * 8, as: Int64.self))) }
            case .int32: forEachIndex { i, s in o[i] = Float(Int32(littleEndian: p.loadUnaligned(fromByteOffset: s * 4, as: Int32.self))) }
            case .int16: forEachIndex { i, s in o[i] = Float(Int16(littleEndian: p.loadUnaligned(fromByteOffset: s * 2, as: Int16.self))) }
            case .int8: forEachIndex { i, s in o[i] = Float(p.load(fromByteOffset: s, as: Int8.self)) }
            case .uint8, .bool: forEachIndex { i, s in o[i] = Float(p.load(fromByteOffset: s, as: UInt8.self)) }
            }
            if scale != 1 { for i in o.indices { o[i] *= scale } }
        }
        return out
    }

    /// Values as contiguous row-major Double (exact for every dtype except int64 beyond 2^53).
    public func doubles() -> [Double] {
        if dtype == .float64 {
            let p = storage.pointer
            var out = [Double](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { o in
                forEachIndex { i, s in o[i] = Double(bitPattern: p.loadUnaligned(fromByteOffset: s * 8, as: UInt64.self).littleEndian) }
            }
            return out
        }
        if dtype == .int64 { return int64s().map(Double.init) }
        return floats().map(Double.init)
    }

    /// Values as contiguous row-major Int64 (integer and bool dtypes; floats are truncated).
    public func int64s() -> [Int64] {
        let p = storage.pointer
        switch dtype {
        case .int64:
            var out = [Int64](repeating: 0, count: count)
            out.withUnsafeMutableBufferPointer { o in
                forEachIndex { i, s in o[i] = Int64(littleEndian: p.loadUnaligned(fromByteOffset: s * 8, as: Int64.self)) }
            }
            return out
        default:
            return floats().map { $0.isFinite ? Int64(max(min($0, 9.2e18), -9.2e18)) : 0 }
        }
    }

    /// The raw little-endian bytes of the elements in row-major order (bit-exact, no conversion).
    public func rawBytes() -> [UInt8] {
        let es = dtype.byteSize
        var out = [UInt8](repeating: 0, count: count * es)
        let p = storage.pointer
        out.withUnsafeMutableBytes { o in
            if isContiguous {
                if count > 0 { o.baseAddress!.copyMemory(from: p + storageOffset * es, byteCount: count * es) }
                return
            }
            forEachIndex { i, s in (o.baseAddress! + i * es).copyMemory(from: p + s * es, byteCount: es) }
        }
        return out
    }
}

/// An ordered mapping from dotted keys to tensors, with a tracker of which keys a model consumed.
public struct StateDict: Sendable {
    /// Keys in file order.
    public private(set) var keys: [String]
    private var table: [String: CheckpointTensor]
    private let usage = UsageTracker()

    /// Builds a dictionary from tensors in order (a repeated key keeps the last tensor).
    public init(_ tensors: [CheckpointTensor]) {
        keys = []
        table = [:]
        for t in tensors {
            if table[t.name] == nil { keys.append(t.name) }
            table[t.name] = t
        }
    }

    /// Number of tensors.
    public var count: Int { keys.count }
    /// Tensors in key order.
    public var tensors: [CheckpointTensor] { keys.map { table[$0]! } }
    /// Total number of elements over all tensors.
    public var parameterCount: Int { table.values.reduce(0) { $0 + $1.count } }

    /// The tensor stored under `key`, if any (does not mark it used).
    public subscript(key: String) -> CheckpointTensor? { table[key] }

    /// The tensor under `key`, checked against `shape`; marks the key used.
    public func tensor(_ key: String, shape: [Int]) throws -> CheckpointTensor {
        guard let t = table[key] else { throw CheckpointError.missingKey(key) }
        guard t.shape == shape else { throw CheckpointError.shapeMismatch(key: key, expected: shape, actual: t.shape) }
        usage.mark(key)
        return t
    }

    /// The tensor under `key` with any shape; marks the key used.
    public func tensor(_ key: String) throws -> CheckpointTensor {
        guard let t = table[key] else { throw CheckpointError.missingKey(key) }
        usage.mark(key)
        return t
    }

    /// Float values of `key` (times `scale`) after checking its shape; marks the key used.
    public func floats(_ key: String, shape: [Int], scale: Float = 1) throws -> [Float] {
        try tensor(key, shape: shape).floats(scale: scale)
    }

    /// Marks keys as consumed without reading them (e.g. BatchNorm `num_batches_tracked`).
    public func markUsed(_ keys: [String]) {
        for k in keys where table[k] != nil { usage.mark(k) }
    }

    /// Keys not consumed so far, in file order.
    public var unusedKeys: [String] { let u = usage.snapshot(); return keys.filter { !u.contains($0) } }

    /// Throws `CheckpointError.unexpectedKeys` naming every key the model did not consume.
    public func verifyAllUsed() throws {
        let rest = unusedKeys
        if !rest.isEmpty { throw CheckpointError.unexpectedKeys(rest) }
    }

    /// Forgets which keys were consumed.
    public func resetUsage() { usage.reset() }

    /// A copy whose keys have `prefix` removed where present (a fresh usage tracker).
    func strippingPrefix(_ prefix: String) -> StateDict {
        StateDict(tensors.map { $0.name.hasPrefix(prefix) ? $0.renamed(String($0.name.dropFirst(prefix.count))) : $0 })
    }
}

final class UsageTracker: @unchecked Sendable {
    private let lock = NSLock()
    private var used = Set<String>()
    func mark(_ k: String) { lock.lock(); used.insert(k); lock.unlock() }
    func snapshot() -> Set<String> { lock.lock(); defer { lock.unlock() }; return used }
    func reset() { lock.lock(); used.removeAll(); lock.unlock() }
}
