import BackendCUDA
import BackendDNNL
import Foundation
import Models
import Pipeline
import Synchronization
import TensorCore

/// The composition root: builds backends, upscalers, restorers and detectors from typed configurations, finding
/// weights through a `ModelLocator`. Front ends (CLI, bench, a service) hold one and never wire models themselves.
public struct ModelFactory: Sendable {
    public let locator: ModelLocator
    /// Loaded networks to reuse (a service's); nil: every call reads the weights.
    public let cache: ModelCache?

    public init(locator: ModelLocator, cache: ModelCache? = nil) { self.locator = locator; self.cache = cache }

    /// `load()`, or the network already cached for this file and backend.
    private func cached<T>(_ kind: String, _ urls: [URL], _ extra: String = "", names: [String]? = nil, backend: any Backend,
                           _ load: () throws -> T) throws -> T {
        guard let cache else { return try load() }
        let key = "\(kind)|\(urls.map(\.path).joined(separator: "|"))|\(extra)|\(ObjectIdentifier(backend as AnyObject))"
        return try cache.value(key, name: (names ?? urls.map(\.modelStem)).joined(separator: "+"), load)
    }

    /// The backend `engine` asks for (`auto`: cuda when it can be used here, else cpu).
    public static func makeBackend(_ engine: EngineConfiguration) throws -> any Backend {
        switch engine.device {
        case .reference where engine.layout == .nhwc, .cpu where engine.layout == .nhwc, .auto where engine.layout == .nhwc && !cuda.available:
            throw EnhanceError(.unsupported, "layout nhwc runs on the cuda device only (the CPU picks oneDNN's blocked layout itself)")
        case .reference: return ReferenceBackend()
        case .cuda: return try makeCUDABackend(engine)
        case .auto where cuda.available && !autoGaveUpOnCUDA.withLock({ $0 }):
            do { return try makeCUDABackend(engine) } catch {
                // a GPU the driver lists that will not start (busy in exclusive-process mode, its memory full,
                // kernels that do not compile): auto means the CPU then, said once, decided once per process
                let reason = (error as? EnhanceError)?.message ?? "\(error)"
                let first = autoGaveUpOnCUDA.withLock { gaveUp -> Bool in defer { gaveUp = true }; return !gaveUp }
                if first { engine.warnings?("--device auto: \(reason); running on the CPU") }
                do { return try makeBackend(engine.onTheCPU) } catch let e as EnhanceError {
                    throw EnhanceError(e.category, "--device auto: \(reason), and on the CPU: \(e.message)")
                }
            }
        case .cpu, .auto:
            guard engine.precision == .fp32 || engine.precision == .bf16 else {
                throw EnhanceError(.unsupported, "precision \(engine.precision.rawValue) runs on the cuda device only (the CPU computes in fp32, or bf16 with --precision bf16)")
            }
            let options = DNNLBackend.Options(threads: engine.threads, winograd: engine.winograd,
                                              precision: engine.precision == .bf16 ? .bf16 : .fp32)
            if options.precision == .bf16, let why = DNNLBackend.bf16Unavailable(emulation: options.bf16Emulation) {
                throw EnhanceError(.unsupported, "precision bf16 on cpu: \(why)")
            }
            let be = try DNNLBackend(options: options)
            be.diagnostics = engine.diagnostics
            return be
        }
    }

    /// Where `--device auto` moves work that `backend` cannot hold — models that do not fit its free memory, an image
    /// too large even with the smallest tile or one face per pass: the same settings on the CPU, when `engine` is auto,
    /// `backend` a GPU and the precision one the CPU computes (fp32); nil otherwise (the out-of-memory error stands).
    public static func cpuFallback(_ engine: EngineConfiguration, for backend: any Backend) -> EngineConfiguration? {
        guard engine.device == .auto, engine.precision == .fp32, backend is CUDABackend else { return nil }
        return engine.onTheCPU
    }

