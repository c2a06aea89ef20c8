// Helpers for the batch tests: temp folders, hand-built image blobs, and a byte-copying processor.

import Foundation
import Testing

@testable import Pipeline

/// A fresh temporary folder, removed by `remove()`.
struct TempFolder {
    let path: String

    init(_ label: String = #function) throws {
        let clean = label.filter { $0.isLetter || $0.isNumber }
        path = NSTemporaryDirectory() + "enhance-batch-\(clean)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func url(_ rel: String) -> String { rel.isEmpty ? path : path + "/" + rel }

    func write(_ rel: String, _ bytes: [UInt8]) throws {
        let full = url(rel)
        try FileManager.default.createDirectory(
            atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }

    func read(_ rel: String) -> [UInt8]? {
        FileManager.default.contents(atPath: url(rel)).map { [UInt8]($0) }
    }

    func exists(_ rel: String) -> Bool { FileManager.default.fileExists(atPath: url(rel)) }

    /// Every entry below `rel`, relative, sorted (including hidden names).
    func allFiles(_ rel: String = "") -> [String] {
        guard let e = FileManager.default.enumerator(atPath: url(rel)) else { return [] }
        var out: [String] = []
        while let next = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: url(rel) + "/" + next, isDirectory: &isDir), !isDir.boolValue {
                out.append(next)
            }
        }
        return out.sorted()
    }

    func remove() {
        // Restore permissions first so read-only test folders can be deleted.
        if let e = FileManager.default.enumerator(atPath: path) {
            while let next = e.nextObject() as? String { chmod(path + "/" + next, 0o755) }
        }
        try? FileManager.default.removeItem(atPath: path)
    }
}

// MARK: - Hand-built images

private let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
    return c
}

func crc32(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
}

func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)] }
func le32(_ v: UInt32) -> [UInt8] { be32(v).reversed() }

/// A valid RGB8 PNG of `width`×`height` whose IDAT is zlib with stored (uncompressed) deflate blocks.
func makePNG(width: Int, height: Int, seed: UInt8 = 0) -> [UInt8] {
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }
    var raw: [UInt8] = []
    for y in 0..<height {
        raw.append(0)  // filter: none
        for x in 0..<width { raw += [UInt8((x * 7 + Int(seed)) & 0xFF), UInt8((y * 13) & 0xFF), seed] }
    }
    var zlib: [UInt8] = [0x78, 0x01]
    var offset = 0
    repeat {
        let n = min(65535, raw.count - offset)
        let final: UInt8 = offset + n == raw.count ? 1 : 0
        zlib += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
        zlib += raw[offset..<offset + n]
        offset += n
    } while offset < raw.count
    var a: UInt32 = 1
    var b: UInt32 = 0
    for byte in raw {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }
    zlib += be32(b << 16 | a)
    let ihdr = be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0]
    return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", ihdr) + chunk("IDAT", zlib)
        + chunk("IEND", [])
}

/// A tiny JPEG-shaped blob: SOI, a JFIF APP0 segment and EOI (enough for content sniffing and the test processor).
func makeJPEGBlob(tag: UInt8 = 0) -> [UInt8] {
    [0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10] + Array("JFIF".utf8) + [0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, tag, 0x00]
        + [0xFF, 0xD9]
}

/// A 1×1 lossless WebP (RIFF/WEBP/VP8L) blob.
func makeWebPBlob() -> [UInt8] {
    let vp8l: [UInt8] = [0x2F, 0x00, 0x00, 0x00, 0x10, 0x07, 0x10, 0x11, 0x11, 0x88, 0x88, 0xFE, 0x07, 0x00]
    let payload = Array("WEBP".utf8) + Array("VP8L".utf8) + le32(13) + vp8l
    return Array("RIFF".utf8) + le32(UInt32(payload.count)) + payload
}

// MARK: - Test processor

struct CorruptImage: Error, CustomStringConvertible {
    let path: String
    let why: String
    var description: String { "corrupt image \(path): \(why)" }
}

/// Observes stage concurrency: in-flight images, concurrent computes, and loads that overlap a compute.
actor StageProbe {
    private(set) var inFlight = 0
    private(set) var maxInFlight = 0
    private(set) var computing = 0
    private(set) var maxComputing = 0
    private(set) var loadsDuringCompute = 0
    private(set) var storesDuringCompute = 0
    private(set) var computeOrder: [Int] = []

    func beginLoad() {
        inFlight += 1
        maxInFlight = max(maxInFlight, inFlight)
        if computing > 0 { loadsDuringCompute += 1 }
    }
    func beginCompute(_ position: Int) {
        computing += 1
        maxComputing = max(maxComputing, computing)
        computeOrder.append(position)
    }
    func endCompute() { computing -= 1 }
    func beginStore() { if computing > 0 { storesDuringCompute += 1 } }
    func endItem() { inFlight -= 1 }
}

