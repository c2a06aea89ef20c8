import ArgumentParser
import Bench
import Foundation
import ImageIO

/// `enhance bench serve`: load on a running `enhance serve` (loopback only): throughput, latency percentiles,
/// refusals and the server's memory over time, per concurrency.
struct BenchServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load-test a running `enhance serve` on loopback: images/s, p50/p95/p99, 503s and server RSS per concurrency.",
        discussion: """
        Closed loop: at each concurrency C, C clients each send their next image as soon as the previous one is \
        answered, until --requests images were sent (or --level-time-limit passed). One unmeasured warm-up request \
        first. Writes serve.json to --out and the "Service load" section of report.html there (added to an \
        `enhance bench` report already in that folder, else on a page of its own). See docs/bench.md.
        """)

    @Option(help: "The server, e.g. http://127.0.0.1:8080 (loopback only).")
    var url: String

    @Option(help: "Comma-separated client counts.")
    var concurrency = "1,2,4,8"

    @Option(help: "Requests per concurrency level.")
    var requests = 16

    @OptionGroup var imagesOption: BenchImagesOption

    @Option(help: "Route and query to send, e.g. '/v1/upscale?model=realesr-animevideov3' or '/v1/restore?gpen=GPEN-BFR-512'.")
    var request = "/v1/upscale?model=realesr-animevideov3"

    @Option(help: "Stop sending at a level after this many seconds.")
    var levelTimeLimit = DurationArgument(argument: "5m")!

    @OptionGroup var outOption: BenchOutOption

    func validate() throws {
        guard imagesOption.images != nil else { throw ValidationError("give --images DIR: the PNG/JPEG/WebP images to send") }
        guard request.hasPrefix("/v1/") else { throw ValidationError("--request must start with /v1/ (e.g. /v1/upscale?model=…)") }
        guard requests >= 1, requests <= 10_000 else { throw ValidationError("--requests must be 1…10000") }
        guard levels != nil else { throw ValidationError("--concurrency must be comma-separated numbers 1…256, got '\(concurrency)'") }
    }

    var levels: [Int]? {
        let v = concurrency.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !v.isEmpty, v.allSatisfy({ $0 != nil && (1...256).contains($0!) }) else { return nil }
        return v.map { $0! }
    }

    func run() async throws {
        let images = imagesOption.images!
        let dir = URL(fileURLWithPath: images)
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
            .map { dir.appendingPathComponent($0) }
            .filter { ImageFormat.sniff(fileAt: $0) != nil }
        guard !files.isEmpty else {
            FileHandle.standardError.write(Data("enhance bench serve: no PNG, JPEG or WebP images in \(images)\n".utf8))
            throw ExitCode(2)
        }
        let options = ServeLoadOptions(url: url, request: request, concurrency: levels!, requests: requests, images: files,
                                       levelTimeLimitS: levelTimeLimit.seconds)
        let report: ServeLoadReport
        do {
            report = try await ServeLoad.run(options) { line in FileHandle.standardError.write(Data(("bench serve: " + line + "\n").utf8)) }
        } catch {
            FileHandle.standardError.write(Data("enhance bench serve: \(error)\n".utf8))
            throw ExitCode(2)
        }
        print(ReportWriter.serveTable(report), terminator: "")
        let outDir = URL(fileURLWithPath: outOption.out)
        do {
            let written = try ReportWriter.writeServe(report, to: outDir)
            print("wrote \(written.joined(separator: ", "))")
        } catch {
            FileHandle.standardError.write(Data("enhance bench serve: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