    private static func makeCUDABackend(_ engine: EngineConfiguration) throws -> any Backend {
        let precision: CUDABackend.Precision
        switch engine.precision {
        case .fp32: precision = .fp32
        case .tf32: precision = .tf32
        case .fp16: precision = .fp16
        case .bf16: throw EnhanceError(.unsupported, "precision bf16 is not implemented on cuda (use fp32, tf32 or fp16)")
        }
        do {
            let be = try CUDABackend(options: .init(precision: precision, layout: engine.layout == .nhwc ? .nhwc : .nchw,
                                                    device: engine.deviceOrdinal, benchmark: engine.cudnnBenchmark))
            be.diagnostics = engine.diagnostics
            return be
        } catch let TensorError.unsupported(_, message) {
            throw EnhanceError(.unsupported, "device cuda: \(message)")
        } catch {
            // the driver lists the GPU but it will not start (CUDA_ERROR_DEVICE_UNAVAILABLE when another process holds
            // it in exclusive-process mode, out of memory for the context or the kernels): unavailable as well
            throw EnhanceError(.unsupported, "device cuda:\(engine.deviceOrdinal) would not start: \(error)")
        }
    }

    /// Whether `auto` gave up on cuda in this process (then it uses the CPU without trying again).
    private static let autoGaveUpOnCUDA = Mutex(false)

    /// Whether the cuda device can be used here, and what it is or why not (probed once per process).
    public static let cuda: (available: Bool, detail: String) = CUDABackend.probe()

    /// The PCI bus of CUDA device `ordinal` ("00000000:17:00.0"), for NVML to sample the same GPU; nil when the driver
    /// cannot say. Throws `unsupported` with the driver's reason when CUDA or that device is not there ("CUDA
    /// unavailable: device 2 requested, the driver sees 2 (cuda:0…cuda:1)").
    public static func cudaPCIBusId(ordinal: Int = 0) throws -> String? {
        do { return try CUDALibrary.shared.get().device(ordinal).pciBusId }
        catch { throw EnhanceError(.unsupported, CUDABackend.reason(error)) }
    }

    /// A compute device this build knows, whether it can be used here, and what it is.
    public struct DeviceInfo: Sendable {
        public let device: EngineConfiguration.Device
        public let available: Bool
        public let detail: String
    }

    /// The devices `makeBackend` can create, with why one cannot be used here; `auto` picks the first available of
    /// cuda and cpu.
    public static var devices: [DeviceInfo] {
        [
            DeviceInfo(device: .cpu, available: true, detail: "oneDNN \(DNNLBackend.version), \(CPUInfo.isa)\(CPUInfo.isaCap.map { " (capped by MAX_CPU_ISA=\($0))" } ?? ""), \(CPUInfo.model)"),
            DeviceInfo(device: .reference, available: true, detail: "plain Swift, slow (the test oracle)"),
            DeviceInfo(device: .cuda, available: cuda.available, detail: cuda.detail),
        ]
    }

