import Foundation

/// A NumPy `.npy` array (format 1.0/2.0/3.0, little-endian, C or Fortran order) held as raw bytes.
///
/// Used for parity data (`../shared/golden`, `Tests/Fixtures`) and by `enhance forward`.
public struct NPYArray: Sendable, Equatable {
    /// Element type, as NumPy's `descr` names it.
    public enum DType: String, Sendable, CaseIterable {
        case float32 = "<f4", float64 = "<f8", float16 = "<f2"
        case uint8 = "|u1", int8 = "|i1", uint16 = "<u2", int16 = "<i2"
        case int32 = "<i4", int64 = "<i8", uint32 = "<u4", bool = "|b1"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .uint8, .int8, .bool: 1
            case .float16, .uint16, .int16: 2
            case .float32, .int32, .uint32: 4
            case .float64, .int64: 8
            }
        }
    }

    public var dtype: DType
    public var shape: [Int]
    /// Element bytes in C (row-major) order, little-endian.
    public var bytes: [UInt8]

    /// Number of elements (the product of `shape`).
    public var count: Int { shape.reduce(1, *) }

    public init(dtype: DType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == shape.reduce(1, *) * dtype.size, "NPYArray: byte count does not match shape")
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    /// Float32 array from values in C order.
    public init(shape: [Int], floats: [Float]) {
        precondition(floats.count == shape.reduce(1, *), "NPYArray: value count does not match shape")
        self.init(dtype: .float32, shape: shape, bytes: floats.withUnsafeBytes { Array($0) })
    }

    /// UInt8 array in C order.
    public init(shape: [Int], uint8s: [UInt8]) {
        self.init(dtype: .uint8, shape: shape, bytes: uint8s)
    }

    /// UInt16 array in C order.
    public init(shape: [Int], uint16s: [UInt16]) {
        precondition(uint16s.count == shape.reduce(1, *), "NPYArray: value count does not match shape")
        self.init(dtype: .uint16, shape: shape, bytes: uint16s.withUnsafeBytes { Array($0) })
    }

    private func load<T>(_: T.Type, at i: Int) -> T {
        bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self) }
    }

    /// All elements converted to `Double`, in C order.
    public func doubles() -> [Double] {
        (0..<count).map { i -> Double in
            switch dtype {
            case .float32: Double(load(Float.self, at: i))
            case .float64: load(Double.self, at: i)
            case .float16: Double(Float(Float16(bitPattern: load(UInt16.self, at: i))))
            case .uint8: Double(bytes[i])
            case .int8: Double(Int8(bitPattern: bytes[i]))
            case .bool: bytes[i] != 0 ? 1 : 0
            case .uint16: Double(load(UInt16.self, at: i))
            case .int16: Double(load(Int16.self, at: i))
            case .int32: Double(load(Int32.self, at: i))
            case .uint32: Double(load(UInt32.self, at: i))
            case .int64: Double(load(Int64.self, at: i))
            }
        }
    }

    /// All elements converted to `Float`, in C order.
    public func floats() -> [Float] {
        if dtype == .float32 {
            return bytes.withUnsafeBytes { raw in (0..<count).map { raw.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) } }
        }
        return doubles().map { Float($0) }
    }

    /// Elements as `UInt8` (only for `uint8`/`bool` arrays).
    public func uint8s() throws -> [UInt8] {
        guard dtype == .uint8 || dtype == .bool else { throw NPYError.wrongType(expected: "uint8", actual: dtype.rawValue) }
        return bytes
    }

    /// Elements as `UInt16` (only for `uint16` arrays).
    public func uint16s() throws -> [UInt16] {
        guard dtype == .uint16 else { throw NPYError.wrongType(expected: "uint16", actual: dtype.rawValue) }
        return (0..<count).map { load(UInt16.self, at: $0) }
    }
}

/// Why a `.npy` file could not be read.
public enum NPYError: Error, CustomStringConvertible, Equatable {
    case notNPY(String)
    case unsupported(String)
    case truncated(String)
    case wrongType(expected: String, actual: String)

    public var description: String {
        switch self {
        case .notNPY(let m): "not a .npy file: \(m)"
        case .unsupported(let m): "unsupported .npy: \(m)"
        case .truncated(let m): "truncated .npy: \(m)"
        case .wrongType(let e, let a): "expected a \(e) array, found dtype \(a)"
        }
    }
}

