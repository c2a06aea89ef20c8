import Bench
import Foundation
import Testing
import TestSupport

/// `enhance bench serve` against a real server process: per-level counts, latencies, the server's RSS over time,
/// serve.json and the report section.
@Suite(.serialized) struct BenchServeTests {
    @Test func loadTestWritesItsTableJSONAndReport() async throws {
        try #require(ServeTests.animeInstalled, "real realesr-animevideov3 weights missing from .cache/assets: run scripts/setup")
        let ws = try ServeWorkspace()
        defer { ws.remove() }
        let images = ws.dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: ws.photo, to: images.appendingPathComponent("a.png"))
        try FileManager.default.copyItem(at: ws.photoJPEG, to: images.appendingPathComponent("b.jpg"))
        try Data("not an image".utf8).write(to: images.appendingPathComponent("notes.txt"))
        let server = try ChildServer(["--preload", ServeTests.anime, "--workers", "1", "--queue", "0"], environment: ws.environment,
                                     logDirectory: ws.dir)
        defer { server.stop() }
        let out = ws.dir.appendingPathComponent("out")
        let r = try EnhanceBinary.run(["bench", "serve", "--url", server.base, "--concurrency", "1,3", "--requests", "6",
                                       "--images", images.path, "--request", "/v1/upscale?model=\(ServeTests.anime)", "-o", out.path])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("concurrency") && r.stdout.contains("images/s"), "\(r.stdout)")
        let report = try BenchReport.decoder().decode(ServeLoadReport.self, from: Data(contentsOf: out.appendingPathComponent("serve.json")))
        #expect(report.levels.map(\.concurrency) == [1, 3])
        #expect(report.images == ["a.png", "b.jpg"])
        let one = report.levels[0], three = report.levels[1]
        #expect(one.requests == 6 && one.ok == 6 && one.rejected == 0 && one.failed == 0)
        // one worker and no queue: three clients at once must see some 503s, and every request is accounted for
        #expect(three.requests == 6 && three.ok + three.rejected == 6 && three.ok >= 1 && three.rejected >= 1, "\(three)")
        #expect(one.throughput > 0 && one.p50S != nil && one.p99S! >= one.p50S!)
        #expect(!one.rss.isEmpty && one.peakRSSBytes > 50 << 20, "server RSS samples: \(one.rss)")
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        #expect(html.contains("id=\"service-load\"") && html.contains("data-concurrency=\"3\"") && html.contains("<polyline"))

        // loopback only
        let remote = try EnhanceBinary.run(["bench", "serve", "--url", "http://192.0.2.1:8080", "--images", images.path, "-o", out.path])
        #expect(remote.status != 0 && remote.stderr.contains("loopback"), "\(remote.stderr)")
    }
}