    /// Loads the Real-ESRGAN network `c` names (a file, a name, or a DNI pair for realesr-general-x4v3).
    public func loadSuperResolution(_ c: UpscaleConfiguration, backend: any Backend) throws -> LoadedSuperResolutionModel {
        switch c.model {
        case let .file(p):
            let url = URL(fileURLWithPath: (p as NSString).expandingTildeInPath)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw EnhanceError(.missingResource, "\(p): no such file")
            }
            return try cached("sr", [url], backend: backend) { try RealESRGANLoader.load(url, backend: backend) }
        case let .name(n):
            switch try locator.resolve(name: n, denoiseStrength: c.denoiseStrength) {
            case .file(let u): return try cached("sr", [u], names: [n], backend: backend) { try RealESRGANLoader.load(u, backend: backend) }
            case let .dni(a, b, wa, wb):
                return try cached("sr", [a, b], "\(wa),\(wb)", names: c.modelNames, backend: backend) { try RealESRGANLoader.loadDNI(a, b, wa: wa, wb: wb, backend: backend) }
            }
        }
    }

    /// The upscaler `c` describes, and the loaded model (for its name and notes).
    public func upscaler(_ c: UpscaleConfiguration, backend: any Backend) throws -> (Upscaler, LoadedSuperResolutionModel) {
        let loaded = try loadSuperResolution(c, backend: backend)
        return (try Upscaler(network: loaded.network, options: c.options), loaded)
    }

    /// RetinaFace with GPEN's detection settings (or `options`).
    public func detector(_ nameOrPath: String?, backend: any Backend, options: RetinaFaceDetectOptions = RetinaFaceDetectOptions()) throws -> (RetinaFaceDetector, URL) {
        let url = try locator.detector(nameOrPath)
        return (RetinaFaceDetector(try retinaFace(url, backend: backend), options: options), url)
    }

    /// The face restorer `c` describes; `log` receives what was loaded (and the rectangular-mask fallback).
    public func restorer(_ c: RestoreConfiguration, backend: any Backend, log: (String) -> Void = { _ in }) throws -> FaceRestorer {
        let gpenURL = try locator.locate(c.gpen, what: "GPEN weights")
        let g = try cached("gpen", [gpenURL], backend: backend) { try GPENGenerator(contentsOf: gpenURL, backend: backend) }
        if let s = c.expectedSize, s != g.size {
            throw EnhanceError(.badInput, "expected a GPEN-\(s), but \(gpenURL.path) is a GPEN-\(g.size) (channel_multiplier \(g.configuration.channelMultiplier), narrow \(g.configuration.narrow))")
        }
        let o = c.options
        var det: RetinaFace?
        if !o.aligned { det = try retinaFace(locator.detector(c.detector), backend: backend) }
        var par: ParseNet?
        if o.mask == .parse && !o.aligned {
            if let p = c.parser { par = try parseNet(locator.locate(p, what: "ParseNet weights"), backend: backend) }
            else if let u = try? locator.locate("ParseNet-latest", what: "ParseNet weights") { par = try parseNet(u, backend: backend) }
        }
        var bg: (any BackgroundUpsampler)?
        switch c.backgroundUpsampler.lowercased() {
        case "none": bg = nil
        case "bilinear": bg = BilinearUpsampler()
        default: bg = try backgroundUpscaler(c.backgroundUpsampler, scale: o.upscale, backend: backend)
        }
        let r = try FaceRestorer(gpen: g, detector: det.map { RetinaFaceDetector($0) }, parser: par, background: bg, options: o)
        log("GPEN-\(g.size) (style_dim \(g.configuration.styleDim), channel_multiplier \(g.configuration.channelMultiplier), narrow \(g.configuration.narrow)) from \(gpenURL.lastPathComponent) on \(backend.name)")
        if let d = det { log("detector: RetinaFace \(d.configuration.backbone.rawValue)") }
        if !o.aligned {
            if r.effectiveMask == .rect && o.mask == .parse { log("no parser weights given: using the rectangular mask") }
            else { log("mask: \(r.effectiveMask.rawValue)") }
        }
        if let bg { log("background: \(bg.name) ×\(o.upscale)") }
        return r
    }

    public func retinaFace(_ url: URL, backend: any Backend) throws -> RetinaFace {
        try cached("retinaface", [url], backend: backend) { try RetinaFace(contentsOf: url, backend: backend) }
    }

    public func parseNet(_ url: URL, backend: any Backend) throws -> ParseNet {
        try cached("parsenet", [url], backend: backend) { try ParseNet(contentsOf: url, backend: backend) }
    }

    /// A Real-ESRGAN background upsampler (file or name) at `scale`, tiled at 400 px as GPEN runs it.
    func backgroundUpscaler(_ nameOrPath: String, scale: Int, backend: any Backend) throws -> BackgroundUpsampler {
        var c = UpscaleConfiguration()
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        c.model = FileManager.default.fileExists(atPath: expanded) ? .file(expanded) : .name(nameOrPath)
        c.options.outscale = Double(scale)
        c.options.tile = 400
        return RealESRGANBackground(upscaler: try upscaler(c, backend: backend).0, name: nameOrPath)
    }
}

extension ModelFactory {
    /// The engine configurations parity tests run on: every device available here except the reference oracle, in
    /// each of its algorithm variants. A device added to `devices` and `makeBackend` is added here too, and so joins
    /// every parity test.
    public static var parityConfigurations: [(name: String, engine: EngineConfiguration)] {
        devices.filter { $0.available && $0.device != .reference }.flatMap { info -> [(name: String, engine: EngineConfiguration)] in
            var e = EngineConfiguration()
            e.device = info.device
            // cuda joins at fp32 (the parity tolerances are fp32's; tf32/fp16 are gated by scripts/device-check)
            guard info.device == .cpu else { return [(info.device.rawValue, e)] }
            return [false, true].map { winograd in
                e.winograd = winograd
                return ("cpu (oneDNN\(winograd ? ", winograd" : ", direct"))", e)
            }
        }
    }
}
