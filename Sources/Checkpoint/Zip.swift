import Foundation

/// A zip archive entry located inside a mapped file.
struct ZipEntry {
    let name: String
    let method: UInt16
    let compressedSize: Int
    let uncompressedSize: Int
    let dataOffset: Int
}

/// Minimal zip reader (stored and deflated entries, zip64), every offset checked against the file size.
struct ZipArchive {
    let file: ByteSlice
    let path: String
    private(set) var entries: [String: ZipEntry] = [:]
    private(set) var order: [String] = []

    /// Largest inflated entry accepted (pickles and deflated storages), 8 GiB.
    static let maxInflated = 8 << 30

    init(file: ByteSlice, path: String) throws {
        self.file = file
        self.path = path
        let n = file.count
        func bad(_ r: String) -> CheckpointError { .corrupt(path: path, reason: "zip: \(r)") }
        guard n >= 22 else { throw bad("file too short for an end-of-central-directory record") }
        var eocd = -1
        let lowest = max(0, n - 22 - 65535)
        var i = n - 22
        while i >= lowest {
            if file.u32(i) == 0x0605_4b50 { eocd = i; break }
            i -= 1
        }
        guard eocd >= 0 else { throw bad("no end-of-central-directory record (truncated?)") }
        var count = Int(file.u16(eocd + 10))
        var cdSize = Int(file.u32(eocd + 12))
        var cdOffset = Int(file.u32(eocd + 16))
        // zip64 locator just before the EOCD
        if eocd >= 20, file.u32(eocd - 20) == 0x0706_4b50 {
            let rec64 = file.u64(eocd - 20 + 8)
            guard n >= 56, rec64 <= UInt64(n - 56), file.u32(Int(rec64)) == 0x0606_4b50 else { throw bad("bad zip64 end record") }
            let r = Int(rec64)
            let c64 = file.u64(r + 32), s64 = file.u64(r + 40), o64 = file.u64(r + 48)
            guard c64 < UInt64(n), s64 <= UInt64(n), o64 <= UInt64(n) else { throw bad("zip64 sizes past the end of the file") }
            count = Int(c64); cdSize = Int(s64); cdOffset = Int(o64)
        }
        guard cdOffset <= n, cdSize <= n - cdOffset else {
            throw bad("central directory (offset \(cdOffset), size \(cdSize)) lies past the end of the \(n)-byte file")
        }
        var p = cdOffset
        let end = cdOffset + cdSize
        for _ in 0..<count {
            guard p + 46 <= end, file.u32(p) == 0x0201_4b50 else { throw bad("bad central directory entry at \(p)") }
            let method = file.u16(p + 10)
            var csize = UInt64(file.u32(p + 20))
            var usize = UInt64(file.u32(p + 24))
            let nameLen = Int(file.u16(p + 28)), extraLen = Int(file.u16(p + 30)), commentLen = Int(file.u16(p + 32))
            var local = UInt64(file.u32(p + 42))
            guard p + 46 + nameLen + extraLen + commentLen <= end else { throw bad("central directory entry overruns") }
            let name = String(decoding: file.bytes(p + 46, nameLen), as: UTF8.self)
            // zip64 extra field
            var e = p + 46 + nameLen
            let eEnd = e + extraLen
            while e + 4 <= eEnd {
                let id = file.u16(e), sz = Int(file.u16(e + 2))
                guard e + 4 + sz <= eEnd else { break }
                if id == 0x0001 {
                    var q = e + 4
                    if usize == 0xFFFF_FFFF, q + 8 <= e + 4 + sz { usize = file.u64(q); q += 8 }
                    if csize == 0xFFFF_FFFF, q + 8 <= e + 4 + sz { csize = file.u64(q); q += 8 }
                    if local == 0xFFFF_FFFF, q + 8 <= e + 4 + sz { local = file.u64(q); q += 8 }
                }
                e += 4 + sz
            }
            guard n >= 30, local <= UInt64(n - 30), csize <= UInt64(n), usize <= UInt64(Int.max / 2) else {
                throw bad("entry '\(name)' points past the end of the file")
            }
            let lo = Int(local)
            guard file.u32(lo) == 0x0403_4b50 else { throw bad("entry '\(name)': bad local header") }
            let dataOff = lo + 30 + Int(file.u16(lo + 26)) + Int(file.u16(lo + 28))
            guard dataOff <= n, Int(csize) <= n - dataOff else {
                throw bad("entry '\(name)' (\(csize) bytes at \(dataOff)) lies past the end of the \(n)-byte file (truncated?)")
            }
            guard method == 0 || method == 8 else {
                throw CheckpointError.unsupported(path: path, reason: "zip entry '\(name)' uses compression method \(method)")
            }
            if method == 0, csize != usize { throw bad("stored entry '\(name)' has different sizes") }
            if entries[name] == nil { order.append(name) }
            entries[name] = ZipEntry(name: name, method: method, compressedSize: Int(csize),
                                     uncompressedSize: Int(usize), dataOffset: dataOff)
            p += 46 + nameLen + extraLen + commentLen
        }
    }

