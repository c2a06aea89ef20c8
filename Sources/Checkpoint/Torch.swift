import Foundation

/// Readers for the two `torch.save` formats.
enum TorchReader {
    static let legacyMagic: [UInt8] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    /// Reads a zip-format checkpoint (`archive/data.pkl` + `archive/data/<key>`), storages memory-mapped.
    static func readZip(_ file: ByteSlice, path: String) throws -> (PValue, PArena) {
        let arena = PArena()
        let zip = try ZipArchive(file: file, path: path)
        guard let pklName = zip.order.first(where: { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") }),
              let pkl = zip.entries[pklName] else {
            throw CheckpointError.unknownFormat(path: path, reason: "zip archive without data.pkl (not a torch.save file)")
        }
        let prefix = String(pklName.dropLast("data.pkl".count))
        if let bo = zip.entries[prefix + "byteorder"] {
            let s = try zip.data(bo)
            let text = String(decoding: s.buffer, as: UTF8.self)
            if text != "little" {
                throw CheckpointError.unsupported(path: path, reason: "byte order '\(text)' (only little-endian)")
            }
        }
        let pklData = try zip.data(pkl)
        var cache: [String: ByteSlice] = [:]
        var unpickler = Unpickler(data: pklData.buffer, path: path, arena: arena) { pid in
            let ref = try Unpickler.storageRef(pid, path: path)
            if cache[ref.key] == nil {
                guard let e = zip.entries[prefix + "data/" + ref.key] else {
                    throw CheckpointError.corrupt(path: path, reason: "storage '\(ref.key)' has no zip entry")
                }
                cache[ref.key] = try zip.data(e)
            }
            let bytes = cache[ref.key]!
            guard let need = SafeMath.mul(ref.numel, ref.dtype.byteSize), need <= bytes.count else {
                throw CheckpointError.corrupt(path: path,
                    reason: "storage '\(ref.key)' declares \(ref.numel) \(ref.dtype.rawValue) elements but its entry has \(bytes.count) bytes")
            }
            return .storage(ref)
        }
        let root = try unpickler.load()
        return (try bind(root, path: path) { ref in cache[ref.key]!.sub(0, ref.numel * ref.dtype.byteSize) }, arena)
    }

    /// Reads a legacy (pre-1.6) checkpoint: magic, protocol, sys-info, main pickle, key list, raw storages.
    static func readLegacy(_ file: ByteSlice, path: String) throws -> (PValue, PArena) {
        let buf = file.buffer
        let arena = PArena()
        func noStorage(_: [PValue]) throws -> PValue { throw CheckpointError.corrupt(path: path, reason: "unexpected persistent id in header") }
        var u = Unpickler(data: buf, path: path, arena: arena, persistentLoad: noStorage)
        guard case let .bytes(magic) = try u.load(), magic == legacyMagic else {
            throw CheckpointError.unknownFormat(path: path, reason: "pickle without the torch legacy magic number")
        }
        u = Unpickler(data: buf, start: u.pos, path: path, arena: arena, persistentLoad: noStorage)
        guard let proto = try u.load().asInt, proto == 1001 else {
            throw CheckpointError.unsupported(path: path, reason: "legacy protocol version is not 1001")
        }
        u = Unpickler(data: buf, start: u.pos, path: path, arena: arena, persistentLoad: noStorage)
        if case let .dict(info) = try u.load() {
            for (k, v) in info.items where k.asString == "little_endian" {
                if case let .bool(le) = v, !le { throw CheckpointError.unsupported(path: path, reason: "big-endian legacy file") }
            }
        }
        var refs: [String: StorageRef] = [:]
        var main = Unpickler(data: buf, start: u.pos, path: path, arena: arena) { pid in
            let ref = try Unpickler.storageRef(pid, path: path)
            if let old = refs[ref.key], old.dtype != ref.dtype {
                throw CheckpointError.corrupt(path: path, reason: "storage '\(ref.key)' used with two dtypes")
            }
            if refs[ref.key] == nil { refs[ref.key] = ref }
            return .storage(ref)
        }
        let root = try main.load()
        var keysPickle = Unpickler(data: buf, start: main.pos, path: path, arena: arena, persistentLoad: noStorage)
        let keysValue = try keysPickle.load()
        guard case let .list(keyList) = keysValue else {
            throw CheckpointError.corrupt(path: path, reason: "legacy storage key list missing")
        }
        var pos = keysPickle.pos
        var slices: [String: ByteSlice] = [:]
        for kv in keyList.items {
            guard let key = kv.asString ?? kv.asInt.map(String.init) else {
                throw CheckpointError.corrupt(path: path, reason: "legacy storage key is not a string")
            }
            guard let ref = refs[key] else {
                throw CheckpointError.corrupt(path: path, reason: "legacy storage '\(key)' is never referenced (unknown element size)")
            }
            guard pos + 8 <= file.count else {
                throw CheckpointError.corrupt(path: path, reason: "legacy storage '\(key)': truncated before its size field")
            }
            let n = file.u64(pos)
            pos += 8
            let left = file.count - pos
            guard n <= UInt64(left / ref.dtype.byteSize) else {
                throw CheckpointError.corrupt(path: path,
                    reason: "legacy storage '\(key)' claims \(n) \(ref.dtype.rawValue) elements but only \(left) bytes remain")
            }
            let bytes = Int(n) * ref.dtype.byteSize
            slices[key] = file.sub(pos, bytes)
            pos += bytes
        }
        return (try bind(root, path: path) { ref in
            guard let s = slices[ref.key] else {
                throw CheckpointError.corrupt(path: path, reason: "legacy storage '\(ref.key)' missing from the key list")
            }
            if let v = ref.view {
                guard let vs = slices[v.key] ?? Optional(s), v.offset >= 0, v.size >= 0,
                      let end = SafeMath.mul(v.offset + v.size, ref.dtype.byteSize), end <= vs.count else {
                    throw CheckpointError.corrupt(path: path, reason: "legacy view of '\(ref.key)' out of bounds")
                }
                return vs.sub(v.offset * ref.dtype.byteSize, v.size * ref.dtype.byteSize)
            }
            return s
        }, arena)
    }

    /// Replaces tensor specs with bound tensors (names filled in later). Returns a tree of dicts with `.tensor` leaves
    /// converted into `BoundTensor` markers via `PBound`.
    static func bind(_ root: PValue, path: String, storage: (StorageRef) throws -> ByteSlice) throws -> PValue {
        // Validation happens when CheckpointTensor is built in `collectTensors`; here we only resolve storages.
        var seen = Set<ObjectIdentifier>()
        func walk(_ v: PValue, depth: Int) throws -> PValue {
            guard depth < 64 else { throw CheckpointError.corrupt(path: path, reason: "pickle nesting too deep") }
            switch v {
            case let .dict(d):
                guard seen.insert(ObjectIdentifier(d)).inserted else { return v }
                d.items = try d.items.map { ($0.0, try walk($0.1, depth: depth + 1)) }
                return v
            case let .tensor(spec):
                let bytes = try storage(spec.storage)
                return .bound(spec, bytes)
            default:
                return v
            }
        }
        return try walk(root, depth: 0)
    }
}
