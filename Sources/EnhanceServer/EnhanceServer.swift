import EnhanceKit
import Foundation
import HTTPTypes
import Hummingbird
import ImageIO
import Logging
import Models
import MultipartKit
import Pipeline
import ServiceLifecycle
import TensorCore
import UnixSignals

/// `enhance serve`: the HTTP service. Routes (docs/openapi.yaml): the web page, health and readiness probes,
/// Prometheus metrics, the model list, and POST /v1/upscale|restore|chain. Models are loaded once and shared;
/// each image request is estimated, admitted by memory and run through the same processors as the CLI.
public final class EnhanceServer: Sendable {
    public let configuration: ServerConfiguration
    let logger: Logger
    let metrics: ServerMetrics
    let cache: ModelCache
    let factory: ModelFactory
    let lane: EngineLane
    let admission: MemoryAdmission
    let jobs: ImageJobs
    private let state = ServerState()

    /// Builds the engine and checks that every preloaded model exists (loading starts with `run`).
    public init(configuration: ServerConfiguration, logger: Logger = Logger(label: "enhance.serve")) throws {
        self.configuration = configuration
        self.logger = logger
        let metrics = ServerMetrics(memoryLimit: configuration.maxMemory)
        self.metrics = metrics
        cache = ModelCache { name, seconds in metrics.modelLoaded(name, seconds: seconds) }
        factory = ModelFactory(locator: ModelLocator(dirs: configuration.modelDirectories), cache: cache)
        lane = EngineLane(backend: try ModelFactory.makeBackend(configuration.engine), concurrency: configuration.imageBatch)
        admission = MemoryAdmission(capacity: configuration.maxMemory, maxActive: max(configuration.workers, configuration.imageBatch),
                                    maxQueue: configuration.queue) { q, a, r in metrics.admission(queue: q, active: a, reserved: r) }
        jobs = try ImageJobs(configuration: configuration, lane: lane, factory: factory, admission: admission, metrics: metrics)
        for name in configuration.preload {
            guard let entry = ModelCatalog.entry(named: name) else {
                throw EnhanceError(.badInput, "preload: unknown model '\(name)' (known: \(ModelCatalog.all.map(\.name).joined(separator: ", ")))")
            }
            if entry.kind == .upscaler { _ = try factory.locator.resolve(name: entry.name, denoiseStrength: 1) }
            else { _ = try factory.locator.locate(entry.name, what: "preloaded model") }
        }
    }