    /// The bytes of an entry: a view into the map when stored, an inflated heap copy when deflated.
    func data(_ entry: ZipEntry) throws -> ByteSlice {
        let raw = file.sub(entry.dataOffset, entry.compressedSize)
        if entry.method == 0 { return raw }
        guard entry.uncompressedSize <= ZipArchive.maxInflated else {
            throw CheckpointError.corrupt(path: path, reason: "zip entry '\(entry.name)' claims \(entry.uncompressedSize) bytes")
        }
        let out = try Inflate.decompress(raw.buffer, expectedSize: entry.uncompressedSize, path: path)
        guard out.count == entry.uncompressedSize else {
            throw CheckpointError.corrupt(path: path, reason: "zip entry '\(entry.name)' inflated to \(out.count) bytes, expected \(entry.uncompressedSize)")
        }
        return ByteSlice(region: ByteRegion.copying(out))
    }
}

/// A small raw-DEFLATE (RFC 1951) decoder with bounds checks on every read and a cap on the output.
enum Inflate {
    struct Failure: Error {}

    private struct Huffman {
        var counts = [UInt16](repeating: 0, count: 16)
        var symbols: [UInt16]
        init(lengths: [UInt8]) throws {
            symbols = [UInt16](repeating: 0, count: lengths.count)
            for l in lengths { counts[Int(l)] += 1 }
            counts[0] = 0
            var left = 1
            for len in 1..<16 {
                left <<= 1
                left -= Int(counts[len])
                if left < 0 { throw Failure() }
            }
            var offs = [Int](repeating: 0, count: 16)
            for len in 1..<15 { offs[len + 1] = offs[len] + Int(counts[len]) }
            for (sym, l) in lengths.enumerated() where l != 0 {
                symbols[offs[Int(l)]] = UInt16(sym)
                offs[Int(l)] += 1
            }
        }
    }

    private struct Reader {
        let src: UnsafeRawBufferPointer
        var pos = 0
        var bitBuf: UInt32 = 0
        var bitCnt = 0
        mutating func bits(_ need: Int) throws -> Int {
            var val = bitBuf
            while bitCnt < need {
                guard pos < src.count else { throw Failure() }
                val |= UInt32(src[pos]) << UInt32(bitCnt)
                pos += 1
                bitCnt += 8
            }
            bitBuf = val >> UInt32(need)
            bitCnt -= need
            return Int(val & ((1 << UInt32(need)) - 1))
        }
        mutating func decode(_ h: Huffman) throws -> Int {
            var code = 0, first = 0, index = 0
            for len in 1..<16 {
                code |= try bits(1)
                let count = Int(h.counts[len])
                if code - count < first { return Int(h.symbols[index + (code - first)]) }
                index += count
                first += count
                first <<= 1
                code <<= 1
            }
            throw Failure()
        }
    }

