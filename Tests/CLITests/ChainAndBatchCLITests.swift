import Checkpoint
import Foundation
import ImageIO
import Models
import Testing
import TestSupport

/// `enhance chain` and the batch guarantees (resume after SIGKILL, atomic outputs) through the built binary.
@Suite(.serialized) struct ChainAndBatchCLITests {
    static let root = Repository.root
    static let srvggX2 = root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2/weights.pth").path

    static func workspace(_ name: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("in"), withIntermediateDirectories: true)
        return dir
    }

    static func writePhoto(_ url: URL, size: Int, seed: Int) throws {
        var px = [UInt8](repeating: 0, count: size * size * 3)
        for y in 0..<size { for x in 0..<size {
            let i = (y * size + x) * 3
            px[i] = UInt8((x * 7 + seed * 13) % 256); px[i + 1] = UInt8((y * 5 + seed) % 256)
            px[i + 2] = UInt8((((x / 4) + (y / 4) + seed) % 2) * 180)
        } }
        try ImageEncoder.write(Image.rgb8(width: size, height: size, pixels: px), to: url)
    }

    static func files(_ dir: URL) -> [String] {
        (FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? []).sorted()
    }

    /// The chain's output equals `enhance upscale` followed by `enhance restore` on its result, byte for byte,
    /// and its record carries the timings of both stages.
    @Test func chainEqualsUpscaleThenRestore() throws {
        let dir = try Self.workspace("chain")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePhoto(dir.appendingPathComponent("in/photo.png"), size: 32, seed: 3)
        let gpen = dir.appendingPathComponent("gpen.safetensors").path
        let retina = dir.appendingPathComponent("retina.safetensors").path
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.gpen(RestoreCLITests.gpenConfig))).write(to: URL(fileURLWithPath: gpen))
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.retinaFace(RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))))
            .write(to: URL(fileURLWithPath: retina))
        let common = ["--threads", "2", "--mask", "rect"]

        let chain = try EnhanceBinary.run(["chain", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("chain").path,
                                           "-m", Self.srvggX2, "--gpen", gpen, "--detector", retina, "--json"] + common)
        #expect(chain.status == 0, "stderr: \(chain.stderr)")
        let up = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("up").path,
                                        "-m", Self.srvggX2, "--suffix", "", "--threads", "2"])
        #expect(up.status == 0, "stderr: \(up.stderr)")
        let rs = try EnhanceBinary.run(["restore", dir.appendingPathComponent("up/photo.png").path, "-o", dir.appendingPathComponent("seq").path,
                                        "--gpen", gpen, "--detector", retina] + common)
        #expect(rs.status == 0, "stderr: \(rs.stderr)")

        let a = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("chain/photo.png"))
        let b = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("seq/photo.png"))
        #expect(a.width == 64 && a.height == 64)
        #expect(a.samples8 == b.samples8)
        let record = try String(contentsOf: dir.appendingPathComponent("chain/results.jsonl"), encoding: .utf8)
        for stage in ["\"upscale\"", "\"detect\"", "\"decode\"", "\"encode\""] {
            #expect(record.contains(stage), "record lacks \(stage): \(record)")
        }
        // The engine's own memory figures travel in the record (what `enhance bench` reports as the tensor peak).
        let line = try #require(record.split(separator: "\n").first)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        let memory = try #require(json["memory"] as? [String: Int], "record lacks memory: \(record)")
        let peak = try #require(memory["tensor_peak_bytes"]), weights = try #require(memory["weights_bytes"])
        #expect(peak > 64 * 64 * 3 * 4 && weights > 0, "\(memory)")
    }

    @Test func chainNamesAMissingGPENFile() throws {
        let dir = try Self.workspace("chain-missing")
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePhoto(dir.appendingPathComponent("in/photo.png"), size: 16, seed: 1)
        let r = try EnhanceBinary.run(["chain", dir.appendingPathComponent("in").path, "-o", dir.appendingPathComponent("o").path,
                                       "-m", Self.srvggX2, "--gpen", "/nonexistent/GPEN.pth"],
                                      environment: ["ENHANCE_MODELS_DIR": dir.path, "ENHANCE_ASSETS": dir.path])
        #expect(r.status == 2)
        #expect(r.stderr.contains("/nonexistent/GPEN.pth"))
    }

    /// SIGKILL in the middle of `enhance upscale` over a folder, then a rerun: every output complete and equal to
    /// an uninterrupted run's, the record lists every file, and no temporary file is left.
    @Test func killedUpscaleRunResumesCompletely() async throws {
        let dir = try Self.workspace("kill")
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 10
        for i in 0..<n {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent("in/d\(i % 2)"), withIntermediateDirectories: true)
            try Self.writePhoto(dir.appendingPathComponent("in/d\(i % 2)/p\(i).png"), size: 64, seed: i)
        }
        // RRDBNet on the plain-Swift reference backend, one thread: ~0.5 s an image, slow enough to kill mid-run.
        let rrdbX2 = Self.root.appendingPathComponent("Tests/Fixtures/models/rrdbnet_x2/weights.pth").path
        let args = ["upscale", dir.appendingPathComponent("in").path, "--recursive", "-m", rrdbX2,
                    "--backend", "reference", "--threads", "1", "--quiet"]
        let out = dir.appendingPathComponent("out")

        let child = Process()
        child.executableURL = EnhanceBinary.url
        child.arguments = args + ["-o", out.path]
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        let deadline = ContinuousClock.now + .seconds(120)
        var lines = 0
        while ContinuousClock.now < deadline && child.isRunning {
            lines = ((try? String(contentsOf: out.appendingPathComponent("results.jsonl"), encoding: .utf8)) ?? "")
                .split(separator: "\n").count
            if lines >= 2 { break }
            // A blocking sleep: this test keeps its thread. `Task.sleep` gave the thread back to a pool the tests
            // beside this one kept busy, resumed seconds late, and the child had finished all ten images by then.
            usleep(20_000)
        }
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        try #require(lines >= 2 && lines < n, "the run must be killed in the middle (records: \(lines))")

        // Whatever the kill left: no final output is partial.
        for f in Self.files(out) where f.hasSuffix(".png") && !(f as NSString).lastPathComponent.hasPrefix(".") {
            #expect(throws: Never.self) { _ = try ImageDecoder.decode(fileAt: out.appendingPathComponent(f)) }
        }
        let rerun = try EnhanceBinary.run(args + ["-o", out.path])
        #expect(rerun.status == 0, "stderr: \(rerun.stderr)")
        let clean = try EnhanceBinary.run(args + ["-o", dir.appendingPathComponent("clean").path])
        #expect(clean.status == 0)

        let produced = Self.files(out)
        #expect(!produced.contains { $0.contains(".enhance-tmp-") }, "\(produced)")
        for i in 0..<n {
            let rel = "d\(i % 2)/p\(i)_out.png"
            let a = try ImageDecoder.decode(fileAt: out.appendingPathComponent(rel))
            let b = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("clean/\(rel)"))
            #expect(a.width == 128 && a.samples8 == b.samples8, "\(rel)")
        }
        let records = try BatchRecordLines.read(out.appendingPathComponent("results.jsonl"))
        let last = Dictionary(records.map { ($0.input, $0.status) }, uniquingKeysWith: { _, b in b })
        #expect(last.count == n)
        #expect(last.values.allSatisfy { $0 == "ok" || $0 == "skipped" })
        #expect(records.filter { $0.status == "skipped" }.count >= 2, "the rerun must resume, not redo")
    }
}

/// Minimal reader of `results.jsonl` lines (input and status).
enum BatchRecordLines {
    struct Line { var input: String; var status: String }
    static func read(_ url: URL) throws -> [Line] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { l in
            let o = try #require(try JSONSerialization.jsonObject(with: Data(l.utf8)) as? [String: Any])
            return Line(input: o["input"] as? String ?? "", status: o["status"] as? String ?? "")
        }
    }
}