    /// Serves until SIGTERM/SIGINT (or until the task is cancelled): then /readyz and new requests answer 503
    /// draining, in-flight requests finish, and it returns. `onListening` receives the bound port.
    public func run(signals: [UnixSignal] = [.sigterm, .sigint], onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = Application(
            router: makeRouter(),
            configuration: .init(address: .hostname(configuration.host, port: configuration.port), serverName: "enhance"),
            onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
        let drain = DrainWatcher { [state, admission, logger] in
            logger.info("draining: refusing new requests, finishing those in flight")
            state.setDraining()
            await admission.drain()
        }
        let preload = Task { await self.preloadModels() }
        defer { preload.cancel() }
        let group = ServiceGroup(configuration: .init(services: [app, drain], gracefulShutdownSignals: signals, logger: logger))
        state.onLost { Task { await group.triggerGracefulShutdown() } }
        var failure: (any Error)?
        do { try await group.run() } catch { failure = error }
        // requests answered (504) while their model pass went on: let those passes end before the engine goes
        await jobs.inFlight.waitIdle()
        jobs.close()
        if let failure { throw failure }
        if let lost = state.lost { throw lost }
    }

    /// A request found the GPU lost (a CUDA context broken for the rest of the process): every later request would
    /// fail the same way, so the server says so on /healthz and /readyz, refuses new requests and shuts down, and
    /// `run` throws the loss (`enhance serve` exits 69), for a supervisor to start a fresh process.
    func deviceLost(_ error: TensorError) {
        guard state.setLost(error) else { return }
        logger.critical("\(error): shutting down so that a supervisor can start a fresh process")
    }

    private func preloadModels() async {
        for name in configuration.preload {
            do {
                let backend = lane.backend
                _ = try await lane.run { () -> Bool in
                    switch ModelCatalog.entry(named: name)?.kind {
                    case .upscaler?:
                        var c = UpscaleConfiguration(); c.model = .name(name); c.denoiseStrength = 1
                        _ = try self.factory.loadSuperResolution(c, backend: backend)
                    case .faceRestorer?:
                        var c = RestoreConfiguration(gpen: name); c.options.aligned = true
                        _ = try self.factory.restorer(c, backend: backend)
                    case .detector?:
                        _ = try self.factory.retinaFace(self.factory.locator.locate(name, what: "detector"), backend: backend)
                    case .parser?:
                        _ = try self.factory.parseNet(self.factory.locator.locate(name, what: "ParseNet weights"), backend: backend)
                    case nil:
                        break
                    }
                    return true
                }
                logger.info("loaded \(name)")
            } catch {
                logger.error("preload \(name) failed: \(error)")
                state.setPreloadFailure("\(name): \(error)")
                return
            }
        }
        state.setPreloaded()
    }

    // MARK: routes

    /// Every route `makeRouter` serves and its method (docs/openapi.yaml's `paths`; `OpenAPIDocumentTests` holds the
    /// three equal): unknown paths are `404 not_found`, a known path with another method `405 method_not_allowed`.
    public static let routes: [String: HTTPRequest.Method] =
        ["/": .get, "/healthz": .get, "/readyz": .get, "/metrics": .get, "/v1/models": .get]
            .merging(Operation.allCases.map { ("/v1/\($0.rawValue)", .post) }) { $1 }

    func makeRouter() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: APIErrorMiddleware(metrics: metrics))
        router.get("/") { _, _ -> Response in
            var h = HTTPFields()
            h[.contentType] = "text/html; charset=utf-8"
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: PackageResources.index_html)))
        }
        router.get("/healthz") { [state] _, _ -> Response in
            if let lost = state.lost { return APIError.from(lost).response() }
            return json(["status": "ok"])
        }
        router.get("/readyz") { [state, cache] _, _ -> Response in
            switch state.readiness {
            case .ready: return json(ReadyBody(status: "ready", loaded: cache.loadedNames))
            case .loading: return APIError(.notReady, "loading models").response()
            case .failed(let m): return APIError(.notReady, "a preloaded model failed to load: \(m)").response()
            case .draining: return APIError(.draining, "the server is shutting down").response()
            case .lost(let e): return APIError.from(e).response()
            }
        }
        router.get("/metrics") { [metrics] _, _ -> Response in
            var h = HTTPFields()
            h[.contentType] = "text/plain; version=0.0.4; charset=utf-8"
            return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: metrics.exposition())))
        }
        router.get("/v1/models") { [self] _, _ -> Response in json(modelList()) }
        for op in Operation.allCases {
            router.post("/v1/\(op.rawValue)") { [self] request, _ -> Response in
                try await handle(op, request)
            }
        }
        return router
    }

    /// One image request: parameters, body, header checks, then the job under the request timeout.
    func handle(_ op: Operation, _ request: Request) async throws -> Response {
        if let lost = state.lost {
            metrics.rejected("device_lost")
            throw APIError.from(lost)
        }
        if state.isDraining {
            metrics.rejected("draining")
            throw APIError(.draining, "the server is shutting down")
        }
        let query = request.uri.queryParameters.map { (String($0.key), String($0.value)) }
        let params = try JobParameters.parse(op, query: query, maxMemory: configuration.maxMemory) { [factory] name in
            ModelCatalog.entry(named: name) != nil || factory.locator.find(name) != nil
        }
        let contentType = request.headers[.contentType] ?? "application/octet-stream"
        let mediaType = contentType.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let timeout = configuration.requestTimeout
        return try await request.body.consumeWithCancellationOnInboundClose { body in
            let raw = try await collect(body)
            let bytes = try imageBytes(raw, mediaType: mediaType, contentType: contentType)
            let info: ImageInfo
            do { info = try ImageDecoder.info(bytes: bytes, name: "upload", options: DecodeOptions(maxPixels: configuration.maxPixels)) } catch {
                throw APIError.from(error)
            }
            guard info.width * info.height <= configuration.maxPixels else {
                metrics.rejected("too_many_pixels")
                throw APIError(.tooManyPixels, "the image is \(info.width)×\(info.height) = \(info.width * info.height) pixels, over the server's limit of \(configuration.maxPixels)")
            }
            let result: JobResult
            do { result = try await withTimeout(timeout) { [jobs] in try await jobs.run(params, upload: bytes, info: info) } }
            catch let e as TensorError where e.isDeviceLost { deviceLost(e); throw e }
            metrics.stages(route: "/v1/\(op.rawValue)", timings: result.timings)
            return imageResponse(result, names: params.modelNames)
        }
    }

    /// The whole body, or 413 payload_too_large when it is over `maxUpload`. An oversized body is still read (and
    /// dropped) up to 16× the limit, so the client, still sending, gets the answer instead of a reset connection.
    private func collect(_ body: RequestBody) async throws -> ByteBuffer {
        var buffer = ByteBuffer()
        var total = 0
        let limit = configuration.maxUpload
        for try await chunk in body {
            total += chunk.readableBytes
            if total <= limit {
                var c = chunk
                buffer.writeBuffer(&c)
            } else if total > limit.multipliedReportingOverflow(by: 16).partialValue {
                break
            }
        }
        guard total <= limit else {
            metrics.rejected("payload_too_large")
            throw APIError(.payloadTooLarge, "the body is larger than the upload limit of \(limit) bytes")
        }
        return buffer
    }

    /// The image bytes of a raw or multipart/form-data body (field `image`).
    private func imageBytes(_ raw: ByteBuffer, mediaType: String, contentType: String) throws -> [UInt8] {
        switch mediaType {
        case "image/png", "image/jpeg", "image/jpg", "image/webp", "application/octet-stream", "":
            return Array(raw.readableBytesView)
        case "multipart/form-data":
            guard let boundary = multipartBoundary(contentType) else {
                throw APIError(.badImage, "multipart/form-data without a boundary")
            }
            let parser = MultipartParser(boundary: boundary)
            var parts: [(headers: [String: String], body: [UInt8])] = []
            var headers: [String: String] = [:], data: [UInt8] = []
            parser.onHeader = { k, v in headers[k.lowercased()] = v }
            parser.onBody = { buf in data.append(contentsOf: buf.readableBytesView) }
            parser.onPartComplete = { parts.append((headers, data)); headers = [:]; data = [] }
            do { try parser.execute(raw) } catch {
                throw APIError(.badImage, "unreadable multipart/form-data body: \(error)")
            }
            guard let part = parts.first(where: { ($0.headers["content-disposition"] ?? "").contains("name=\"image\"") }) else {
                throw APIError(.badImage, "multipart/form-data has no field named 'image'")
            }
            return part.body
        default:
            throw APIError(.unsupportedMediaType,
                           "Content-Type \(mediaType) is not accepted: send image/png, image/jpeg, image/webp, application/octet-stream or multipart/form-data")
        }
    }

    private func multipartBoundary(_ contentType: String) -> String? {
        for part in contentType.split(separator: ";").dropFirst() {
            let kv = part.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            if kv.count == 2, kv[0].lowercased() == "boundary" {
                let b = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
                return b.isEmpty ? nil : b
            }
        }
        return nil
    }

    private func imageResponse(_ r: JobResult, names: [String]) -> Response {
        var h = HTTPFields()
        let mime: String
        switch r.format {
        case .png: mime = "image/png"
        case .jpeg: mime = "image/jpeg"
        case .webp: mime = "image/webp"
        }
        h[.contentType] = mime
        h[.contentDisposition] = "inline; filename=\"enhanced.\(r.format.fileExtension)\""
        h[HTTPField.Name("Server-Timing")!] = serverTiming(r.timings)
        h[HTTPField.Name("X-Enhance-Peak-Bytes")!] = String(r.peakBytes)
        h[HTTPField.Name("X-Enhance-Estimate-Bytes")!] = String(r.estimateBytes)
        if let f = r.faces { h[HTTPField.Name("X-Enhance-Faces")!] = String(f) }
        if let t = r.tiles { h[HTTPField.Name("X-Enhance-Tiles")!] = t }
        if let f = r.fallback { h[HTTPField.Name("X-Enhance-Fallback")!] = f }
        h[HTTPField.Name("X-Enhance-Model")!] = names.joined(separator: ",")
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: r.bytes)))
    }

    /// `Server-Timing` (milliseconds), stages in pipeline order, then queue and total.
    func serverTiming(_ t: [String: Double]) -> String {
        let order = ["queue", "decode", "upscale", "detect", "align", "restore", "parse", "paste", "background", "encode", "total"]
        let keys = t.keys.sorted { a, b in
            let ia = order.firstIndex(of: a) ?? 5, ib = order.firstIndex(of: b) ?? 5
            return ia != ib ? ia < ib : a < b
        }
        return keys.map { k in
            let name = String(k.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
            return "\(name);dur=\(String(format: "%.1f", t[k]! * 1000))"
        }.joined(separator: ", ")
    }

    func modelList() -> ModelListBody {
        let loaded = Set(cache.loadedNames.flatMap { $0.split(separator: "+").map(String.init) })
        var models: [ModelListBody.Model] = []
        for e in ModelCatalog.all {
            let installed = factory.locator.find(e.name, ncnn: RealESRGANModelZoo.info(named: e.name)?.ncnnName) != nil
            let kind: String
            switch e.kind {
            case .upscaler: kind = "upscale"
            case .faceRestorer: kind = "restore"
            case .detector: kind = "detector"
            case .parser: kind = "parser"
            }
            models.append(.init(name: e.name, kind: kind, scale: RealESRGANModelZoo.info(named: e.name)?.scale,
                                installed: installed, loaded: loaded.contains(e.name)))
        }
        return ModelListBody(models: models, known: ModelCatalog.all.map(\.name),
                             installed: models.filter(\.installed).map(\.name), loaded: loaded.sorted())
    }

    struct ModelListBody: Codable, Sendable {
        struct Model: Codable, Sendable {
            let name: String
            let kind: String
            let scale: Int?
            let installed: Bool
            let loaded: Bool
            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(name, forKey: .name); try c.encode(kind, forKey: .kind)
                try c.encode(scale, forKey: .scale)  // null, not absent
                try c.encode(installed, forKey: .installed); try c.encode(loaded, forKey: .loaded)
            }
        }
        let models: [Model]
        let known: [String]
        let installed: [String]
        let loaded: [String]
    }

    struct ReadyBody: Codable { let status: String; let loaded: [String] }
}

