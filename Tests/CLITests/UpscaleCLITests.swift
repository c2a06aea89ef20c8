import Foundation
import Testing
import TestSupport
import ImageIO
import TensorCore

/// `enhance upscale` and `enhance forward` end to end through the built binary.
@Suite("enhance upscale / forward CLI")
struct UpscaleCLITests {
    static let root = Repository.root
    static let fixtures = root.appendingPathComponent("Tests/Fixtures/models")

    func tempDir(_ name: String) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-cli-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: d)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    func writePNG(_ url: URL, width: Int, height: Int) throws {
        var s = [UInt8](repeating: 0, count: width * height * 3)
        for i in 0..<s.count { s[i] = UInt8((i * 37 + (i / 3) * 11) % 256) }
        try ImageEncoder.write(Image.rgb8(width: width, height: height, pixels: s), to: url)
    }

    @Test func upscalesAPNGAndNamesABadFile() throws {
        let dir = try tempDir("upscale")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inputs = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: inputs, withIntermediateDirectories: true)
        try writePNG(inputs.appendingPathComponent("a.png"), width: 21, height: 17)
        // PNG signature, then garbage: sniffed as an image, fails to decode
        try Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array("garbage after the signature".utf8))
            .write(to: inputs.appendingPathComponent("broken.png"))
        let out = dir.appendingPathComponent("out")
        let r = try EnhanceBinary.run(["upscale", inputs.path, "-o", out.path, "-m", Self.fixtures.appendingPathComponent("rrdbnet_x2/weights.pth").path,
                                       "-s", "3", "--tile", "8", "--backend", "dnnl", "--threads", "2", "--verbose"])
        #expect(r.status == 1)  // one file failed
        // 21×17 → 22×18 after the ×2 model's mod-pad: 3×3 tiles of 8, said per file and in the record
        #expect((r.stdout + r.stderr).contains("a_out.png (") && (r.stdout + r.stderr).contains("; tiles 8×8, 9 passes)"), "\(r.stderr)")
        let made = try ImageDecoder.decode(fileAt: out.appendingPathComponent("a_out.png"))
        #expect(made.width == 63 && made.height == 51)
        let record = try String(contentsOf: out.appendingPathComponent("results.jsonl"), encoding: .utf8)
        #expect(record.contains("broken.png"))
        #expect(record.contains(#""tiles":"8×8, 9 passes""#))
        #expect(r.stderr.contains("broken.png") || r.stdout.contains("broken.png"))

        // the good file alone succeeds; a second run skips it (resume)
        let r2 = try EnhanceBinary.run(["upscale", inputs.appendingPathComponent("a.png").path, "-o", out.path, "--suffix", "",
                                        "--model-path", Self.fixtures.appendingPathComponent("srvgg_prelu_x4/weights.pth").path, "--backend", "reference"])
        #expect(r2.status == 0)
        let b = try ImageDecoder.decode(fileAt: out.appendingPathComponent("a.png"))
        #expect(b.width == 84 && b.height == 68)
    }

    @Test func missingModelNamesTheDownload() throws {
        let dir = try tempDir("missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        try writePNG(dir.appendingPathComponent("x.png"), width: 8, height: 8)
        let r = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("x.png").path, "-o", dir.path, "-n", "RealESRGAN_x2plus",
                                       "--models-dir", dir.path], environment: ["ENHANCE_ASSETS": dir.path])
        #expect(r.status != 0)
        #expect(r.stderr.contains("https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.1/RealESRGAN_x2plus.pth"))
        #expect(r.stderr.contains("49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb"))
        let bad = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("x.png").path, "-n", "NoSuchModel"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("NoSuchModel"))
    }

    @Test func forwardWritesOutputNPY() throws {
        let dir = try tempDir("forward")
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = Self.fixtures.appendingPathComponent("srvgg_prelu_x4")
        let r = try EnhanceBinary.run(["forward", "--weights", c.appendingPathComponent("weights.pth").path,
                                       "--input", c.appendingPathComponent("input_0.npy").path, "--output", dir.path, "--backend", "dnnl"])
        #expect(r.status == 0, "\(r.stderr)")
        let got = try NPYArray(contentsOf: dir.appendingPathComponent("output.npy"))
        let want = try NPYArray(contentsOf: c.appendingPathComponent("output_0.npy"))
        #expect(got.shape == want.shape)
        let g = got.floats(), w = want.floats()
        let maxAbs = zip(g, w).map { abs($0 - $1) }.max() ?? .infinity
        #expect(maxAbs < 1e-4)

        let gpen = try EnhanceBinary.run(["forward", "--weights", c.appendingPathComponent("weights.pth").path, "--arch", "gpen",
                                          "--input", c.appendingPathComponent("input_0.npy").path, "--output", dir.path])
        #expect(gpen.status != 0)
        let missing = try EnhanceBinary.run(["forward", "--weights", c.appendingPathComponent("weights.pth").path,
                                             "--input", dir.appendingPathComponent("nope.npy").path, "--output", dir.path])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("nope.npy"))
    }
}
