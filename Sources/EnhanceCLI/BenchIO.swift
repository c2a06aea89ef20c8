import ArgumentParser
import Foundation
import Pipeline
import ImageIO

/// `enhance bench io`: decode and encode throughput of each format on a ~12-megapixel photo.
struct BenchIO: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "Decode/encode throughput per format"
    )

    @Option(help: "Photo to tile up to the benchmark size (default: $ENHANCE_ASSETS or .cache/assets, astronaut.png; synthesised if absent).")
    var input: String?

    @Option(help: "Benchmark image width in pixels.")
    var width: Int = 4000

    @Option(help: "Benchmark image height in pixels.")
    var height: Int = 3000

    @Option(help: "Timed runs per measurement; the fastest is reported.")
    var repeats: Int = 3

    func validate() throws {
        guard (16...16383).contains(width), (16...16383).contains(height) else {
            throw ValidationError("--width and --height must be within 16…16383 (WebP's limit)")
        }
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
    }

    func run() throws {
        let (photo, source) = try makePhoto()
        let rawMB = Double(photo.width * photo.height * 3) / 1_000_000
        print("image: \(photo.width)×\(photo.height) RGB 8-bit (\(String(format: "%.1f", rawMB)) MB raw) from \(source); best of \(repeats)")
        print("MB/s counts raw RGB bytes (width × height × 3); ms is wall time, cpu is process CPU time")
        print("(cpu is steadier than wall on a busy machine; WebP may use 2 threads).")
        print("format            size(KB)  encode ms (cpu)  encode MB/s  decode ms (cpu)  decode MB/s")
        let cases: [(String, ImageFormat, EncodeOptions)] = [
            ("PNG (level 1)", .png, EncodeOptions(pngCompressionLevel: 1)),
            ("PNG (level 6)", .png, EncodeOptions(pngCompressionLevel: 6)),
            ("JPEG q95 4:4:4", .jpeg, EncodeOptions(jpegQuality: 95)),
            ("WebP lossy q90", .webp, EncodeOptions(webpQuality: 90)),
            ("WebP lossless", .webp, EncodeOptions(webpLossless: true)),
        ]
        for (name, format, options) in cases {
            var encoded = Data()
            let enc = try best { encoded = try ImageEncoder.encode(photo, as: format, options: options).data }
            var decoded: Image? = nil
            let dec = try best { decoded = try ImageDecoder.decode(data: encoded) }
            guard let decoded, decoded.width == photo.width, decoded.height == photo.height else {
                throw ValidationError("\(name): decoded image has the wrong size")
            }
            print(name.padding(toLength: 16, withPad: " ", startingAt: 0)
                  + String(format: "  %8.0f  %7.0f (%5.0f)  %11.1f  %7.0f (%5.0f)  %11.1f",
                           Double(encoded.count) / 1000, enc.wall * 1000, enc.cpu * 1000, rawMB / enc.wall,
                           dec.wall * 1000, dec.cpu * 1000, rawMB / dec.wall))
        }
    }

    /// Fastest wall time of `repeats` runs and the CPU time of that run, in seconds.
    private func best(_ body: () throws -> Void) throws -> (wall: Double, cpu: Double) {
        var t = (wall: Double.infinity, cpu: Double.infinity)
        for _ in 0..<repeats {
            let c0 = Self.cpuSeconds()
            let start = ContinuousClock.now
            try body()
            let wall = secondsSince(start)
            if wall < t.wall { t = (wall, Self.cpuSeconds() - c0) }
        }
        return t
    }

    /// CPU time used by this process so far, in seconds.
    private static func cpuSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// The source photo resized (bilinear) to width × height with mild deterministic noise (±4), so the
    /// codecs see photo-like content at camera size rather than repeated tiles; synthetic if absent.
    private func makePhoto() throws -> (Image, String) {
        let path = input ?? ((ProcessInfo.processInfo.environment["ENHANCE_ASSETS"] ?? ".cache/assets") + "/astronaut.png")
        var tile: Image
        var source: String
        if FileManager.default.fileExists(atPath: path) {
            tile = try ImageDecoder.decode(fileAt: URL(fileURLWithPath: path))
            source = path + " (bilinear resize + noise ±4)"
        } else {
            tile = try synthetic(512, 512)
            source = "a synthetic pattern (\(path) not found)"
        }
        tile = tile.withBitDepth(8).converted(to: .rgb)
        let src = tile.samples8, tw = tile.width, th = tile.height
        var out = [UInt8](repeating: 0, count: width * height * 3)
        var seed: UInt32 = 2024
        for y in 0..<height {
            let fy = max(0, min(Double(th - 1), (Double(y) + 0.5) * Double(th) / Double(height) - 0.5))
            let y0 = Int(fy), y1 = min(th - 1, y0 + 1), wy = fy - Double(y0)
            for x in 0..<width {
                let fx = max(0, min(Double(tw - 1), (Double(x) + 0.5) * Double(tw) / Double(width) - 0.5))
                let x0 = Int(fx), x1 = min(tw - 1, x0 + 1), wx = fx - Double(x0)
                for k in 0..<3 {
                    let a = Double(src[(y0 * tw + x0) * 3 + k]), b = Double(src[(y0 * tw + x1) * 3 + k])
                    let c = Double(src[(y1 * tw + x0) * 3 + k]), d = Double(src[(y1 * tw + x1) * 3 + k])
                    let v = (a * (1 - wx) + b * wx) * (1 - wy) + (c * (1 - wx) + d * wx) * wy
                    seed = seed &* 1_664_525 &+ 1_013_904_223
                    let n = Double(seed >> 29) - 3.5
                    out[(y * width + x) * 3 + k] = UInt8(max(0, min(255, (v + n).rounded())))
                }
            }
        }
        return (try Image(width: width, height: height, layout: .rgb, storage: .u8(out)), source)
    }

    /// Smooth gradients plus mild noise, so no codec sees a trivially compressible image.
    private func synthetic(_ w: Int, _ h: Int) throws -> Image {
        var a = [UInt8](repeating: 0, count: w * h * 3)
        var seed: UInt32 = 12345
        for y in 0..<h {
            for x in 0..<w {
                seed = seed &* 1_664_525 &+ 1_013_904_223
                let n = Double(seed >> 24) / 255 * 24 - 12
                let fx = Double(x) / Double(w), fy = Double(y) / Double(h)
                let v = [128 + 100 * sin(9 * fx + 3 * fy), 128 + 100 * cos(7 * fy - 2 * fx), 128 + 90 * sin(13 * fx * fy)]
                for k in 0..<3 { a[(y * w + x) * 3 + k] = UInt8(max(0, min(255, (v[k] + n).rounded()))) }
            }
        }
        return try Image(width: w, height: h, layout: .rgb, storage: .u8(a))
    }
}