/// Readiness and draining, read by the probes and the handlers.
final class ServerState: @unchecked Sendable {
    enum Readiness { case loading, ready, failed(String), draining, lost(TensorError) }
    private let lock = NSLock()
    private var preloaded = false
    private var failure: String?
    private var draining = false
    private var loss: TensorError?
    private var shutdown: (@Sendable () -> Void)?

    var readiness: Readiness {
        lock.lock(); defer { lock.unlock() }
        if let loss { return .lost(loss) }
        if draining { return .draining }
        if let f = failure { return .failed(f) }
        return preloaded ? .ready : .loading
    }
    var isDraining: Bool { lock.lock(); defer { lock.unlock() }; return draining }
    func setPreloaded() { lock.lock(); preloaded = true; lock.unlock() }
    func setPreloadFailure(_ m: String) { lock.lock(); failure = m; lock.unlock() }
    func setDraining() { lock.lock(); draining = true; lock.unlock() }
    /// The device loss that stops the server, if one did.
    var lost: TensorError? { lock.withLock { loss } }
    /// What starts the shutdown once the device is lost (`run` sets it).
    func onLost(_ start: @escaping @Sendable () -> Void) { lock.withLock { shutdown = start } }
    /// Records the loss and starts the shutdown; false when one was recorded already.
    func setLost(_ e: TensorError) -> Bool {
        lock.lock()
        guard loss == nil else { lock.unlock(); return false }
        loss = e
        let start = shutdown
        lock.unlock()
        start?()
        return true
    }
}