extension NPYArray {
    /// Parses `.npy` bytes. Fortran-ordered arrays are transposed into C order.
    public init(data: Data) throws {
        let b = [UInt8](data)
        guard b.count >= 10, b[0] == 0x93, Array(b[1..<6]) == Array("NUMPY".utf8) else {
            throw NPYError.notNPY("missing \\x93NUMPY magic")
        }
        let major = b[6]
        let headerLength: Int
        let headerStart: Int
        switch major {
        case 1:
            headerLength = Int(b[8]) | Int(b[9]) << 8
            headerStart = 10
        case 2, 3:
            guard b.count >= 12 else { throw NPYError.truncated("header length") }
            headerLength = Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24
            headerStart = 12
        default:
            throw NPYError.unsupported("format version \(major)")
        }
        guard headerStart + headerLength <= b.count else { throw NPYError.truncated("header") }
        let header = String(decoding: b[headerStart..<(headerStart + headerLength)], as: UTF8.self)
        func field(_ key: String) throws -> String {
            guard let r = header.range(of: "'\(key)':") else { throw NPYError.notNPY("header lacks '\(key)'") }
            return String(header[r.upperBound...]).trimmingCharacters(in: .whitespaces)
        }
        let descrField = try field("descr")
        guard let q1 = descrField.firstIndex(of: "'"),
              let q2 = descrField[descrField.index(after: q1)...].firstIndex(of: "'") else {
            throw NPYError.notNPY("bad descr")
        }
        var descr = String(descrField[descrField.index(after: q1)..<q2])
        if descr == "<u1" || descr == "u1" { descr = "|u1" }
        if descr == "<i1" || descr == "i1" { descr = "|i1" }
        if descr == "<b1" || descr == "?" || descr == "|?" { descr = "|b1" }
        guard let dtype = DType(rawValue: descr) else { throw NPYError.unsupported("dtype \(descr)") }
        let fortran = try field("fortran_order").hasPrefix("True")
        let shapeField = try field("shape")
        guard let open = shapeField.firstIndex(of: "("), let close = shapeField.firstIndex(of: ")") else {
            throw NPYError.notNPY("bad shape")
        }
        let shape = try shapeField[shapeField.index(after: open)..<close].split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            .map { s -> Int in
                guard let v = Int(s), v >= 0 else { throw NPYError.notNPY("bad dimension \(s)") }
                return v
            }
        var count = 1
        for d in shape {
            let (p, o) = count.multipliedReportingOverflow(by: d)
            guard !o else { throw NPYError.notNPY("shape overflows") }
            count = p
        }
        let start = headerStart + headerLength
        let (need, o) = count.multipliedReportingOverflow(by: dtype.size)
        guard !o, b.count - start >= need else {
            throw NPYError.truncated("expected \(need) data bytes, found \(b.count - start)")
        }
        var body = Array(b[start..<(start + need)])
        if fortran && shape.count > 1 {
            body = NPYArray.fortranToC(body, shape: shape, size: dtype.size)
        }
        self.init(dtype: dtype, shape: shape, bytes: body)
    }

    /// Reads a `.npy` file.
    public init(contentsOf url: URL) throws {
        try self.init(data: try Data(contentsOf: url))
    }

    /// The `.npy` (format 1.0) encoding of this array.
    public func encoded() -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '\(dtype.rawValue)', 'fortran_order': False, 'shape': (\(dims)), }"
        let unpadded = 10 + header.utf8.count + 1
        header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
        var out = Data([0x93] + Array("NUMPY".utf8) + [1, 0])
        let n = header.utf8.count
        out.append(contentsOf: [UInt8(n & 0xFF), UInt8(n >> 8)])
        out.append(contentsOf: Array(header.utf8))
        out.append(contentsOf: bytes)
        return out
    }

    /// Writes the array as a `.npy` file (atomically).
    public func write(to url: URL) throws {
        try encoded().write(to: url, options: .atomic)
    }

    private static func fortranToC(_ src: [UInt8], shape: [Int], size: Int) -> [UInt8] {
        let n = shape.reduce(1, *)
        var dst = [UInt8](repeating: 0, count: src.count)
        var fStrides = [Int](repeating: 1, count: shape.count)
        for i in 1..<shape.count { fStrides[i] = fStrides[i - 1] * shape[i - 1] }
        var index = [Int](repeating: 0, count: shape.count)
        for c in 0..<n {
            var f = 0
            for k in 0..<shape.count { f += index[k] * fStrides[k] }
            for j in 0..<size { dst[c * size + j] = src[f * size + j] }
            var k = shape.count - 1
            while k >= 0 {
                index[k] += 1
                if index[k] < shape[k] { break }
                index[k] = 0
                k -= 1
            }
        }
        return dst
    }
}
