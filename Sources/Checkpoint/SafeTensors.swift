import Foundation

/// Reader for the safetensors format: validates the whole header before any tensor byte is used.
enum SafeTensorsReader {
    static let maxHeader = 100_000_000
    static let dtypes: [String: DType] = [
        "F32": .float32, "F16": .float16, "BF16": .bfloat16, "F64": .float64, "I64": .int64, "I32": .int32,
        "I16": .int16, "I8": .int8, "U8": .uint8, "BOOL": .bool,
    ]

    /// Parses `file`; returns tensors in offset order and the `__metadata__` strings.
    static func read(_ file: ByteSlice, path: String) throws -> ([CheckpointTensor], [String: String]) {
        func bad(_ r: String) -> CheckpointError { .corrupt(path: path, reason: "safetensors: \(r)") }
        guard file.count >= 8 else { throw bad("file shorter than the 8-byte header length") }
        let n = file.u64(0)
        guard n <= UInt64(maxHeader) else { throw bad("header length \(n) exceeds the 100 MB limit") }
        guard n <= UInt64(file.count - 8) else { throw bad("header length \(n) exceeds the file size \(file.count)") }
        let headerLen = Int(n)
        let json = Data(file.bytes(8, headerLen))
        let obj: Any
        do { obj = try JSONSerialization.jsonObject(with: json) } catch { throw bad("header is not valid JSON") }
        guard let dict = obj as? [String: Any] else { throw bad("header is not a JSON object") }
        let dataStart = 8 + headerLen
        let dataSize = file.count - dataStart
        var meta: [String: String] = [:]
        struct Entry { let name: String; let dtype: DType; let shape: [Int]; let begin: Int; let end: Int }
        var entries: [Entry] = []
        for (name, value) in dict {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw bad("__metadata__ is not an object") }
                for (k, v) in m { guard let s = v as? String else { throw bad("__metadata__['\(k)'] is not a string") }; meta[k] = s }
                continue
            }
            guard let info = value as? [String: Any] else { throw bad("entry '\(name)' is not an object") }
            guard let dts = info["dtype"] as? String else { throw bad("entry '\(name)' has no dtype") }
            guard let dt = dtypes[dts] else { throw CheckpointError.unsupported(path: path, reason: "safetensors dtype '\(dts)' of '\(name)'") }
            guard let shapeAny = info["shape"] as? [Any], let offs = info["data_offsets"] as? [Any], offs.count == 2 else {
                throw bad("entry '\(name)' lacks shape or data_offsets")
            }
            var shape: [Int] = []
            for s in shapeAny {
                guard let num = s as? NSNumber, let v = Int(exactly: num.doubleValue), v >= 0, v < (1 << 48) else {
                    throw bad("entry '\(name)' has an invalid dimension")
                }
                shape.append(v)
            }
            var o: [Int] = []
            for x in offs {
                guard let num = x as? NSNumber, let v = Int(exactly: num.doubleValue), v >= 0 else { throw bad("entry '\(name)' has invalid offsets") }
                o.append(v)
            }
            guard o[0] <= o[1], o[1] <= dataSize else {
                throw bad("entry '\(name)' data [\(o[0]), \(o[1])) lies outside the \(dataSize)-byte data section")
            }
            guard let count = SafeMath.product(shape), let bytes = SafeMath.mul(count, dt.byteSize), bytes == o[1] - o[0] else {
                throw bad("entry '\(name)': shape \(shape) × \(dts) does not match its \(o[1] - o[0]) bytes")
            }
            entries.append(Entry(name: name, dtype: dt, shape: shape, begin: o[0], end: o[1]))
        }
        entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
        var lastEnd = 0
        for e in entries {
            if e.begin < lastEnd, e.end > e.begin { throw bad("entry '\(e.name)' overlaps the previous tensor") }
            lastEnd = max(lastEnd, e.end)
        }
        let data = file.sub(dataStart, dataSize)
        let tensors = try entries.map {
            try CheckpointTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, storage: data.sub($0.begin, $0.end - $0.begin), path: path)
        }
        return (tensors, meta)
    }
}