/// A service whose graceful shutdown (the first of the group's: it is started last) turns the server to draining
/// before the HTTP server stops accepting and finishes its requests.
struct DrainWatcher: Service {
    let onDrain: @Sendable () async -> Void
    func run() async throws {
        try? await gracefulShutdown()
        await onDrain()
    }
}

/// Errors as JSON with their status, and every request counted by route and status.
struct APIErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let metrics: ServerMetrics
    static var knownPaths: [String: HTTPRequest.Method] { EnhanceServer.routes }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        let path = request.uri.path
        let route = Self.knownPaths[path] != nil ? path : "other"
        var response: Response
        do {
            response = try await next(request, context)
        } catch {
            var e = APIError.from(error)
            if e.code == APIError.Code.notFound.rawValue, let m = Self.knownPaths[path], m != request.method {
                e = APIError(.methodNotAllowed, "\(path) accepts \(m.rawValue) only")
            }
            if e.status == .internalServerError { context.logger.error("\(request.method) \(path): \(e.message)") }
            if e.code == APIError.Code.timeout.rawValue { metrics.rejected("timeout") }
            response = e.response()
            if e.status == .methodNotAllowed, let m = Self.knownPaths[path] { response.headers[.allow] = m.rawValue }
        }
        // image requests end their connection (a client that goes away mid-request cancels it, which needs the
        // connection to itself): say so, so that clients do not reuse it
        if request.method == .post { response.headers[.connection] = "close" }
        metrics.request(route: route, status: Int(response.status.code), seconds: secondsSince(start))
        return response
    }
}

