// `enhance bench serve`: a closed-loop load test of a running `enhance serve` on loopback.

import AsyncHTTPClient
import Foundation
import NIOCore
import Pipeline

/// What `enhance bench serve` measured: one level per concurrency.
public struct ServeLoadReport: Sendable, Codable, Equatable {
    public var startedAt: String
    public var url: String
    /// Route and query sent, e.g. `/v1/upscale?model=realesr-animevideov3`.
    public var request: String
    /// Image files (name and size in pixels).
    public var images: [String]
    public var hostCores: Int
    public var levels: [ServeLoadLevel]

    enum CodingKeys: String, CodingKey {
        case url, request, images, levels
        case startedAt = "started_at", hostCores = "host_cores"
    }
}

/// One concurrency level.
public struct ServeLoadLevel: Sendable, Codable, Equatable {
    public var concurrency: Int
    /// Requests sent.
    public var requests: Int
    public var ok: Int
    /// 503 answers (queue full, draining).
    public var rejected: Int
    /// Other statuses and transport errors.
    public var failed: Int
    public var wallS: Double
    /// Successful images per second.
    public var throughput: Double
    /// Latency of successful requests, seconds.
    public var p50S: Double?
    public var p95S: Double?
    public var p99S: Double?
    /// The server's resident memory over the level: [seconds since the level started, bytes] (from /metrics).
    public var rss: [[Double]]
    public var peakRSSBytes: Int64
    /// The first few failure messages.
    public var failures: [String]

    enum CodingKeys: String, CodingKey {
        case concurrency, requests, ok, rejected, failed, throughput, rss, failures
        case wallS = "wall_s", p50S = "p50_s", p95S = "p95_s", p99S = "p99_s", peakRSSBytes = "peak_rss_bytes"
    }
}

/// Settings of a load test.
public struct ServeLoadOptions: Sendable {
    public var url: String
    /// `/v1/upscale?…`
    public var request: String
    public var concurrency: [Int]
    /// Requests per level.
    public var requests: Int
    public var images: [URL]
    /// A level stops sending after this many seconds.
    public var levelTimeLimitS: Double
    /// Unmeasured requests before the first level (the server prepares its models).
    public var warmups: Int

    public init(url: String, request: String, concurrency: [Int], requests: Int, images: [URL], levelTimeLimitS: Double = 300, warmups: Int = 1) {
        self.url = url; self.request = request; self.concurrency = concurrency; self.requests = requests
        self.images = images; self.levelTimeLimitS = levelTimeLimitS; self.warmups = warmups
    }
}

public enum ServeLoad {
    /// Runs every level against the server; `log` gets a line per level.
    public static func run(_ o: ServeLoadOptions, log: @Sendable (String) -> Void = { _ in }) async throws(BenchError) -> ServeLoadReport {
        guard let u = URL(string: o.url), let host = u.host, ["127.0.0.1", "localhost", "::1", "[::1]"].contains(host.lowercased()) else {
            throw .invalidArgument("--url must be a loopback address (http://127.0.0.1:PORT), got \(o.url)")
        }
        guard !o.images.isEmpty else { throw .invalidArgument("no images to send") }
        guard o.requests >= 1, o.requests <= 10_000 else { throw .invalidArgument("--requests must be 1…10000") }
        guard !o.concurrency.isEmpty, o.concurrency.allSatisfy({ (1...256).contains($0) }) else {
            throw .invalidArgument("--concurrency must be numbers in 1…256")
        }
        var bodies: [(bytes: [UInt8], type: String)] = []
        var names: [String] = []
        for img in o.images {
            guard let d = FileManager.default.contents(atPath: img.path), let fmt = sniffImageFormat(d) else {
                throw .invalidArgument("\(img.path): not a PNG, JPEG or WebP image")
            }
            bodies.append(([UInt8](d), "image/\(fmt == .jpeg ? "jpeg" : fmt.rawValue)"))
            names.append(img.lastPathComponent)
        }
        let base = o.url.hasSuffix("/") ? String(o.url.dropLast()) : o.url
        let target = base + o.request
        let client = HTTPClient.shared
        do {
            for i in 0..<o.warmups {
                let r = try await send(client, target, bodies[i % bodies.count])
                guard r.status == 200 else { throw BenchError.invalidArgument("warm-up request answered \(r.status): \(r.message)") }
            }
        } catch let e as BenchError { throw e } catch {
            throw .io(path: target, reason: "cannot reach the server: \(error)")
        }
        var levels: [ServeLoadLevel] = []
        for c in o.concurrency {
            let level = await runLevel(client, target: target, metricsURL: base + "/metrics", bodies: bodies, concurrency: c,
                                       requests: o.requests, timeLimit: o.levelTimeLimitS)
            log("concurrency \(c): \(level.ok) ok, \(level.rejected) rejected, \(level.failed) failed in "
                + String(format: "%.1f s: %.2f images/s", level.wallS, level.throughput)
                + ", p50 \(fmt(level.p50S)) p95 \(fmt(level.p95S)) p99 \(fmt(level.p99S)), server RSS peak \(ByteSize.format(level.peakRSSBytes))")
            levels.append(level)
        }
        return ServeLoadReport(startedAt: ISO8601DateFormatter().string(from: Date()), url: o.url, request: o.request,
                               images: names, hostCores: ProcessInfo.processInfo.activeProcessorCount, levels: levels)
    }

