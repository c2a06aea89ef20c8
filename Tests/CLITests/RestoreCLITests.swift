import Checkpoint
import Foundation
import ImageIO
import Models
import Testing
import TestSupport
import TensorCore

/// `enhance restore` and `enhance forward --arch gpen|retinaface|parsenet` end to end on tiny synthetic checkpoints
/// (safetensors written by `SyntheticCheckpoint`, read by the real loader).
@Suite(.serialized) struct RestoreCLITests {
    static let gpenConfig = GPENConfiguration(size: 32, styleDim: 16, nMLP: 2, channelMultiplier: 1, narrow: 0.03125)
    static let parseConfig = ParseNetConfiguration(baseCh: 4, parsingCh: 19, resDepth: 1, downSteps: 4, upSteps: 4,
                                                   normType: "bn", reluType: "LeakyReLU", chRange: [4, 16])

    /// A fresh folder with gpen/retina/parse weights and a 64×64 photo `in/photo.png`.
    static func workspace() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("restore-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("in"), withIntermediateDirectories: true)
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.gpen(gpenConfig))).write(to: dir.appendingPathComponent("gpen.safetensors"))
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.retinaFace(RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))))
            .write(to: dir.appendingPathComponent("retina.safetensors"))
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.parseNet(parseConfig))).write(to: dir.appendingPathComponent("parse.safetensors"))
        var px = [UInt8](repeating: 0, count: 64 * 64 * 3)
        for y in 0..<64 { for x in 0..<64 {
            px[(y * 64 + x) * 3] = UInt8(x * 4); px[(y * 64 + x) * 3 + 1] = UInt8(y * 4); px[(y * 64 + x) * 3 + 2] = UInt8(((x / 8 + y / 8) % 2) * 200)
        } }
        try ImageEncoder.write(Image.rgb8(width: 64, height: 64, pixels: px), to: dir.appendingPathComponent("in/photo.png"))
        return dir
    }

    static func env(_ dir: URL) -> [String: String] { ["ENHANCE_MODELS_DIR": dir.path, "ENHANCE_ASSETS": dir.path] }

    @Test func restoresPhotoWithParserAndSavesFaces() throws {
        let dir = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("out").path,
                                       "--gpen", dir.appendingPathComponent("gpen.safetensors").path,
                                       "--detector", dir.appendingPathComponent("retina.safetensors").path,
                                       "--parser", dir.appendingPathComponent("parse.safetensors").path,
                                       "--save-faces", "--json", "--threads", "2"], environment: Self.env(dir))
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("mask: parse"))
        let out = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("out/photo.png"))
        #expect(out.width == 64 && out.height == 64)
        let input = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("in/photo.png"))
        #expect(out.samples8 != input.samples8, "the face must have been pasted")
        // One face (2×2 grid of 256 px priors, all overlapping > 0.4): one crop, restoration and comparison.
        #expect(r.stdout.contains("\"faces\":1"), "stdout: \(r.stdout)")
        for sub in ["cropped_faces", "restored_faces", "cmp"] {
            let f = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("out/\(sub)/photo_00.png"))
            #expect(f.height == 32 && f.width == (sub == "cmp" ? 64 : 32), "\(sub)")
        }
        // Rerun resumes: the output exists, so the file is skipped.
        let again = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("out").path,
                                           "--gpen", dir.appendingPathComponent("gpen.safetensors").path,
                                           "--detector", dir.appendingPathComponent("retina.safetensors").path, "--json"], environment: Self.env(dir))
        #expect(again.status == 0)
        #expect(again.stdout.contains("\"skipped\""), "stdout: \(again.stdout)")
    }

    @Test func rectFallbackIsLoggedAndUpscaleWorks() throws {
        let dir = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in/photo.png").path, "-o", dir.appendingPathComponent("out").path,
                                       "--gpen", dir.appendingPathComponent("gpen.safetensors").path,
                                       "--detector", dir.appendingPathComponent("retina.safetensors").path,
                                       "--bg-upsampler", "bilinear", "--upscale", "2", "--alpha", "0.5", "--color-match"], environment: Self.env(dir))
        #expect(r.status == 0, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("rectangular mask"))
        let out = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("out/photo.png"))
        #expect(out.width == 128 && out.height == 128)
    }

    /// --bg-upsampler with a Real-ESRGAN file (the committed tiny RRDBNet ×2 fixture): background by the network,
    /// output twice the input size; a ×2 model asked for ×3 is resized by the upscaler (outscale 3).
    @Test func realESRGANBackground() throws {
        let dir = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = Repository.root
        let sr = root.appendingPathComponent("Tests/Fixtures/models/rrdbnet_x2/weights.pth")
        guard FileManager.default.fileExists(atPath: sr.path) else { Issue.record("missing fixture \(sr.path)"); return }
        for scale in [2, 3] {
            let out = dir.appendingPathComponent("sr\(scale)")
            let r = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in/photo.png").path, "-o", out.path,
                                           "--gpen", dir.appendingPathComponent("gpen.safetensors").path,
                                           "--detector", dir.appendingPathComponent("retina.safetensors").path, "--mask", "rect",
                                           "--bg-upsampler", sr.path, "--upscale", "\(scale)"], environment: Self.env(dir))
            #expect(r.status == 0, "stderr: \(r.stderr)")
            #expect(r.stderr.contains("background: "))
            let img = try ImageDecoder.decode(fileAt: out.appendingPathComponent("photo.png"))
            #expect(img.width == 64 * scale && img.height == 64 * scale)
        }
        let missing = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("m").path,
                                             "--gpen", dir.appendingPathComponent("gpen.safetensors").path, "--aligned",
                                             "--bg-upsampler", "NoSuchModel"], environment: Self.env(dir))
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("NoSuchModel"))
    }

    @Test func alignedModeAndErrors() throws {
        let dir = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gpen = dir.appendingPathComponent("gpen.safetensors").path
        let r = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("al").path,
                                       "--gpen", gpen, "--aligned"], environment: Self.env(dir))
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let out = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("al/photo.png"))
        #expect(out.width == 32 && out.height == 32)
        // No detector anywhere (run from the workspace, so the repository's .cache/assets is not searched): a clear
        // error, exit 2.
        let noDet = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("x").path,
                                           "--gpen", gpen], environment: Self.env(dir), directory: dir)
        #expect(noDet.status == 2)
        #expect(noDet.stderr.contains("--detector"))
        // Wrong --size names the real configuration.
        let wrong = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "--gpen", gpen, "--aligned", "--size", "512"],
                                          environment: Self.env(dir))
        #expect(wrong.status == 2)
        #expect(wrong.stderr.contains("GPEN-32"))
        // A detector file given as --gpen: strict loading says what it is.
        let swapped = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "--aligned",
                                             "--gpen", dir.appendingPathComponent("retina.safetensors").path], environment: Self.env(dir))
        #expect(swapped.status == 2)
        #expect(swapped.stderr.contains("RetinaFace"))
        let badAlpha = try EnhanceBinary.run(["restore", "x.png", "--gpen", gpen, "--alpha", "2"])
        #expect(badAlpha.status != 0)
        #expect(badAlpha.stderr.contains("--alpha"))
    }

    @Test func forwardRunsFaceNetworks() throws {
        let dir = try Self.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        var x = SyntheticCheckpoint.Random(seed: 9)
        let input = HostTensor(zeros: [1, 3, 32, 32])
        let data = (0..<input.count).map { _ in Float(x.uniform() * 2 - 1) }
        let inURL = dir.appendingPathComponent("x.npy")
        try NPYArray(shape: [1, 3, 32, 32], floats: data).write(to: inURL)
        for (arch, file, outs) in [("gpen", "gpen", ["output"]), ("retinaface", "retina", ["loc", "conf", "landms", "priors"]),
                                   ("parsenet", "parse", ["out_mask", "out_img"])] {
            let o = dir.appendingPathComponent("fw-\(arch)")
            let r = try EnhanceBinary.run(["forward", "--weights", dir.appendingPathComponent("\(file).safetensors").path, "--arch", arch,
                                           "--input", inURL.path, "--output", o.path, "--backend", "reference"])
            #expect(r.status == 0, "\(arch): \(r.stderr)")
            for n in outs { #expect(FileManager.default.fileExists(atPath: o.appendingPathComponent("\(n).npy").path), "\(arch) \(n)") }
        }
        // The CLI's GPEN output equals the library's forward on the same backend.
        let be = ReferenceBackend()
        let g = try GPENGenerator(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.gpen(Self.gpenConfig)), backend: be)
        let y = try be.download(g.forward(be.upload(HostTensor(shape: [1, 3, 32, 32], data: data))))
        #expect(try NPYArray(contentsOf: dir.appendingPathComponent("fw-gpen/output.npy")).floats() == y.data)
    }
}
