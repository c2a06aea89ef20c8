import EnhanceKit
import Foundation
import ImageIO
import Models
import Pipeline
import TensorCore

/// What one processed image returns to its client.
struct JobResult: Sendable {
    let bytes: Data
    let format: BatchImageFormat
    /// Stage name → seconds (the pipeline's own stages plus queue, decode, encode, total).
    let timings: [String: Double]
    let faces: Int?
    /// How the image was tiled, when it was ("256×400, 2 passes").
    let tiles: String?
    /// Why the image was computed again another way ("fp16 → fp32: …"), when it was.
    let fallback: String?
    /// Engine tensor peak of this request (bytes), measured while it held the engine.
    let peakBytes: Int
    /// What admission reserved for it (bytes).
    let estimateBytes: Int
}

/// Runs image requests: builds the same processors the CLI builds (through EnhanceKit, with networks cached),
/// estimates each request's peak from its header, reserves it with `MemoryAdmission`, then decodes, computes
/// (engine held) and encodes through the processor's own load/compute/store, so a response is byte for byte what
/// `enhance upscale|restore|chain` writes for the same file and settings.
final class ImageJobs: @unchecked Sendable {
    let configuration: ServerConfiguration
    let lane: EngineLane
    let factory: ModelFactory
    let admission: MemoryAdmission
    let metrics: ServerMetrics
    let workDirectory: URL
    private let lock = NSLock()
    private var probes: [String: Int] = [:]
    /// Mean seconds a request held its reservation (for Retry-After).
    private var meanServiceSeconds = 1.0

