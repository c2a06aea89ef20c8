import AsyncHTTPClient
import EnhanceServer
import Foundation
import Testing
import TestSupport
import ImageIO

/// `enhance serve` over real HTTP: results equal the CLI's byte for byte, every error has its status and JSON body,
/// admission keeps memory under the cap, SIGTERM lets a request finish.
@Suite(.serialized) struct ServeTests {
    static let anime = "realesr-animevideov3"

    static func configuration(_ ws: ServeWorkspace) -> ServerConfiguration {
        var c = ServerConfiguration()
        c.modelDirectories = ws.searchPath
        c.engine.threads = 2
        c.maxMemory = 2 << 30
        return c
    }

    static var animeInstalled: Bool {
        FileManager.default.fileExists(atPath: Repository.assets.appendingPathComponent("realesr-animevideov3-x4.param").path)
    }

    @Test func upscaleEqualsTheCLIByteForByte() async throws {
        try #require(Self.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let s = try await InProcessServer(Self.configuration(ws))
        let png = [UInt8](try Data(contentsOf: ws.photo))
        let r = try await HTTP.send(s.base + "/v1/upscale?model=\(Self.anime)", method: "POST", body: png, contentType: "image/png")
        #expect(r.status == 200, "\(r.text)")
        #expect(r.headers["content-type"] == "image/png")
        let cli = try ws.cliOutput("upscale", ws.photo, ["-n", Self.anime], ext: "png")
        #expect(r.body == cli, "HTTP and CLI outputs differ (\(r.body.count) vs \(cli.count) bytes)")
        // the per-stage times and the memory figures
        let timing = try #require(r.headers["server-timing"])
        for stage in ["decode", "upscale", "encode", "total"] { #expect(timing.contains("\(stage);dur="), "\(timing)") }
        let peak = try #require(Int(r.headers["x-enhance-peak-bytes"] ?? ""))
        let estimate = try #require(Int(r.headers["x-enhance-estimate-bytes"] ?? ""))
        #expect(peak > 0 && estimate >= peak, "estimate \(estimate) < measured peak \(peak)")
        #expect(r.headers["x-enhance-model"] == Self.anime)

        // multipart/form-data gives the same bytes
        let m = try await HTTP.multipart(s.base + "/v1/upscale?model=\(Self.anime)", field: "image", file: png)
        #expect(m.status == 200 && m.body == cli)

        // JPEG in, WebP out at a quality, with an outscale: the CLI's -s/--ext/--quality
        let jpg = [UInt8](try Data(contentsOf: ws.photoJPEG))
        let w = try await HTTP.send(s.base + "/v1/upscale?model=\(Self.anime)&outscale=2.5&format=webp&quality=80", method: "POST",
                                    body: jpg, contentType: "application/octet-stream")
        #expect(w.status == 200 && w.headers["content-type"] == "image/webp", "\(w.text)")
        let cliW = try ws.cliOutput("upscale", ws.photoJPEG, ["-n", Self.anime, "-s", "2.5", "--ext", "webp", "--quality", "80"], ext: "webp")
        #expect(w.body == cliW)
        await s.stop()
    }

    @Test func restoreAndChainEqualTheCLI() async throws {
        try #require(Self.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let s = try await InProcessServer(Self.configuration(ws))
        let png = [UInt8](try Data(contentsOf: ws.photo))
        let models = ["--gpen", "gpen-tiny", "--detector", "retina-tiny", "--parser", "parse-tiny"]

        let r = try await HTTP.send(s.base + "/v1/restore?gpen=gpen-tiny&detector=retina-tiny&parser=parse-tiny", method: "POST",
                                    body: png, contentType: "image/png")
        #expect(r.status == 200, "\(r.text)")
        #expect(r.body == (try ws.cliOutput("restore", ws.photo, models, ext: "png")))
        #expect(r.headers["x-enhance-faces"] != nil)

        let a = try await HTTP.send(s.base + "/v1/restore?gpen=gpen-tiny&aligned=true&format=jpg&quality=90", method: "POST",
                                    body: png, contentType: "image/png")
        #expect(a.status == 200 && a.headers["content-type"] == "image/jpeg", "\(a.text)")
        #expect(a.headers["x-enhance-faces"] == "1")
        #expect(a.body == (try ws.cliOutput("restore", ws.photo, ["--gpen", "gpen-tiny", "--aligned", "--ext", "jpg", "--quality", "90"], ext: "jpg")))

        let bg = try await HTTP.send(s.base + "/v1/restore?gpen=gpen-tiny&detector=retina-tiny&parser=parse-tiny&bg_upsampler=\(Self.anime)&upscale=2",
                                     method: "POST", body: png, contentType: "image/png")
        #expect(bg.status == 200, "\(bg.text)")
        #expect(bg.body == (try ws.cliOutput("restore", ws.photo, models + ["--bg-upsampler", Self.anime, "--upscale", "2"], ext: "png")))

        let c = try await HTTP.send(s.base + "/v1/chain?model=\(Self.anime)&gpen=gpen-tiny&detector=retina-tiny&parser=parse-tiny&only_center_face=true",
                                    method: "POST", body: png, contentType: "image/png")
        #expect(c.status == 200, "\(c.text)")
        #expect(c.body == (try ws.cliOutput("chain", ws.photo, ["-n", Self.anime, "--only-center-face"] + models, ext: "png")))
        #expect(c.headers["x-enhance-model"] == "\(Self.anime),gpen-tiny")

        // the networks were loaded once and are listed as loaded
        let list = try await HTTP.send(s.base + "/v1/models")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(list.body)) as? [String: Any])
        let loaded = try #require(o["loaded"] as? [String])
        #expect(loaded.contains(Self.anime) && loaded.contains("gpen-tiny"), "\(loaded)")
        await s.stop()
    }

    @Test func everyErrorHasItsStatusAndAJSONBody() async throws {
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        var c = Self.configuration(ws)
        c.maxUpload = 64 << 10
        c.maxPixels = 200 * 200
        let s = try await InProcessServer(c)
        let png = [UInt8](try Data(contentsOf: ws.photo))
        let big = try Image.rgb8(width: 300, height: 300, pixels: [UInt8](repeating: 7, count: 300 * 300 * 3))
        let bigPNG = try ImageEncoder.encode(big, as: .png).data
        let cases: [(String, [UInt8], String, Int, String)] = [
            ("/v1/upscale?model=\(Self.anime)", [UInt8]("not an image".utf8), "image/png", 400, "bad_image"),
            ("/v1/upscale?model=\(Self.anime)", [], "image/png", 400, "bad_image"),
            ("/v1/upscale?model=\(Self.anime)", Array(png.prefix(png.count / 2)), "image/png", 400, "bad_image"),
            ("/v1/upscale?tile=abc", png, "image/png", 400, "bad_parameter"),
            ("/v1/upscale?aligned=true", png, "image/png", 400, "bad_parameter"),
            ("/v1/restore?gpen=gpen-tiny&aligned=maybe", png, "image/png", 400, "bad_parameter"),
            ("/v1/upscale?outscale=-1", png, "image/png", 422, "invalid_parameter"),
            ("/v1/upscale?quality=0", png, "image/png", 422, "invalid_parameter"),
            ("/v1/upscale?format=gif", png, "image/png", 422, "invalid_parameter"),
            ("/v1/upscale?model=../../etc/passwd", png, "image/png", 422, "invalid_parameter"),
            ("/v1/restore?gpen=gpen-tiny&upscale=2", png, "image/png", 422, "invalid_parameter"),
            ("/v1/upscale?model=no-such-model", png, "image/png", 404, "unknown_model"),
            ("/v1/restore?gpen=no-such-gpen", png, "image/png", 404, "unknown_model"),
            ("/v1/upscale?model=\(Self.anime)", [UInt8](repeating: 1, count: 70 << 10), "image/png", 413, "payload_too_large"),
            ("/v1/upscale?model=\(Self.anime)", [UInt8](bigPNG), "image/png", 413, "too_many_pixels"),
            ("/v1/upscale?model=\(Self.anime)", png, "text/plain", 415, "unsupported_media_type"),
            ("/v1/restore?gpen=GPEN-BFR-512&aligned=true", png, "image/png", 503, "model_missing"),
            ("/v1/upscale?model=RealESRGAN_x2plus", png, "image/png", 503, "model_missing"),
        ]
        for (path, body, type, status, code) in cases {
            let r: Reply
            do { r = try await HTTP.send(s.base + path, method: "POST", body: body, contentType: type) } catch {
                Issue.record("\(path) [\(type), \(body.count) B]: \(error)"); continue
            }
            #expect(r.status == status && r.errorCode == code, "\(path) [\(type), \(body.count) B]: \(r.status) \(r.text)")
            #expect(r.headers["content-type"] == "application/json", "\(path)")
        }
        let missing = try await HTTP.send(s.base + "/v1/restore?gpen=GPEN-BFR-512&aligned=true", method: "POST", body: png, contentType: "image/png")
        #expect(missing.text.contains("enhance models fetch GPEN-BFR-512"), "\(missing.text)")
        let notFound = try await HTTP.send(s.base + "/nope")
        #expect(notFound.status == 404 && notFound.errorCode == "not_found")
        let method = try await HTTP.send(s.base + "/v1/upscale")
        #expect(method.status == 405 && method.errorCode == "method_not_allowed" && method.headers["allow"] == "POST")
        // the server is still alive and well after all of that
        #expect(try await HTTP.send(s.base + "/healthz").status == 200)
        await s.stop()

        // an image that cannot fit the memory limit even with the smallest tile, and a request over its time
        var tight = Self.configuration(ws)
        tight.maxMemory = 2 << 20
        let t = try await InProcessServer(tight)
        let r = try await HTTP.send(t.base + "/v1/upscale?model=\(Self.anime)", method: "POST", body: png, contentType: "image/png")
        #expect(r.status == 413 && r.errorCode == "too_large_for_memory", "\(r.text)")
        await t.stop()
        var slow = Self.configuration(ws)
        slow.requestTimeout = .milliseconds(1)
        let u = try await InProcessServer(slow)
        let v = try await HTTP.send(u.base + "/v1/upscale?model=\(Self.anime)", method: "POST", body: png, contentType: "image/png")
        #expect(v.status == 504 && v.errorCode == "timeout", "\(v.text)")
        await u.stop()
    }

    @Test func pageProbesAndModels() async throws {
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        var c = Self.configuration(ws)
        c.preload = Self.animeInstalled ? [Self.anime] : []
        let s = try await InProcessServer(c)
        let page = try await HTTP.send(s.base + "/")
        #expect(page.status == 200 && page.headers["content-type"]?.hasPrefix("text/html") == true)
        for id in ["id=\"file\"", "id=\"op\"", "id=\"result-img\"", "id=\"slider\"", "id=\"timings\"", "id=\"error\"", "/v1/models"] {
            #expect(page.text.contains(id), "page lacks \(id)")
        }
        #expect(try await HTTP.send(s.base + "/healthz").text.contains("ok"))
        // ready once the preloaded model is in memory
        var ready = try await HTTP.send(s.base + "/readyz")
        for _ in 0..<100 where ready.status != 200 {
            try await Task.sleep(for: .milliseconds(100))
            ready = try await HTTP.send(s.base + "/readyz")
        }
        #expect(ready.status == 200, "\(ready.text)")
        let list = try await HTTP.send(s.base + "/v1/models")
        let o = try #require(try JSONSerialization.jsonObject(with: Data(list.body)) as? [String: Any])
        let models = try #require(o["models"] as? [[String: Any]])
        let anime = try #require(models.first { $0["name"] as? String == Self.anime })
        #expect(anime["kind"] as? String == "upscale" && anime["scale"] as? Int == 4)
        #expect(anime["installed"] as? Bool == Self.animeInstalled && anime["loaded"] as? Bool == Self.animeInstalled)
        let gpen = try #require(models.first { $0["name"] as? String == "GPEN-BFR-512" })
        #expect(gpen["kind"] as? String == "restore" && gpen["installed"] as? Bool == false && gpen["scale"] is NSNull)
        let metrics = try await HTTP.send(s.base + "/metrics")
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
        for name in ["enhance_http_requests_total", "enhance_memory_limit_bytes", "enhance_process_resident_bytes", "enhance_queue_depth",
                     "enhance_reserved_bytes"] {
            #expect(metrics.text.contains(name), "metrics lack \(name)")
        }
        if Self.animeInstalled { #expect(metrics.text.contains("enhance_model_load_seconds{model=\"\(Self.anime)\"}")) }
        await s.stop()
    }
}
