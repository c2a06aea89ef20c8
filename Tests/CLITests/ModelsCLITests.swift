import Crypto
import Foundation
import ImageIO
import Testing
import TestSupport

/// `enhance models list|fetch|verify` end to end against a server on 127.0.0.1 started here.
@Suite struct ModelsCLITests {
    static func hex(_ b: [UInt8]) -> String { SHA256.hash(data: Data(b)).map { String(format: "%02x", $0) }.joined() }

    @Test func listFetchVerify() throws {
        let server = try LoopbackHTTPServer()
        let weights = (0..<70_000).map { UInt8(truncatingIfNeeded: $0 * 13 + 5) }
        server.set("/files/custom.pth", weights)
        server.set("/mirror/ParseNet-latest.pth", Array(weights.prefix(1000)))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("models-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = ["ENHANCE_MODELS_DIR": dir.path, "ENHANCE_MODELS_MIRROR": ""]

        // list --json: every known model, none installed yet.
        var r = try EnhanceBinary.run(["models", "list", "--json"], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        var doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        #expect(doc["models_dir"] as? String == dir.path)
        var models = try #require(doc["models"] as? [[String: Any]])
        let names = models.compactMap { $0["name"] as? String }
        for n in ["RealESRGAN_x4plus", "GPEN-BFR-512", "GPEN-BFR-256", "RetinaFace-R50", "ParseNet-latest"] { #expect(names.contains(n), "\(n)") }
        #expect(models.allSatisfy { $0["installed"] as? Bool == false })
        let x4 = try #require(models.first { $0["name"] as? String == "RealESRGAN_x4plus" })
        #expect(x4["sha256"] as? String == "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1")
        #expect((x4["urls"] as? [String])?.first?.hasSuffix("RealESRGAN_x4plus.pth") == true)

        // fetch --url with the right sha256, then with a wrong one (nothing installed, exit 1).
        r = try EnhanceBinary.run(["models", "fetch", "--url", server.base + "/files/custom.pth", "--sha256", Self.hex(weights)], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("custom.pth")) == Data(weights))
        r = try EnhanceBinary.run(["models", "fetch", "--url", server.base + "/files/custom.pth", "--sha256", String(repeating: "0", count: 64),
                                   "--name", "other.pth"], environment: env)
        #expect(r.status == 1 && r.stderr.contains("other.pth") && r.stderr.contains("sha256"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("other.pth").path))
        // --url without --sha256 is a usage error.
        r = try EnhanceBinary.run(["models", "fetch", "--url", server.base + "/files/custom.pth"], environment: env)
        #expect(r.status == 64 && r.stderr.contains("--sha256"), "\(r.stderr)")

        // A known name through a mirror (the file name is appended); list then shows it installed.
        r = try EnhanceBinary.run(["models", "fetch", "ParseNet-latest", "--mirror", server.base + "/mirror"], environment: env)
        #expect(r.status == 0 && r.stdout.contains("ParseNet-latest") && r.stdout.contains("no published sha256"), "\(r.stdout) \(r.stderr)")
        #expect(server.seen.contains { $0.path == "/mirror/ParseNet-latest.pth" })
        r = try EnhanceBinary.run(["models", "list", "--json"], environment: env)
        doc = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        models = try #require(doc["models"] as? [[String: Any]])
        let parse = try #require(models.first { $0["name"] as? String == "ParseNet-latest" })
        #expect(parse["installed"] as? Bool == true && parse["bytes"] as? Int == 1000)
        #expect(parse["path"] as? String == dir.appendingPathComponent("ParseNet-latest.pth").path)

        // Unknown names exit 2 and list the known ones; a 404 through the mirror exits 1 naming the model.
        r = try EnhanceBinary.run(["models", "fetch", "NoSuchModel"], environment: env)
        #expect(r.status == 2 && r.stderr.contains("unknown model 'NoSuchModel'") && r.stderr.contains("GPEN-BFR-512"), "\(r.stderr)")
        r = try EnhanceBinary.run(["models", "fetch", "RetinaFace-R50", "--mirror", server.base + "/mirror"], environment: env)
        #expect(r.status == 1 && r.stderr.contains("RetinaFace-R50") && r.stderr.contains("HTTP 404"), "\(r.stderr)")

        // verify: a known checksum that does not match is a failure (exit 1).
        try Data("not the real weights".utf8).write(to: dir.appendingPathComponent("RealESRGAN_x4plus.pth"))
        r = try EnhanceBinary.run(["models", "verify"], environment: env)
        #expect(r.status == 1 && r.stdout.contains("RealESRGAN_x4plus: MISMATCH") && r.stdout.contains("ParseNet-latest: no published sha256"), "\(r.stdout)")
    }

    /// `upscale -n NAME` with the model missing names the exact fetch command; with `--download` it fetches the model
    /// (here from a loopback mirror serving a small SRVGGNetCompact checkpoint under the released file name) and runs.
    @Test func upscaleDownloadsAMissingModel() throws {
        let root = Repository.root
        let weights = try [UInt8](Data(contentsOf: root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth")))
        let server = try LoopbackHTTPServer()
        server.set("/mirror/realesr-animevideov3.pth", weights)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("models-dl-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let models = dir.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try ChainAndBatchCLITests.writePhoto(dir.appendingPathComponent("in.png"), size: 24, seed: 2)
        let env = ["ENHANCE_MODELS_DIR": models.path, "ENHANCE_ASSETS": models.path, "ENHANCE_MODELS_MIRROR": server.base + "/mirror"]
        let args = ["upscale", dir.appendingPathComponent("in.png").path, "-o", dir.appendingPathComponent("out").path,
                    "-n", "realesr-animevideov3", "--threads", "2"]
        var r = try EnhanceBinary.run(args, environment: env, directory: dir)
        #expect(r.status == 2 && r.stderr.contains("enhance models fetch realesr-animevideov3"), "\(r.stderr)")
        r = try EnhanceBinary.run(args + ["--download"], environment: env, directory: dir)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("fetching realesr-animevideov3"), "\(r.stderr)")
        #expect(try Data(contentsOf: models.appendingPathComponent("realesr-animevideov3.pth")) == Data(weights))
        let out = try ImageDecoder.decode(fileAt: dir.appendingPathComponent("out/in_out.png"))
        #expect(out.width == 96 && out.height == 96)
        // Installed now: a second --download run fetches nothing.
        let before = server.seen.count
        r = try EnhanceBinary.run(args + ["--download", "--overwrite"], environment: env, directory: dir)
        #expect(r.status == 0 && server.seen.count == before, "\(r.stderr)")
    }
}