/// Copies bytes through load → compute → store after validating the container; PNG size goes into the notes.
struct CopyProcessor: BatchProcessor {
    var computeDelay: Duration = .zero
    var loadDelay: Duration = .zero
    var storeDelay: Duration = .zero
    var probe: StageProbe? = nil
    var writeNothing = false

    func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> [UInt8] {
        await probe?.beginLoad()
        if loadDelay > .zero { try await Task.sleep(for: loadDelay) }
        guard let data = FileManager.default.contents(atPath: item.input) else {
            await probe?.endItem()
            throw CorruptImage(path: item.input, why: "unreadable")
        }
        let bytes = [UInt8](data)
        do {
            try validate(bytes, item: item, notes: &notes)
        } catch {
            await probe?.endItem()
            throw error
        }
        return bytes
    }

    private func validate(_ b: [UInt8], item: BatchItem, notes: inout BatchNotes) throws {
        switch item.format {
        case .png:
            // IHDR right after the signature, IEND at the end, CRCs intact.
            guard b.count >= 45, Array(b[12..<16]) == Array("IHDR".utf8),
                Array(b[(b.count - 8)..<(b.count - 4)]) == Array("IEND".utf8),
                be32(crc32(Array(b[12..<29]))) == Array(b[29..<33])
            else { throw CorruptImage(path: item.input, why: "bad PNG chunks") }
            notes.width = Int(b[16]) << 24 | Int(b[17]) << 16 | Int(b[18]) << 8 | Int(b[19])
            notes.height = Int(b[20]) << 24 | Int(b[21]) << 16 | Int(b[22]) << 8 | Int(b[23])
        case .jpeg:
            guard b.suffix(2).elementsEqual([0xFF, 0xD9]) else { throw CorruptImage(path: item.input, why: "no EOI") }
        case .webp:
            let size = Int(b[4]) | Int(b[5]) << 8 | Int(b[6]) << 16 | Int(b[7]) << 24
            guard size + 8 == b.count else { throw CorruptImage(path: item.input, why: "RIFF size") }
        }
    }

    func compute(_ loaded: [UInt8], item: BatchItem, notes: inout BatchNotes) async throws -> [UInt8] {
        await probe?.beginCompute(item.position)
        if computeDelay > .zero { try? await Task.sleep(for: computeDelay) }
        await probe?.endCompute()
        notes.timings["copy"] = 0.001
        notes.faces = 0
        return loaded
    }

    func store(_ computed: [UInt8], item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        await probe?.beginStore()
        if storeDelay > .zero { try? await Task.sleep(for: storeDelay) }
        do {
            if !writeNothing { try Data(computed).write(to: URL(fileURLWithPath: temporaryPath)) }
        } catch {
            await probe?.endItem()
            throw error
        }
        await probe?.endItem()
    }
}

/// Collects reporter output in memory.
final class TextSink: @unchecked Sendable {
    // SAFETY: guarded by lock.
    private let lock = NSLock()
    private var parts: [String] = []
    var text: String { lock.withLock { parts.joined() } }
    var write: @Sendable (String) -> Void { { [self] s in lock.withLock { parts.append(s) } } }
}

/// The standard test tree under `root/in`:
/// a.png, b.jpg, notes.txt, .hidden.png, sub/c.png, sub/deeper/d.webp, sub/e.jpeg, sub/corrupt.png, other/f.png,
/// other/g.bin (PNG bytes under an odd name).
func makeTree(_ t: TempFolder) throws {
    try t.write("in/a.png", makePNG(width: 3, height: 2, seed: 1))
    try t.write("in/b.jpg", makeJPEGBlob(tag: 2))
    try t.write("in/notes.txt", Array("not an image\n".utf8))
    try t.write("in/.hidden.png", makePNG(width: 1, height: 1))
    try t.write("in/sub/c.png", makePNG(width: 5, height: 4, seed: 3))
    try t.write("in/sub/deeper/d.webp", makeWebPBlob())
    try t.write("in/sub/e.jpeg", makeJPEGBlob(tag: 5))
    try t.write("in/sub/corrupt.png", [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 0xAB, count: 60))
    try t.write("in/other/f.png", makePNG(width: 2, height: 7, seed: 6))
    try t.write("in/other/g.bin", makePNG(width: 2, height: 2, seed: 7))
}

func options(out: String, recursive: Bool = true) -> BatchOptions {
    var o = BatchOptions()
    o.outputDirectory = out
    o.recursive = recursive
    o.progress = .quiet
    return o
}

func records(_ path: String) throws -> [String: [BatchRecord]] {
    Dictionary(grouping: try BatchRecord.readAll(from: path), by: { $0.input })
}

/// A reporter that prints nothing at all (keeps test logs clean).
let silent = QuietBatchProgress(sink: { _ in })
