import AsyncHTTPClient
import Foundation
import ImageIO
import Testing
import TestSupport

/// `enhance serve` as its own process: many concurrent clients against a small memory limit, a client that goes
/// away, and SIGTERM in the middle of a request.
@Suite(.serialized) struct ServeProcessTests {
    static let anime = ServeTests.anime

    /// A `side`×`side` photo-like PNG.
    static func photo(_ side: Int) throws -> [UInt8] {
        var px = [UInt8](repeating: 0, count: side * side * 3)
        for y in 0..<side { for x in 0..<side {
            let i = (y * side + x) * 3
            px[i] = UInt8((x * 3 + y) & 255); px[i + 1] = UInt8((y * 2) & 255); px[i + 2] = UInt8(((x / 16 + y / 16) % 2) * 180)
        } }
        return [UInt8](try ImageEncoder.encode(Image.rgb8(width: side, height: side, pixels: px), as: .png).data)
    }

    static func metrics(_ base: String) async throws -> String { try await HTTP.send(base + "/metrics").text }

    @Test func sixteenConcurrentRequestsUnderASmallMemoryLimit() async throws {
        try #require(ServeTests.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let png = try Self.photo(256)
        // the estimate of one such request on this CPU's path (oneDNN's layouts differ between AVX-512 and AVX2)
        let probe = try ChildServer(["--preload", Self.anime], environment: ws.environment, logDirectory: ws.dir)
        let first = try await HTTP.send(probe.base + "/v1/upscale?model=\(Self.anime)", method: "POST", body: png, contentType: "image/png")
        probe.stop()
        try #require(first.status == 200, "\(first.text)")
        let estimate = try #require(Int(first.headers["x-enhance-estimate-bytes"] ?? ""))
        let cap = estimate * 3 / 2  // room for exactly one at a time
        let server = try ChildServer(["--preload", Self.anime, "--max-memory", "\(cap)", "--workers", "4", "--queue", "4"],
                                     environment: ws.environment, logDirectory: ws.dir)
        defer { server.stop() }
        let url = server.base + "/v1/upscale?model=\(Self.anime)"
        let reference = try await HTTP.send(url, method: "POST", body: png, contentType: "image/png")
        try #require(reference.status == 200, "\(reference.text)")
        #expect(reference.body == first.body && Int(reference.headers["x-enhance-estimate-bytes"] ?? "") == estimate)
        let before = try #require(HTTP.metric(try await Self.metrics(server.base), "enhance_process_resident_bytes"))

        let replies = try await withThrowingTaskGroup(of: Reply.self) { g in
            for _ in 0..<16 { g.addTask { try await HTTP.send(url, method: "POST", body: png, contentType: "image/png") } }
            var all: [Reply] = []
            for try await r in g { all.append(r) }
            return all
        }
        let ok = replies.filter { $0.status == 200 }, busy = replies.filter { $0.status == 503 }
        #expect(ok.count + busy.count == 16, "\(replies.map { "\($0.status) \($0.errorCode ?? "")" })")
        #expect(ok.count >= 5, "one running and four queued must all be served, got \(ok.count)")
        #expect(!busy.isEmpty, "16 at once against 1 running + 4 queued must refuse some")
        for r in ok { #expect(r.body == reference.body, "a concurrent result differs from the single one") }
        for r in busy {
            #expect(r.errorCode == "queue_full")
            #expect(Int(r.headers["retry-after"] ?? "") ?? 0 >= 1)
        }
        // nothing leaked; memory stayed under the cap on top of what the loaded server held
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_reserved_bytes")) == 0 }
        let m = try await Self.metrics(server.base)
        #expect(HTTP.metric(m, "enhance_reserved_bytes") == 0 && HTTP.metric(m, "enhance_queue_depth") == 0
                && HTTP.metric(m, "enhance_admitted_requests") == 0, "\(m)")
        #expect(m.contains("enhance_rejected_total{reason=\"queue_full\"} \(busy.count)"))
        // what admission does not reserve: 16 connections' bodies and buffers and the worker threads (16 MiB)
        let peak = try #require(server.peakRSS)
        let allowance = 16.0 * 1048576
        #expect(Double(peak) <= before + Double(cap) + allowance,
                "server peak RSS \(peak >> 20) MiB > \(Int(before) >> 20) MiB loaded + \(cap >> 20) MiB cap + 16 MiB")
    }

    /// `--image-batch 2` on the CUDA host emulator: two requests for the same photo with 16 px tiles compute at once
    /// and share tile passes (the metrics count the merged runs), and each response is byte for byte the CLI's on the
    /// same device, one tile at a time.
    @Test func imageBatchMergesConcurrentRequestsOnCUDA() async throws {
        try #require(ServeTests.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let env = try ws.emulatorEnvironment()
        let server = try ChildServer(["--device", "cuda", "--image-batch", "2", "--preload", Self.anime],
                                     environment: env, logDirectory: ws.dir)
        defer { server.stop() }
        let png = [UInt8](try Data(contentsOf: ws.photo))
        let url = server.base + "/v1/upscale?model=\(Self.anime)&tile=16&tile_pad=2"
        let replies = try await withThrowingTaskGroup(of: Reply.self) { g in
            for _ in 0..<2 { g.addTask { try await HTTP.send(url, method: "POST", body: png, contentType: "image/png") } }
            var all: [Reply] = []
            for try await r in g { all.append(r) }
            return all
        }
        let cliDir = ws.dir.appendingPathComponent("cli")
        let cli = try EnhanceBinary.run(["upscale", ws.photo.path, "-o", cliDir.path, "--suffix", "", "-n", Self.anime,
                                         "--device", "cuda", "-t", "16", "--tile-pad", "2"], environment: env)
        try #require(cli.status == 0, "\(cli.stderr)")
        let expected = [UInt8](try Data(contentsOf: cliDir.appendingPathComponent("photo.png")))
        for r in replies {
            #expect(r.status == 200, "\(r.text) \(server.stderr)")
            #expect(r.body == expected, "a merged response differs from the CLI's (\(r.body.count) vs \(expected.count) bytes)")
            #expect(r.headers["x-enhance-tiles"] == "16×16, 12 passes", "\(r.headers)")
        }
        let merged = HTTP.metric(try await Self.metrics(server.base), "enhance_merged_network_runs_total") ?? 0
        #expect(merged >= 2, "no tile pass was shared by the two requests (\(merged) merged runs)")
    }

    /// `serve --precision fp16` on the CUDA host emulator with a model whose fp16 activations overflow: the request
    /// still answers 200 with the fp32 image (byte for byte the CLI's `--precision fp32` output), and
    /// `X-Enhance-Fallback` says why.
    @Test func fp16OverflowIsComputedAgainInFP32() async throws {
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        try ws.writeGeneralX4(first: 1e5, second: 1e-5)
        let env = try ws.emulatorEnvironment()
        let server = try ChildServer(["--device", "cuda", "--precision", "fp16", "--models-dir", ws.models.path],
                                     environment: env, logDirectory: ws.dir)
        defer { server.stop() }
        let png = [UInt8](try Data(contentsOf: ws.photo))
        let r = try await HTTP.send(server.base + "/v1/upscale?model=realesr-general-x4v3&denoise_strength=1", method: "POST",
                                    body: png, contentType: "image/png")
        #expect(r.status == 200, "\(r.text) \(server.stderr)")
        let fallback = r.headers["x-enhance-fallback"] ?? ""
        #expect(fallback.hasPrefix("fp16 → fp32: SRVGGNetCompact ×4:") && fallback.contains("NaN or infinite"), "\(r.headers)")
        let cliDir = ws.dir.appendingPathComponent("cli")
        let cli = try EnhanceBinary.run(["upscale", ws.photo.path, "-o", cliDir.path, "--suffix", "", "-n", "realesr-general-x4v3",
                                         "-dn", "1", "--models-dir", ws.models.path, "--device", "cuda", "--precision", "fp32"], environment: env)
        try #require(cli.status == 0, "\(cli.stderr)")
        #expect(r.body == [UInt8](try Data(contentsOf: cliDir.appendingPathComponent("photo.png"))), "the fallback's image differs from the fp32 CLI's")
    }

    /// `serve --device auto` on a GPU too small for the work (the emulator's `ENH_EMU_MEMORY`): models whose weights do
    /// not fit load on the CPU (said on stderr), an image the GPU cannot hold even with the smallest tile is computed
    /// on the CPU (`X-Enhance-Fallback` says so) — either way 200 with the CLI's `--device cpu` bytes; `--device cuda`
    /// answers the out-of-memory error instead.
    @Test func autoComputesOnTheCPUWhatTheGPUCannotHold() async throws {
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        // 17 KB of weights (a tiny ×4 SRVGGNetCompact); the 64×48 photo's passes need far more than 40 KiB
        try ws.writeGeneralX4()
        var env = try ws.emulatorEnvironment()
        let cliDir = ws.dir.appendingPathComponent("cli")
        let cli = try EnhanceBinary.run(["upscale", ws.photo.path, "-o", cliDir.path, "--suffix", "", "-n", "realesr-general-x4v3",
                                         "-dn", "1", "--models-dir", ws.models.path, "--device", "cpu"], environment: env)
        try #require(cli.status == 0, "\(cli.stderr)")
        let expected = [UInt8](try Data(contentsOf: cliDir.appendingPathComponent("photo.png")))
        let png = [UInt8](try Data(contentsOf: ws.photo))
        for (memory, modelsMove) in [("8K", true), ("40K", false)] {
            env["ENH_EMU_MEMORY"] = memory
            for device in ["auto", "cuda"] {
                let server = try ChildServer(["--device", device, "--models-dir", ws.models.path], environment: env, logDirectory: ws.dir)
                defer { server.stop() }
                let r = try await HTTP.send(server.base + "/v1/upscale?model=realesr-general-x4v3&denoise_strength=1", method: "POST",
                                            body: png, contentType: "image/png")
                if device == "cuda" {
                    #expect(r.status != 200 && r.text.contains("cuda:0 is out of memory"), "\(memory): \(r.status) \(r.text)")
                    continue
                }
                #expect(r.status == 200, "\(memory): \(r.status) \(r.text) \(server.stderr)")
                #expect(r.body == expected, "\(memory): the image differs from the CLI's on the CPU")
                let moved = server.stderr.contains("enhance: --device auto: the models do not fit cuda:0 (") && server.stderr.contains("these settings run on the CPU")
                #expect(moved == modelsMove, "\(memory): \(server.stderr)")
                let fallback = r.headers["x-enhance-fallback"]
                #expect(modelsMove ? fallback == nil : fallback?.hasPrefix("cuda:0 → cpu: ") == true, "\(memory): \(r.headers)")
            }
        }
    }

    /// A GPU whose context breaks mid-request (the emulator's `ENH_EMU_FAULT`, sticky as on a GPU): that request
    /// answers 503 `device_lost`, and rather than answer every later request with the same error for as long as it
    /// runs, the server shuts down and exits 69 for its supervisor to start a fresh process.
    @Test func aLostGPUAnswers503AndTheServerExits69() async throws {
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        try ws.writeGeneralX4()
        var env = try ws.emulatorEnvironment()
        env["ENH_EMU_FAULT"] = "0:40"
        let server = try ChildServer(["--device", "cuda", "--models-dir", ws.models.path], environment: env, logDirectory: ws.dir)
        defer { server.stop() }
        let png = [UInt8](try Data(contentsOf: ws.photo))
        let url = server.base + "/v1/upscale?model=realesr-general-x4v3&denoise_strength=1"
        var replies: [Reply] = []
        while replies.count < 20, replies.last?.status ?? 200 == 200 {
            replies.append(try await HTTP.send(url, method: "POST", body: png, contentType: "image/png"))
        }
        let lost = try #require(replies.last)
        #expect(replies.count >= 2, "the fault came before any image was computed: \(server.stderr)")
        #expect(lost.status == 503 && lost.errorCode == "device_lost", "\(lost.status) \(lost.text) \(server.stderr)")
        #expect(lost.text.contains("cuda:0 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700)"), "\(lost.text)")
        // until it has stopped, the probes say why (no answer means it is closing or gone)
        if let health = try? await HTTP.send(server.base + "/healthz", timeout: .seconds(2)) {
            #expect(health.status == 503 && health.errorCode == "device_lost", "\(health.status) \(health.text)")
        }
        for _ in 0..<300 where server.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!server.process.isRunning, "still serving 15 s after its GPU was lost")
        #expect(server.process.terminationReason == .exit && server.process.terminationStatus == 69, "\(server.stderr)")
        #expect(server.stderr.contains("enhance serve: stopped: cuda:0 is lost"), "\(server.stderr)")
    }

    @Test func aClientThatLeavesFreesItsPlace() async throws {
        try #require(ServeTests.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let server = try ChildServer(["--preload", Self.anime, "--workers", "1", "--queue", "4"], environment: ws.environment, logDirectory: ws.dir)
        defer { server.stop() }
        let png = try Self.photo(256)
        let url = server.base + "/v1/upscale?model=\(Self.anime)"
        _ = try await HTTP.send(url, method: "POST", body: png, contentType: "image/png")  // prepared and warm
        // the first holds the only worker long enough (512²: ~4× the 256² pass) for the second to be seen queued
        let big = try Self.photo(512)
        let first = Task { try await HTTP.send(url, method: "POST", body: big, contentType: "image/png") }
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_admitted_requests")) == 1 }
        // the second waits for the only worker; once it is in the queue its client gives up (the task is cancelled,
        // which closes the connection) — waiting for the queue, not a fixed 300 ms, so a busy machine cannot make
        // the client leave before the server has even queued it
        let second = Task { try await HTTP.send(url, method: "POST", body: png, contentType: "image/png", timeout: .seconds(60)) }
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_queue_depth")) == 1 }
        second.cancel()
        await #expect(throws: (any Error).self) { try await second.value }
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_queue_depth")) == 0 }
        let r = try await first.value
        #expect(r.status == 200)
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_reserved_bytes")) == 0 }
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_admitted_requests")) == 0 }
        // the one that left was taken out of the queue and never ran: two images computed, not three
        let m = try await Self.metrics(server.base)
        #expect(m.contains("enhance_rejected_total{reason=\"cancelled\"} 1"), "\(m)")
        #expect(m.contains("enhance_request_peak_bytes_count{route=\"/v1/upscale\"} 2"), "\(m)")
    }

    /// A server killed (SIGKILL, the OOM killer) cannot remove its work folder: the next one to start removes those of
    /// processes that are gone, and leaves a live process's alone.
    @Test func aStartRemovesTheWorkFoldersOfKilledServers() async throws {
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let tmp = ws.dir.appendingPathComponent("tmp")
        let ended = Process()
        ended.executableURL = URL(fileURLWithPath: "/bin/true")
        try ended.run()
        ended.waitUntilExit()
        let killed = tmp.appendingPathComponent("enhance-serve-\(ended.processIdentifier)-0A1B2C3D")
        let live = tmp.appendingPathComponent("enhance-serve-\(getpid())-4E5F6A7B")
        for d in [killed, live] {
            try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
            try Data("part".utf8).write(to: d.appendingPathComponent("x.in.png"))
        }
        let server = try ChildServer([], environment: ws.environment.merging(["TMPDIR": tmp.path]) { $1 }, logDirectory: ws.dir)
        defer { server.stop() }
        #expect(!FileManager.default.fileExists(atPath: killed.path), "the ended server's folder is still there")
        #expect(FileManager.default.fileExists(atPath: live.appendingPathComponent("x.in.png").path), "a live process's folder was touched")
        let own = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.hasPrefix("enhance-serve-\(server.process.processIdentifier)-") }
        #expect(own.count == 1, "\(own)")
    }

    @Test func sigtermLetsTheRequestInFlightFinish() async throws {
        try #require(ServeTests.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        // its own temporary folder, to see that the server leaves nothing there
        let tmp = ws.dir.appendingPathComponent("tmp")
        try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
        let server = try ChildServer(["--preload", Self.anime], environment: ws.environment.merging(["TMPDIR": tmp.path]) { $1 },
                                     logDirectory: ws.dir)
        defer { server.stop() }
        let png = try Self.photo(256)
        let url = server.base + "/v1/upscale?model=\(Self.anime)"
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).count == 1, "no work folder in TMPDIR")
        let reference = try await HTTP.send(url, method: "POST", body: png, contentType: "image/png")
        let inFlight = Task { try await HTTP.send(url, method: "POST", body: png, contentType: "image/png") }
        try await waitFor { (try? HTTP.metric(await Self.metrics(server.base), "enhance_admitted_requests")) == 1 }
        kill(server.process.processIdentifier, SIGTERM)
        let r = try await inFlight.value
        #expect(r.status == 200 && r.body == reference.body, "\(r.status) \(r.text.prefix(200))")
        for _ in 0..<300 where server.process.isRunning { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!server.process.isRunning, "still running 15 s after SIGTERM")
        #expect(server.process.terminationReason == .exit && server.process.terminationStatus == 0, "\(server.stderr)")
        #expect(server.stderr.contains("draining"))
        // the work folder goes with it (it stayed once a request had been served: the prepared processors held it)
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path) == [], "left in TMPDIR")
    }
}