    static func fmt(_ s: Double?) -> String { s.map { String(format: "%.3f s", $0) } ?? "n/a" }

    struct Outcome: Sendable {
        let status: Int
        let seconds: Double
        let message: String
    }

    /// Closed loop: `concurrency` clients, each sending its next request when the previous one is answered.
    static func runLevel(_ client: HTTPClient, target: String, metricsURL: String, bodies: [(bytes: [UInt8], type: String)],
                         concurrency: Int, requests: Int, timeLimit: Double) async -> ServeLoadLevel {
        let counter = Counter()
        let start = ContinuousClock.now
        let sampler = Task { () -> [[Double]] in
            var samples: [[Double]] = []
            while !Task.isCancelled {
                if let rss = await residentBytes(client, metricsURL) { samples.append([secondsSince(start), Double(rss)]) }
                try? await Task.sleep(for: .milliseconds(250))
            }
            return samples
        }
        let outcomes = await withTaskGroup(of: [Outcome].self) { g in
            for _ in 0..<concurrency {
                g.addTask {
                    var mine: [Outcome] = []
                    while let i = await counter.next(limit: requests), secondsSince(start) < timeLimit {
                        let t = ContinuousClock.now
                        do {
                            let r = try await send(client, target, bodies[i % bodies.count])
                            mine.append(Outcome(status: r.status, seconds: secondsSince(t), message: r.message))
                        } catch {
                            mine.append(Outcome(status: 0, seconds: secondsSince(t), message: "\(error)"))
                        }
                    }
                    return mine
                }
            }
            var all: [Outcome] = []
            for await part in g { all += part }
            return all
        }
        let wall = secondsSince(start)
        sampler.cancel()
        var rss = await sampler.value
        if let last = await residentBytes(client, metricsURL) { rss.append([secondsSince(start), Double(last)]) }
        let ok = outcomes.filter { $0.status == 200 }
        let latencies = ok.map(\.seconds)
        return ServeLoadLevel(
            concurrency: concurrency, requests: outcomes.count, ok: ok.count,
            rejected: outcomes.filter { $0.status == 503 }.count,
            failed: outcomes.filter { $0.status != 200 && $0.status != 503 }.count,
            wallS: wall, throughput: wall > 0 ? Double(ok.count) / wall : 0,
            p50S: Stats.percentile(latencies, 50), p95S: Stats.percentile(latencies, 95), p99S: Stats.percentile(latencies, 99),
            rss: rss, peakRSSBytes: Int64(rss.map { $0[1] }.max() ?? 0),
            failures: Array(outcomes.filter { $0.status != 200 && $0.status != 503 }.map { "\($0.status): \($0.message)" }.prefix(5)))
    }

    actor Counter {
        private var n = 0
        func next(limit: Int) -> Int? {
            guard n < limit else { return nil }
            defer { n += 1 }
            return n
        }
    }

    static func send(_ client: HTTPClient, _ url: String, _ body: (bytes: [UInt8], type: String)) async throws -> (status: Int, message: String) {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        req.headers.add(name: "Content-Type", value: body.type)
        req.body = .bytes(ByteBuffer(bytes: body.bytes))
        let r = try await client.execute(req, timeout: .seconds(600))
        let b = try await r.body.collect(upTo: 512 << 20)
        let status = Int(r.status.code)
        return (status, status == 200 ? "" : String(buffer: b).prefix(300).description)
    }

    /// `enhance_process_resident_bytes` from the server's /metrics.
    static func residentBytes(_ client: HTTPClient, _ url: String) async -> Int64? {
        guard let r = try? await client.execute(HTTPClientRequest(url: url), timeout: .seconds(5)),
              let b = try? await r.body.collect(upTo: 8 << 20) else { return nil }
        for line in String(buffer: b).split(separator: "\n") where line.hasPrefix("enhance_process_resident_bytes ") {
            return Double(line.split(separator: " ").last ?? "").map { Int64($0) }
        }
        return nil
    }
}

