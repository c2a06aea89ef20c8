import ArgumentParser
import EnhanceKit
import EnhanceServer
import Foundation
import Logging
import TensorCore

/// `enhance serve`: the HTTP service (docs/serve.md, docs/openapi.yaml).
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve upscale, restore and chain over HTTP, with a web page, memory admission and Prometheus metrics.",
        discussion: """
        POST an image to /v1/upscale, /v1/restore or /v1/chain (the CLI's flags as snake_case query parameters); open \
        http://HOST:PORT/ for the web page. Each request's peak memory is estimated from its image header and reserved \
        against --max-memory before it runs; requests that do not fit yet wait in a queue of --queue; a full queue \
        answers 503 with Retry-After. SIGTERM/SIGINT: stop accepting, finish what is in flight, exit 0. See docs/serve.md.
        """)

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0: any free port, printed at start).")
    var port = 8080

    @OptionGroup var models: ModelsDirectoryOption

    @Option(help: "Comma-separated models to load at start (/readyz answers 200 once they are), e.g. realesr-animevideov3,GPEN-BFR-512.")
    var preload: String?

    @Option(help: "Memory that admitted requests may reserve together (their estimated peaks), e.g. 4G.")
    var maxMemory = ByteSizeArgument(argument: "4G")!

    @Option(help: "Requests admitted at once (they decode and encode in parallel; model passes take turns on the engine).")
    var workers = 2

    @Option(help: "Requests that may wait for memory or a worker; one more is answered 503 with Retry-After.")
    var queue = 16

    @Option(help: "Largest request body, e.g. 50M.")
    var maxUpload = ByteSizeArgument(argument: "50M")!

    @Option(help: "Largest input image in pixels (checked from the header before decoding).")
    var maxPixels = 40_000_000

    @Option(help: "Longest a request may wait and run, e.g. 120s or 2m.")
    var requestTimeout = DurationArgument(argument: "120s")!

    @Option(help: "Requests whose model passes may run at once (1…64): their same-shape network runs (tiles, face batches) go through the network as one batch, as `--image-batch` does for a folder; admits at least this many requests. A GPU knob: on the CPU one pass already takes every core.")
    var imageBatch = 1

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        try engine.requireOneDevice("serve")
        if !(1...64).contains(imageBatch) { throw ValidationError("--image-batch must be 1...64, got \(imageBatch)") }
        if engine.cudaGraph { throw ValidationError("--cuda-graph is not available in serve (requests come in any size, and each recorded shape would keep its activations beyond --max-memory; use it with upscale, restore, chain or forward)") }
        if !(0...65535).contains(port) { throw ValidationError("--port must be 0...65535, got \(port)") }
        if workers < 1 { throw ValidationError("--workers must be ≥ 1") }
        if queue < 0 { throw ValidationError("--queue must be ≥ 0") }
        if maxPixels < 1 { throw ValidationError("--max-pixels must be ≥ 1") }
        if maxMemory.bytes < 1 << 20 { throw ValidationError("--max-memory must be at least 1M") }
        if requestTimeout.seconds <= 0 { throw ValidationError("--request-timeout must be > 0") }
    }

    func run() async throws {
        var c = ServerConfiguration()
        c.host = host
        c.port = port
        c.modelDirectories = models.searchPath()
        c.preload = (preload ?? "").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        c.maxMemory = Int(maxMemory.bytes)
        c.workers = workers
        c.queue = queue
        c.maxUpload = Int(maxUpload.bytes)
        c.maxPixels = maxPixels
        c.requestTimeout = .milliseconds(Int64(requestTimeout.seconds * 1000))
        c.engine = engine.configuration
        c.imageBatch = imageBatch
        var logger = Logger(label: "enhance.serve")
        logger.logLevel = engine.verbose ? .debug : .info
        let server: EnhanceServer
        do {
            server = try EnhanceServer(configuration: c, logger: logger)
        } catch let e as EnhanceError {
            FileHandle.standardError.write(Data("enhance serve: \(e.message)\n".utf8))
            throw ExitCode(e.category == .unsupported ? 69 : 2)
        } catch {
            FileHandle.standardError.write(Data("enhance serve: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let hostName = host
        do {
            try await server.run { port in
                // one line a script can wait for
                FileHandle.standardOutput.write(Data("enhance serve: listening on http://\(hostName):\(port)/\n".utf8))
            }
        } catch let e as TensorError where e.isDeviceLost {
            // the requests in flight were answered; a supervisor (systemd Restart=on-failure, Kubernetes) restarts us
            FileHandle.standardError.write(Data("enhance serve: stopped: \(e)\n".utf8))
            throw ExitCode(69)
        }
    }
}