    init(configuration: ServerConfiguration, lane: EngineLane, factory: ModelFactory, admission: MemoryAdmission,
         metrics: ServerMetrics) throws {
        self.configuration = configuration
        self.lane = lane
        self.factory = factory
        self.admission = admission
        self.metrics = metrics
        Self.removeWorkFoldersOfEndedServers(in: configuration.temporaryDirectory)
        workDirectory = configuration.temporaryDirectory.appendingPathComponent("enhance-serve-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: workDirectory) }

    /// Removes the work folders (`enhance-serve-PID-…`) of servers that were killed — SIGKILL, the OOM killer — and so
    /// never removed their own: those whose process is gone. A live process, or another user's folder, is left alone.
    static func removeWorkFoldersOfEndedServers(in directory: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix("enhance-serve-") {
            guard let pid = pid_t(name.dropFirst("enhance-serve-".count).prefix { $0.isNumber }), pid > 0, pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH { try? FileManager.default.removeItem(at: directory.appendingPathComponent(name)) }
        }
    }

    /// After the last request: drops the prepared processors (their models, and the closures through which they hold
    /// this object) and removes the work folder.
    func close() {
        lock.withLock {
            prepared.removeAll()
            preparedOrder.removeAll()
        }
        try? FileManager.default.removeItem(at: workDirectory)
    }

    // MARK: processors

    /// A processor for one request with its estimator (both built with the engine held: loading and probing use it).
    struct Prepared: Sendable {
        let run: @Sendable (BatchItem) async throws -> (BatchNotes, Int)
        let estimate: @Sendable (Int, Int) throws -> Int
    }

    private var prepared: [String: Prepared] = [:]
    private var preparedOrder: [String] = []
    private var preparing: [String: Task<Prepared, any Error>] = [:]

    /// The processor for `p`'s settings: built once with the engine held (loading weights, then a first estimate
    /// that runs and caches the memory probes), then reused, so later requests with the same settings estimate
    /// without waiting for the engine. Requests with the same settings arriving while it is built wait for that build
    /// (one processor per settings: with `--image-batch` their runs can merge only in the same forwards).
    func prepare(_ p: JobParameters) async throws -> Prepared {
        let key = "\(p.operation)|\(String(describing: p.upscale))|\(String(describing: p.restore))|\(p.quality ?? -1)"
        enum Lookup { case ready(Prepared), building(Task<Prepared, any Error>) }
        let found = lock.withLock { () -> Lookup in
            if let hit = prepared[key] { return .ready(hit) }
            if let running = preparing[key] { return .building(running) }
            let t = Task { () throws -> Prepared in
                defer { self.lock.withLock { self.preparing[key] = nil } }
                let built = try await self.lane.run { () -> Prepared in
                    let made = try self.build(p)
                    _ = try? made.estimate(64, 64)  // fills the probe caches while the engine is ours
                    return made
                }.value
                self.lock.withLock {
                    self.prepared[key] = built
                    self.preparedOrder.append(key)
                    if self.preparedOrder.count > 32 { self.prepared[self.preparedOrder.removeFirst()] = nil }
                }
                return built
            }
            preparing[key] = t
            return .building(t)
        }
        switch found {
        case let .ready(hit): return hit
        case let .building(task): return try await task.value
        }
    }

    /// Builds the processor (the caller holds the engine).
    private func build(_ p: JobParameters) throws -> Prepared {
        let encoding = UpscaleEncoding(quality: p.quality)
        let maxPixels = configuration.maxPixels
        switch p.operation {
        case .upscale:
            let make: @Sendable (any Backend) throws -> UpscaleProcessor = { backend in
                UpscaleProcessor(upscaler: try self.upscaler(p.upscale!, backend: backend), encoding: encoding, maxPixels: maxPixels)
            }
            let built = try onTheEngine(make), proc = built.processor
            let up = proc.upscaler
            share([up.replay])
            return Prepared(run: runner(built, make), estimate: { w, h in try self.upscaleEstimate(up, w, h) })
        case .restore:
            let make: @Sendable (any Backend) throws -> RestoreProcessor = { backend in
                RestoreProcessor(restorer: try self.factory.restorer(p.restore!, backend: backend), encodeOptions: encoding.encodeOptions)
            }
            let built = try onTheEngine(make), proc = built.processor
            let r = proc.restorer
            share(r.replays)
            return Prepared(run: runner(built, make), estimate: { w, h in try self.restoreEstimate(r, w, h) })
        case .chain:
            let make: @Sendable (any Backend) throws -> ChainProcessor = { backend in
                try ChainProcessor(upscale: UpscaleProcessor(upscaler: try self.upscaler(p.upscale!, backend: backend), encoding: encoding, maxPixels: maxPixels),
                                   restore: RestoreProcessor(restorer: try self.factory.restorer(p.restore!, backend: backend),
                                                             encodeOptions: encoding.encodeOptions))
            }
            let built = try onTheEngine(make), proc = built.processor
            let up = proc.upscale.upscaler, r = proc.restore.restorer
            share([up.replay] + r.replays)
            return Prepared(run: runner(built, make), estimate: { w, h in
                let (ow, oh) = up.outputSize(width: w, height: h)
                return max(try self.upscaleEstimate(up, w, h), try self.restoreEstimate(r, ow, oh)) + w * h * 16
            })
        }
    }

    /// The processors `make` builds on the engine. With `--device auto` on a GPU, models that do not fit its free
    /// memory load on the CPU instead (said on stderr), as the CLI's do; then that settings' requests compute there.
    private func onTheEngine<P>(_ make: (any Backend) throws -> P) throws -> (processor: P, backend: any Backend) {
        do {
            return (try make(lane.backend), lane.backend)
        } catch let e as TensorError where e.isAllocationFailure {
            guard let cpu = ModelFactory.cpuFallback(configuration.engine, for: lane.backend) else { throw e }
            configuration.engine.warnings?("--device auto: the models do not fit cuda:\(configuration.engine.deviceOrdinal) (\(e)); these settings run on the CPU")
            let b = try fallbackBackend(cpu)
            return (try make(b), b)
        }
    }

    /// Runs `proc`; with fp16, an image whose run gives NaN or infinite values is computed again by the same models on
    /// an fp32 backend of the same device; with `--device auto` on a GPU, an image it cannot hold even with the
    /// smallest tile or one face per pass is computed on the CPU — each fallback's backend created on first need and
    /// shared by every settings, as the CLI does. `X-Enhance-Fallback` says which and why.
    private func runner<P: BatchProcessor>(_ built: (processor: P, backend: any Backend), _ make: @escaping @Sendable (any Backend) throws -> P)
        -> @Sendable (BatchItem) async throws -> (BatchNotes, Int) {
        let proc = built.processor
        let engine = configuration.engine
        var fallbacks: [FallbackProcessor<P>.Fallback] = []
        if let twin = engine.overflowFallback {
            fallbacks.append(.overflow(name: EngineConfiguration.overflowFallbackName) { try make(self.fallbackBackend(twin)) })
        }
        if let cpu = ModelFactory.cpuFallback(engine, for: built.backend) {
            fallbacks.append(.onTheCPU(from: "cuda:\(engine.deviceOrdinal)") { try make(self.fallbackBackend(cpu)) })
        }
        guard !fallbacks.isEmpty else { return { try await self.execute(proc, $0) } }
        let wrapped = FallbackProcessor(proc, fallbacks: fallbacks)
        return { try await self.execute(wrapped, $0) }
    }

    private var fallbackEngines: [(configuration: EngineConfiguration, backend: any Backend)] = []

    /// The backend of a fallback (`c`: the overflow twin, or the CPU of `--device auto`), made once and shared by
    /// every settings.
    private func fallbackBackend(_ c: EngineConfiguration) throws -> any Backend {
        try lock.withLock {
            if let made = fallbackEngines.first(where: { $0.configuration == c }) { return made.backend }
            let b = try ModelFactory.makeBackend(c)
            fallbackEngines.append((c, b))
            return b
        }
    }

    /// `--image-batch`: runs of requests computing at once merge in these forwards, counted in the metrics.
    private func share(_ replays: [ReplayedForward]) {
        guard configuration.imageBatch > 1 else { return }
        for r in replays {
            r.mergeLimit = configuration.imageBatch
            r.onMerged = { [metrics] n in metrics.merged(n) }
        }
    }

    /// The upscaler `c` describes. Without a tile its tile search gets the server's budget plus what that search
    /// counts but a request does not reserve (the process's base and the weights, already resident).
    private func upscaler(_ c: UpscaleConfiguration, backend: any Backend) throws -> Upscaler {
        let loaded = try factory.loadSuperResolution(c, backend: backend)
        var o = c.options
        if let m = o.maxMemory { o.maxMemory = m + Upscaler.baseOverhead + loaded.network.parameterCount * 4 }
        return try Upscaler(network: loaded.network, options: o)
    }

    /// load (off the cooperative pool), compute (engine held, peak measured), store: the batch runner's stages.
    private func execute<P: BatchProcessor>(_ proc: P, _ item: BatchItem) async throws -> (BatchNotes, Int) {
        var notes = BatchNotes()
        var t = ContinuousClock.now
        let loaded = try await lane.offload { var n = BatchNotes(); let l = try await proc.load(item, notes: &n); return (l, n) }
        notes = loaded.1
        notes.timings["decode"] = notes.timings["decode"] ?? secondsSince(t)
        try Task.checkCancellation()
        let measured = try await lane.run { var n = BatchNotes(); let c = try await proc.compute(loaded.0, item: item, notes: &n); return (c, n) }
        notes.take(measured.value.1)
        try Task.checkCancellation()
        t = ContinuousClock.now
        let temp = item.output + ".part"
        let stored = try await lane.offload { var n = BatchNotes(); try await proc.store(measured.value.0, item: item, temporaryPath: temp, notes: &n); return n }
        notes.take(stored)
        notes.timings["encode"] = notes.timings["encode"] ?? secondsSince(t)
        try FileManager.default.moveItem(atPath: temp, toPath: item.output)
        return (notes, measured.peakBytes)
    }

    // MARK: estimates

    /// `UpscaleProcessor.memoryEstimate` for the searched tile; the search throws when the image does not fit the
    /// budget even with the smallest tile.
    private func upscaleEstimate(_ up: Upscaler, _ w: Int, _ h: Int) throws -> Int {
        let tile = try up.tiling(width: w, height: h)
        return UpscaleProcessor(upscaler: up).memoryEstimate(width: w, height: h, tile: tile)
    }

    /// The largest of the stages' measured peaks (GPEN on `faceBatch` crops, RetinaFace per detected pixel, ParseNet,
    /// the background upscaler's tiles) plus the image buffers at input and output size.
    private func restoreEstimate(_ r: FaceRestorer, _ w: Int, _ h: Int) throws -> Int {
        let s = r.gpen.size, n = r.options.faceBatch
        let gpen = probe("gpen \(ObjectIdentifier(r.gpen)) \(n)") {
            _ = try r.gpen.restore(batch: Array(repeating: [UInt8](repeating: 0, count: s * s * 3), count: n))
        }
        var detect = 0
        if let d = r.detector as? RetinaFaceDetector {
            let side = 256
            let perPixel = (probe("retinaface \(ObjectIdentifier(d.net))") {
                _ = try d.net.detect(bgr: [UInt8](repeating: 0, count: side * side * 3), width: side, height: side, options: d.options)
            } + side * side - 1) / (side * side)
            let sc = d.options.detectionScale(width: w, height: h)
            detect = Int(Double(w * h) * sc * sc) * perPixel
        }
        var parse = 0
        if let pn = r.parser {
            parse = probe("parsenet \(ObjectIdentifier(pn))") {
                _ = try pn.parse(bgr: [UInt8](repeating: 0, count: 512 * 512 * 3), width: 512, height: 512)
            }
        }
        var background = 0
        if let bg = r.background as? RealESRGANBackground { background = try upscaleEstimate(bg.upscaler, w, h) }
        let up = r.options.upscale
        return max(gpen, detect, parse, background) + w * h * 48 + (w * up) * (h * up) * 48
    }

    /// The tensor peak of `body`, measured once per key (the caller holds the engine).
    private func probe(_ key: String, _ body: () throws -> Void) -> Int {
        lock.lock()
        if let v = probes[key] { lock.unlock(); return v }
        lock.unlock()
        let scope = MemoryScope()
        let v = (try? scope.measure(body)) != nil ? scope.peakLiveBytes : 0
        lock.lock(); probes[key] = v; lock.unlock()
        return v
    }

    // MARK: one request

    /// Jobs still running (a timed-out one goes on until its model pass ends).
    let inFlight = InFlightCounter()

    /// Processes `upload` (already checked to be an image of `info`'s size) for `p`: prepare, estimate, admit, run.
    func run(_ p: JobParameters, upload: [UInt8], info: ImageInfo) async throws -> JobResult {
        await inFlight.begin()
        defer { Task { await inFlight.end() } }
        let start = ContinuousClock.now
        let prepared = try await prepare(p)
        // arithmetic on probes measured when the processor was prepared: no need to wait for the engine
        let estimate = try prepared.estimate(info.width, info.height)
        let queueStart = ContinuousClock.now
        do {
            try await admission.reserve(estimate)
        } catch let r as MemoryAdmission.Refusal {
            switch r {
            case .queueFull:
                metrics.rejected("queue_full")
                throw APIError(.queueFull, "the server is busy: \(admission.maxQueue) requests are already waiting; retry later",
                               retryAfter: retryAfterSeconds())
            case let .tooLarge(needed, capacity):
                metrics.rejected("too_large_for_memory")
                throw APIError(.tooLargeForMemory,
                               "a \(info.width)×\(info.height) image needs about \(needed >> 20) MiB for \(p.operation.rawValue), more than the server's \(capacity >> 20) MiB memory limit")
            case .draining:
                metrics.rejected("draining")
                throw APIError(.draining, "the server is shutting down")
            }
        } catch is CancellationError {
            metrics.rejected("cancelled")  // the client went away (or the time ran out) while it waited
            throw CancellationError()
        }
        let queueSeconds = secondsSince(queueStart)
        let held = ContinuousClock.now
        defer {
            let s = secondsSince(held)
            lock.withLock { meanServiceSeconds = 0.8 * meanServiceSeconds + 0.2 * s }
            Task { await admission.release(estimate) }
        }
        try Task.checkCancellation()

        let id = UUID().uuidString
        let inFormat = BatchImageFormat(rawValue: info.format.rawValue) ?? .png   // the same three formats
        let outFormat = p.format ?? inFormat
        let input = workDirectory.appendingPathComponent("\(id).in.\(inFormat.fileExtension)").path
        let output = workDirectory.appendingPathComponent("\(id).out.\(outFormat.fileExtension)").path
        defer {
            try? FileManager.default.removeItem(atPath: input)
            try? FileManager.default.removeItem(atPath: output)
            try? FileManager.default.removeItem(atPath: output + ".part")
        }
        try Data(upload).write(to: URL(fileURLWithPath: input))
        let item = BatchItem(input: input, relativePath: "upload", format: inFormat,
                             output: output, outputFormat: outFormat, inputBytes: upload.count)
        let (notes, peak) = try await prepared.run(item)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: output))
        var timings = notes.timings
        timings["queue"] = queueSeconds
        timings["total"] = secondsSince(start)
        metrics.memory(route: "/v1/\(p.operation.rawValue)", peak: peak, estimate: estimate)
        return JobResult(bytes: bytes, format: outFormat, timings: timings, faces: notes.faces, tiles: notes.tiles, fallback: notes.fallback,
                         peakBytes: peak, estimateBytes: estimate)
    }

    private func retryAfterSeconds() -> Int {
        lock.lock(); defer { lock.unlock() }
        return max(1, Int((meanServiceSeconds * Double(max(1, admission.maxQueue)) / Double(max(1, admission.maxActive))).rounded(.up)))
    }
}

/// Counts running jobs; `waitIdle()` returns when none is left (the server waits for it before it returns, so no
/// model pass outlives the engine).
actor InFlightCounter {
    private var count = 0
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func begin() { count += 1 }

    func end() {
        count -= 1
        if count == 0 { for w in waiters { w.resume() }; waiters.removeAll() }
    }

    func waitIdle() async {
        if count == 0 { return }
        await withCheckedContinuation { waiters.append($0) }
    }
}