extension ReportWriter {
    /// Writes serve.json and the "Service load" section of report.html into `dir`: into the `enhance bench` report
    /// there (bench.json gets the results too) when there is one, else as a page of its own.
    @discardableResult
    public static func writeServe(_ r: ServeLoadReport, to dir: URL) throws(BenchError) -> [String] {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw .io(path: dir.path, reason: "cannot create folder: \(error.localizedDescription)")
        }
        let serveJSON = dir.appendingPathComponent("serve.json")
        do { try BenchReport.encoder().encode(r).write(to: serveJSON, options: .atomic) } catch {
            throw .io(path: serveJSON.path, reason: "cannot write: \(error)")
        }
        let benchJSON = dir.appendingPathComponent("bench.json")
        if let d = FileManager.default.contents(atPath: benchJSON.path), var bench = try? BenchReport.decoder().decode(BenchReport.self, from: d) {
            bench.serve = r
            return [serveJSON.path] + (try writeAll(bench, to: dir))
        }
        var h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>enhance bench serve</title><style>"
        h += "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}"
        h += "td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:right}th{background:#f3f3f3}</style></head><body>\n"
        h += "<h1>enhance bench serve</h1>\n" + serveSection(r) + "</body></html>\n"
        let html = dir.appendingPathComponent("report.html")
        do { try Data(h.utf8).write(to: html, options: .atomic) } catch {
            throw .io(path: html.path, reason: "cannot write: \(error.localizedDescription)")
        }
        return [serveJSON.path, html.path]
    }

    /// The load test as a terminal table.
    public static func serveTable(_ r: ServeLoadReport) -> String {
        var s = "service load: \(r.request) on \(r.url), images \(r.images.joined(separator: ", ")), \(r.hostCores) cores\n"
        s += "concurrency  requests  ok  rejected  failed  images/s   p50 s   p95 s   p99 s  server RSS peak\n"
        for l in r.levels {
            func pad(_ x: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - x.count)) + x }
            s += pad("\(l.concurrency)", 11) + pad("\(l.requests)", 10) + pad("\(l.ok)", 4) + pad("\(l.rejected)", 10) + pad("\(l.failed)", 8)
            s += pad(String(format: "%.2f", l.throughput), 10) + pad(seconds(l.p50S), 8) + pad(seconds(l.p95S), 8) + pad(seconds(l.p99S), 8)
            s += "  " + ByteSize.format(l.peakRSSBytes) + "\n"
        }
        return s
    }

    /// The load test as an HTML section: a table and the server's RSS over time per level (SVG).
    public static func serveSection(_ r: ServeLoadReport) -> String {
        var h = "<h2 id=\"service-load\">Service load</h2>\n<p>\(escape(r.request)) on \(escape(r.url)), closed loop (each client sends its next "
        h += "image when the previous is answered), images: \(escape(r.images.joined(separator: ", "))); \(r.hostCores) cores; \(escape(r.startedAt)).</p>\n"
        h += "<table id=\"serve\"><tr><th>concurrency</th><th>requests</th><th>ok</th><th>rejected (503)</th><th>failed</th>"
        h += "<th>images/s</th><th>p50 s</th><th>p95 s</th><th>p99 s</th><th>server RSS peak</th></tr>\n"
        for l in r.levels {
            h += "<tr data-concurrency=\"\(l.concurrency)\"><td>\(l.concurrency)</td><td>\(l.requests)</td><td>\(l.ok)</td><td>\(l.rejected)</td>"
            h += "<td>\(l.failed)</td><td>\(String(format: "%.2f", l.throughput))</td><td>\(seconds(l.p50S))</td><td>\(seconds(l.p95S))</td>"
            h += "<td>\(seconds(l.p99S))</td><td>\(ByteSize.format(l.peakRSSBytes))</td></tr>\n"
        }
        h += "</table>\n"
        // RSS over time, one line per level
        let w = 640.0, ht = 220.0, pad = 40.0, legend = 130.0
        let maxT = max(1, r.levels.flatMap { $0.rss.map { $0[0] } }.max() ?? 1)
        let maxB = max(1, r.levels.flatMap { $0.rss.map { $0[1] } }.max() ?? 1)
        let colours = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
        h += "<svg id=\"serve-rss\" width=\"\(Int(w + legend))\" height=\"\(Int(ht))\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"11\">"
        h += "<line x1=\"\(pad)\" y1=\"\(ht - pad)\" x2=\"\(w - 10)\" y2=\"\(ht - pad)\" stroke=\"#888\"/><line x1=\"\(pad)\" y1=\"10\" x2=\"\(pad)\" y2=\"\(ht - pad)\" stroke=\"#888\"/>"
        h += "<text x=\"\(pad)\" y=\"\(ht - 8)\">0 s</text><text x=\"\(w - 60)\" y=\"\(ht - 8)\">\(String(format: "%.0f", maxT)) s</text>"
        h += "<text x=\"2\" y=\"16\">\(ByteSize.format(Int64(maxB)))</text>"
        for (i, l) in r.levels.enumerated() where !l.rss.isEmpty {
            let pts = l.rss.map { String(format: "%.1f,%.1f", pad + $0[0] / maxT * (w - pad - 10), (ht - pad) - $0[1] / maxB * (ht - pad - 10)) }
            h += "<polyline fill=\"none\" stroke=\"\(colours[i % colours.count])\" stroke-width=\"1.5\" points=\"\(pts.joined(separator: " "))\"/>"
            h += "<text x=\"\(w + 6)\" y=\"\(20 + 14 * i)\" fill=\"\(colours[i % colours.count])\">concurrency \(l.concurrency)</text>"
        }
        h += "</svg>\n<p>Server RSS sampled from its /metrics every 250 ms while each level ran (time axis: seconds since the level started).</p>\n"
        return h
    }
}