func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    let data = (try? enc.encode(value)) ?? Data("{}".utf8)
    var h = HTTPFields()
    h[.contentType] = "application/json"
    return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

/// `op`'s result, or 504 timeout after `limit` (the operation is cancelled; whatever it holds, it gives back when it
/// stops). Cancelling the caller (client gone) cancels the operation and answers at once.
func withTimeout<T: Sendable>(_ limit: Duration, _ op: @escaping @Sendable () async throws -> T) async throws -> T {
    let work = Task { try await op() }
    let once = OnceContinuation<T>()
    return try await withTaskCancellationHandler {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            once.set(c)
            let timer = Task {
                try? await Task.sleep(for: limit)
                if Task.isCancelled { return }
                work.cancel()
                once.resume(.failure(APIError(.timeout, "the request took longer than the server's limit of \(limit)")))
            }
            Task {
                let r = await work.result
                timer.cancel()
                once.resume(r)
            }
        }
    } onCancel: {
        work.cancel()
        once.resume(.failure(CancellationError()))
    }
}

/// A continuation resumed by whichever comes first.
final class OnceContinuation<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var continuation: CheckedContinuation<T, any Error>?
    private var early: Result<T, any Error>?

    func set(_ c: CheckedContinuation<T, any Error>) {
        lock.lock()
        if let r = early { lock.unlock(); c.resume(with: r); return }
        continuation = c
        lock.unlock()
    }

    func resume(_ r: Result<T, any Error>) {
        lock.lock()
        guard let c = continuation else {
            if early == nil { early = r }
            lock.unlock(); return
        }
        continuation = nil
        early = r  // later callers find it spent
        lock.unlock()
        c.resume(with: r)
    }
}