    private static let lbase: [Int] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lext: [Int] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let dbase: [Int] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let dext: [Int] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13]

    /// Decompresses `src`; fails (typed error) on malformed data or output beyond `expectedSize`.
    static func decompress(_ src: UnsafeRawBufferPointer, expectedSize: Int, path: String) throws -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(min(expectedSize, 1 << 26))
        var r = Reader(src: src)
        func corrupt() -> CheckpointError { .corrupt(path: path, reason: "zip: invalid deflate data") }
        do {
            var last = 0
            repeat {
                last = try r.bits(1)
                let type = try r.bits(2)
                switch type {
                case 0:
                    r.bitBuf = 0; r.bitCnt = 0
                    guard r.pos + 4 <= src.count else { throw Failure() }
                    let len = Int(src[r.pos]) | Int(src[r.pos + 1]) << 8
                    let nlen = Int(src[r.pos + 2]) | Int(src[r.pos + 3]) << 8
                    guard len == (~nlen & 0xFFFF) else { throw Failure() }
                    r.pos += 4
                    guard r.pos + len <= src.count, out.count + len <= expectedSize else { throw Failure() }
                    out.append(contentsOf: UnsafeRawBufferPointer(rebasing: src[r.pos..<(r.pos + len)]))
                    r.pos += len
                case 1, 2:
                    let lit: Huffman, dist: Huffman
                    if type == 1 {
                        var l = [UInt8](repeating: 8, count: 288)
                        for i in 144..<256 { l[i] = 9 }
                        for i in 256..<280 { l[i] = 7 }
                        lit = try Huffman(lengths: l)
                        dist = try Huffman(lengths: [UInt8](repeating: 5, count: 30))
                    } else {
                        let nlen = try r.bits(5) + 257, ndist = try r.bits(5) + 1, ncode = try r.bits(4) + 4
                        guard nlen <= 286, ndist <= 30 else { throw Failure() }
                        let order = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]
                        var cl = [UInt8](repeating: 0, count: 19)
                        for i in 0..<ncode { cl[order[i]] = UInt8(try r.bits(3)) }
                        let ch = try Huffman(lengths: cl)
                        var lengths = [UInt8]()
                        while lengths.count < nlen + ndist {
                            let sym = try r.decode(ch)
                            if sym < 16 { lengths.append(UInt8(sym)); continue }
                            var rep = 0, val: UInt8 = 0
                            if sym == 16 {
                                guard let prev = lengths.last else { throw Failure() }
                                val = prev; rep = 3 + (try r.bits(2))
                            } else if sym == 17 { rep = 3 + (try r.bits(3)) } else { rep = 11 + (try r.bits(7)) }
                            guard lengths.count + rep <= nlen + ndist else { throw Failure() }
                            lengths.append(contentsOf: repeatElement(val, count: rep))
                        }
                        lit = try Huffman(lengths: Array(lengths[0..<nlen]))
                        dist = try Huffman(lengths: Array(lengths[nlen...]))
                    }
                    while true {
                        let sym = try r.decode(lit)
                        if sym < 256 {
                            guard out.count < expectedSize else { throw Failure() }
                            out.append(UInt8(sym))
                        } else if sym == 256 {
                            break
                        } else {
                            let li = sym - 257
                            guard li < 29 else { throw Failure() }
                            let len = lbase[li] + (try r.bits(lext[li]))
                            let ds = try r.decode(dist)
                            guard ds < 30 else { throw Failure() }
                            let d = dbase[ds] + (try r.bits(dext[ds]))
                            guard d <= out.count, out.count + len <= expectedSize else { throw Failure() }
                            let start = out.count - d
                            for k in 0..<len { out.append(out[start + k]) }
                        }
                    }
                default:
                    throw Failure()
                }
            } while last == 0
        } catch is Failure {
            throw corrupt()
        }
        return out
    }
}
