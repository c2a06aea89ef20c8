import Foundation
import TestSupport
@testable import ImageIO

/// Deterministic xorshift generator so test images are reproducible.
struct TestRNG {
    var state: UInt64
    init(_ seed: UInt64) { state = seed &* 0x9E3779B97F4A7C15 | 1 }
    mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }
}

enum Fixtures {
    /// Random samples: lossless codecs must return them exactly.
    static func noise(_ w: Int, _ h: Int, _ layout: ChannelLayout, depth: Int, seed: UInt64 = 1) -> Image {
        var rng = TestRNG(seed)
        let n = w * h * layout.channels
        let s: PixelStorage = depth == 8
            ? .u8((0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) })
            : .u16((0..<n).map { _ in UInt16(truncatingIfNeeded: rng.next()) })
        return try! Image(width: w, height: h, layout: layout, storage: s)
    }

    /// A smooth photo-like pattern (gradients and soft circles), for lossy codecs.
    static func smooth(_ w: Int, _ h: Int, _ layout: ChannelLayout) -> Image {
        var a = [UInt8](repeating: 0, count: w * h * layout.channels)
        for y in 0..<h {
            for x in 0..<w {
                let fx = Double(x) / Double(w), fy = Double(y) / Double(h)
                let r = 0.5 + 0.5 * sin(6 * fx + 2 * fy)
                let g = 0.5 + 0.5 * cos(4 * fy - 3 * fx)
                let b = 0.5 + 0.5 * sin(9 * (fx - 0.5) * (fy - 0.3))
                let al = min(1, max(0, 1.2 - 1.4 * hypot(fx - 0.5, fy - 0.5)))
                var v = [r, g, b]
                if layout.isGray { v = [0.299 * r + 0.587 * g + 0.114 * b] }
                if layout.hasAlpha { v.append(al) }
                for k in 0..<layout.channels { a[(y * w + x) * layout.channels + k] = UInt8((v[k] * 255).rounded()) }
            }
        }
        return try! Image(width: w, height: h, layout: layout, storage: .u8(a))
    }

    /// PSNR in dB between two equally sized 8-bit sample arrays.
    static func psnr(_ a: [UInt8], _ b: [UInt8]) -> Double { PSNR.of(a, b) }

    static var repoRoot: URL { Repository.root }
    static var assets: URL { Repository.assets }

    /// A fresh empty directory under the system temporary directory.
    static func tempDir() -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("imageio-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }
}

/// Builds PNG files byte by byte (stored zlib blocks, CRC-32), independent of libpng, so decoder tests
/// do not depend on our own encoder.
enum HandPNG {
    static let crcTable: [UInt32] = (0..<256).map { n -> UInt32 in
        var c = UInt32(n)
        for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB88320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static func crc(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFFFFFF
        for b in bytes { c = crcTable[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
        return c ^ 0xFFFFFFFF
    }

    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }

    static func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc(body))
    }

    /// zlib stream made of stored (uncompressed) deflate blocks.
    static func zlibStored(_ raw: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x78, 0x01]
        var i = 0
        repeat {
            let n = min(65535, raw.count - i)
            let final: UInt8 = i + n == raw.count ? 1 : 0
            out += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)]
            out += raw[i..<(i + n)]
            i += n
        } while i < raw.count
        var a: UInt32 = 1, b: UInt32 = 0
        for x in raw { a = (a + UInt32(x)) % 65521; b = (b + a) % 65521 }
        return out + be32(b << 16 | a)
    }

    /// A PNG with the given IHDR fields and rows (each row's bytes without the filter byte; for an
    /// interlaced file, the rows of the non-empty Adam7 passes in order).
    static func make(width: Int, height: Int, bitDepth: UInt8, colorType: UInt8, rows: [[UInt8]],
                     extra: [[UInt8]] = [], interlaced: Bool = false) -> [UInt8] {
        var out: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        out += chunk("IHDR", be32(UInt32(width)) + be32(UInt32(height)) + [bitDepth, colorType, 0, 0, interlaced ? 1 : 0])
        for e in extra { out += e }
        if !rows.isEmpty { out += chunk("IDAT", zlibStored(rows.flatMap { [0] + $0 })) }
        out += chunk("IEND", [])
        return out
    }
}
