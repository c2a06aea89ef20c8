import Foundation

/// Writer for the safetensors format — the one the synthetic checkpoints, the bench's stand-in weights and the tests
/// all use: an 8-byte little-endian header length, a JSON header (tensors in the order given, `__metadata__` first
/// when there is any) padded with spaces to a multiple of 8, then the tensors' bytes in the same order.
public enum SafeTensorsWriter {
    /// One tensor's header entry: name, safetensors dtype ("F32", "I64", …), shape and size of its data.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var dtype: String
        public var shape: [Int]
        public var byteCount: Int
        public init(name: String, dtype: String, shape: [Int], byteCount: Int) {
            self.name = name; self.dtype = dtype; self.shape = shape; self.byteCount = byteCount
        }
    }

    /// The length prefix and header for `entries`; the data follows in the same order.
    public static func header(_ entries: [Entry], metadata: [String: String] = [:]) -> [UInt8] {
        var parts: [String] = []
        if !metadata.isEmpty {
            parts.append("\"__metadata__\":{" + metadata.keys.sorted().map { "\(quote($0)):\(quote(metadata[$0]!))" }.joined(separator: ",") + "}")
        }
        var offset = 0
        for e in entries {
            parts.append("\(quote(e.name)):{\"dtype\":\"\(e.dtype)\",\"shape\":[\(e.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + e.byteCount)]}")
            offset += e.byteCount
        }
        var json = Array(("{" + parts.joined(separator: ",") + "}").utf8)
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        out.reserveCapacity(8 + json.count)
        var n = UInt64(json.count)
        for _ in 0..<8 { out.append(UInt8(n & 0xFF)); n >>= 8 }
        return out + json
    }

    /// A whole file in memory: float32 tensors in the order given.
    public static func bytes(_ tensors: [(String, [Int], [Float])], metadata: [String: String] = [:]) -> [UInt8] {
        var out = header(tensors.map { Entry(name: $0.0, dtype: "F32", shape: $0.1, byteCount: $0.2.count * 4) }, metadata: metadata)
        out.reserveCapacity(out.count + tensors.reduce(0) { $0 + $1.2.count * 4 })
        for t in tensors { out += float32Bytes(t.2) }
        return out
    }

    /// Little-endian float32 bytes.
    public static func float32Bytes(_ values: [Float]) -> [UInt8] {
        values.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Array($0) }
    }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var r = "\""
        for ch in s.unicodeScalars {
            switch ch {
            case "\"": r += "\\\""
            case "\\": r += "\\\\"
            case "\n": r += "\\n"
            case "\t": r += "\\t"
            default:
                if ch.value < 0x20 { r += String(format: "\\u%04x", ch.value) } else { r.unicodeScalars.append(ch) }
            }
        }
        return r + "\""
    }
}
