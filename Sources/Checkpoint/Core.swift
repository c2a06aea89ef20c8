import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Errors raised while reading a checkpoint; each message names the file or key and the problem.
public enum CheckpointError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or read.
    case io(path: String, reason: String)
    /// The file is not in any format this module reads.
    case unknownFormat(path: String, reason: String)
    /// The file is in a known format but its bytes are inconsistent (truncated, out of bounds, bad structure).
    case corrupt(path: String, reason: String)
    /// A pickle referenced a global outside the allow-list (e.g. "posix.system"); nothing was executed.
    case forbiddenGlobal(String, path: String)
    /// A pickle used an opcode outside the allow-list.
    case forbiddenOpcode(UInt8, path: String)
    /// A feature of a known format that this reader does not support.
    case unsupported(path: String, reason: String)
    /// A key a model needs is absent.
    case missingKey(String)
    /// Keys present in the checkpoint that the model did not consume.
    case unexpectedKeys([String])
    /// A tensor exists but its shape differs from what the model expects.
    case shapeMismatch(key: String, expected: [Int], actual: [Int])
    /// A tensor's dtype cannot be used where it was asked for.
    case dtypeMismatch(key: String, expected: String, actual: DType)

    public var description: String {
        switch self {
        case let .io(p, r): return "\(p): cannot read: \(r)"
        case let .unknownFormat(p, r): return "\(p): not a recognised checkpoint: \(r)"
        case let .corrupt(p, r): return "\(p): corrupt checkpoint: \(r)"
        case let .forbiddenGlobal(g, p): return "\(p): refused: the pickle refers to the forbidden global '\(g)' (nothing was executed)"
        case let .forbiddenOpcode(o, p): return "\(p): refused: the pickle uses the forbidden opcode 0x\(String(o, radix: 16))"
        case let .unsupported(p, r): return "\(p): unsupported: \(r)"
        case let .missingKey(k): return "missing key '\(k)'"
        case let .unexpectedKeys(ks):
            let shown = ks.prefix(10).joined(separator: ", ")
            return "unexpected keys (\(ks.count)): \(shown)\(ks.count > 10 ? ", …" : "")"
        case let .shapeMismatch(k, e, a): return "shape mismatch for '\(k)': expected \(e), checkpoint has \(a)"
        case let .dtypeMismatch(k, e, a): return "dtype mismatch for '\(k)': expected \(e), checkpoint has \(a.rawValue)"
        }
    }
}

/// Element types a checkpoint tensor may hold.
public enum DType: String, Sendable, Codable, CaseIterable {
    case float32, float16, bfloat16, float64, int64, int32, int16, int8, uint8, bool

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .float64, .int64: return 8
        case .float32, .int32: return 4
        case .float16, .bfloat16, .int16: return 2
        case .int8, .uint8, .bool: return 1
        }
    }

    /// True for the floating-point types.
    public var isFloatingPoint: Bool { [.float32, .float16, .bfloat16, .float64].contains(self) }
}

/// A read-only memory region that keeps its owner (a memory map or a heap buffer) alive.
final class ByteRegion: @unchecked Sendable {
    let base: UnsafeRawPointer
    let count: Int
    private let release: (@Sendable () -> Void)?

    init(base: UnsafeRawPointer, count: Int, release: (@Sendable () -> Void)?) {
        self.base = base
        self.count = count
        self.release = release
    }

    deinit { release?() }

    /// Copies `bytes` onto the heap.
    static func copying(_ bytes: [UInt8]) -> ByteRegion {
        let n = max(bytes.count, 1)
        let p = UnsafeMutableRawPointer.allocate(byteCount: n, alignment: 16)
        bytes.withUnsafeBytes { src in
            if let s = src.baseAddress, !bytes.isEmpty { p.copyMemory(from: s, byteCount: bytes.count) }
        }
        let addr = UInt(bitPattern: p)
        return ByteRegion(base: UnsafeRawPointer(p), count: bytes.count) {
            UnsafeMutableRawPointer(bitPattern: addr)?.deallocate()
        }
    }

    /// Memory-maps a whole file read-only (an empty file gives an empty region).
    static func map(path: String) throws -> ByteRegion {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw CheckpointError.io(path: path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw CheckpointError.io(path: path, reason: String(cString: strerror(errno))) }
        if (st.st_mode & S_IFMT) == S_IFDIR { throw CheckpointError.io(path: path, reason: "is a directory") }
        let size = Int(st.st_size)
        if size == 0 { return ByteRegion.copying([]) }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw CheckpointError.io(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        let addr = UInt(bitPattern: m)
        return ByteRegion(base: UnsafeRawPointer(m), count: size) {
            if let p = UnsafeMutableRawPointer(bitPattern: addr) { munmap(p, size) }
        }
    }

    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// A view of part of a `ByteRegion`.
struct ByteSlice: @unchecked Sendable {
    let region: ByteRegion
    let offset: Int
    let count: Int

    init(region: ByteRegion, offset: Int = 0, count: Int? = nil) {
        self.region = region
        self.offset = offset
        self.count = count ?? (region.count - offset)
    }

    var pointer: UnsafeRawPointer { region.base + offset }
    var buffer: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: count) }

    func sub(_ off: Int, _ n: Int) -> ByteSlice { ByteSlice(region: region, offset: offset + off, count: n) }

    func u8(_ at: Int) -> UInt8 { pointer.load(fromByteOffset: at, as: UInt8.self) }
    func u16(_ at: Int) -> UInt16 { UInt16(u8(at)) | UInt16(u8(at + 1)) << 8 }
    func u32(_ at: Int) -> UInt32 { UInt32(u16(at)) | UInt32(u16(at + 2)) << 16 }
    func u64(_ at: Int) -> UInt64 { UInt64(u32(at)) | UInt64(u32(at + 4)) << 32 }
    func bytes(_ at: Int, _ n: Int) -> [UInt8] { Array(UnsafeRawBufferPointer(start: pointer + at, count: n)) }
}

/// Checked arithmetic helpers for sizes read from untrusted files.
enum SafeMath {
    static func mul(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        return o ? nil : r
    }
    static func add(_ a: Int, _ b: Int) -> Int? {
        let (r, o) = a.addingReportingOverflow(b)
        return o ? nil : r
    }
    static func product(_ xs: [Int]) -> Int? {
        var p = 1
        for x in xs {
            guard x >= 0, let q = mul(p, x) else { return nil }
            p = q
        }
        return p
    }
}

@inline(__always) func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1F)
    let man = UInt32(h & 0x3FF)
    if exp == 0 {
        if man == 0 { return Float(bitPattern: sign) }
        // subnormal: value = man * 2^-24
        let v = Float(man) * Float(bitPattern: 0x3380_0000)
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (man << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (man << 13))
}
