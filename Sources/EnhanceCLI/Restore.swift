import ArgumentParser
import Checkpoint
import Foundation
import ImageIO
import Models
import Pipeline
import TensorCore

extension RestoreMaskKind: ExpressibleByArgument {}

/// Raw-network runners of `enhance forward` for the face networks (registered in `ForwardRegistry.runners`).
enum FaceForwardRunners {
    /// `ENHANCE_FORWARD_REPEAT=N`: run the network N more times after the first and print each time, the median and
    /// the engine's peak live bytes plus the process peak RSS on stderr (a benchmark aid).
    static func timed(_ backend: any Backend, _ body: () throws -> Void) rethrows {
        let n = Int(ProcessInfo.processInfo.environment["ENHANCE_FORWARD_REPEAT"] ?? "") ?? 0
        guard n > 0 else { try body(); return }
        var times: [Double] = []
        for i in 0...n {
            if i == 1 { backend.resetPeak() }
            let t = ContinuousClock.now
            try body()
            times.append(secondsSince(t))
        }
        let runs = times.dropFirst().sorted()
        let m = backend.memoryStats
        let line = String(format: "forward: first %.3f s, then %@ s, median %.3f s; engine peak live %.1f MiB (reserved %.1f MiB); peak RSS %.1f MiB\n",
                          times[0], times.dropFirst().map { String(format: "%.3f", $0) }.joined(separator: " / "), runs[runs.count / 2],
                          Double(m.peakLiveBytes) / 1048576, Double(m.peakReservedBytes) / 1048576, Double(peakRSSBytes() ?? 0) / 1048576)
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// GPEN FullGenerator: input N×3×S×S RGB in [-1, 1] → `output` N×3×S×S.
    static let gpen: ForwardRegistry.Runner = { ckpt, _, input, backend in
        let g = try GPENGenerator(stateDict: ckpt.stateDict, backend: backend)
        let x = try backend.upload(input)
        var y: Tensor?
        try timed(backend) { y = try g.forward(x) }
        return [("output", try backend.download(y!))]
    }
    /// RetinaFace: input 1×3×H×W (BGR − mean) → `loc` [1,N,4], `conf` [1,N,2] (softmaxed), `landms` [1,N,10], `priors` [N,4].
    static let retinaFace: ForwardRegistry.Runner = { ckpt, _, input, backend in
        let net = try RetinaFace(stateDict: ckpt.stateDict, backend: backend)
        let x = try backend.upload(input)
        var out: RetinaFaceRawOutput?
        try timed(backend) { out = try net.forward(x) }
        let r = out!
        let n = r.count
        return [("loc", try HostTensor(shape: [1, n, 4], data: r.loc)), ("conf", try HostTensor(shape: [1, n, 2], data: r.conf)),
                ("landms", try HostTensor(shape: [1, n, 10], data: r.landms)),
                ("priors", try HostTensor(shape: [n, 4], data: RetinaFace.priors(height: input.shape[2], width: input.shape[3])))]
    }
    /// ParseNet: input N×3×H×W RGB in [-1, 1] → `out_mask` (logits) and `out_img`.
    static let parseNet: ForwardRegistry.Runner = { ckpt, _, input, backend in
        let net = try ParseNet(stateDict: ckpt.stateDict, backend: backend)
        let x = try backend.upload(input)
        var out: (Tensor, Tensor)?
        try timed(backend) { out = try net.forward(x) }
        let (m, i) = out!
        return [("out_mask", try backend.download(m)), ("out_img", try backend.download(i))]
    }
}

/// A restore setup failure with its message.
struct RestoreCommandError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// `enhance restore`: GPEN face restoration of photos (detect → align → GPEN → parse mask → paste back), as a batch.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restore faces with GPEN (RetinaFace detection, ParseNet mask, paste-back).",
        discussion: """
        Follows upstream GPEN's FaceEnhancement: faces scoring ≥ 0.9 are aligned to the GPEN size, restored, masked \
        with ParseNet (classes other than background, hat and cloth; 26 px border; Gaussian blur) and pasted back with \
        per-pixel max compositing. Without --parser the feathered rectangular mask is used (and the log says so). \
        Models may be files or names looked up in the models folder (GPEN-BFR-512, RetinaFace-R50, ParseNet-latest).
        """)

    @Argument(help: "Image files or folders.")
    var inputs: [String] = []

    @Option(name: [.customShort("o"), .long], help: "Output folder (created if missing).")
    var output: String = "results"

    @Option(help: "GPEN weights (file, or a name such as GPEN-BFR-512 in the models folder).")
    var gpen: String

    @Option(help: "RetinaFace weights (file or name; default: RetinaFace-R50, else RetinaFace-mnet025, in the models folder).")
    var detector: String?

    @Option(help: "ParseNet weights (file or name; default: ParseNet-latest in the models folder, else the rectangular mask).")
    var parser: String?

    @Option(help: "GPEN size: auto (from the weights) or the expected size (checked against the weights).")
    var size: String = "auto"

    @Option(help: "Blend restored·alpha + original·(1 − alpha) per face, 0...1.")
    var alpha: Double = 1

    @Option(help: "Paste mask: parse (ParseNet) or rect (feathered rectangle).")
    var mask: RestoreMaskKind = .parse

    @Flag(help: "Inputs are already aligned faces: restore them directly (no detection, no paste-back).")
    var aligned = false

    @Flag(help: "Restore only the face closest to the image centre.")
    var onlyCenterFace = false

    @Flag(help: "Also write cropped_faces/, restored_faces/ and cmp/ (crop | restored) next to the outputs.")
    var saveFaces = false

    @Flag(help: "Match each restored face's colour statistics (Lab) to the original crop.")
    var colorMatch = false

    @Option(help: "Background upscaling: none, bilinear, or a Real-ESRGAN model name or file.")
    var bgUpsampler: String = "none"

    @Option(help: "Output scale (needs --bg-upsampler; default 2 with an upsampler, else 1).")
    var upscale: Int?

    @Option(help: "Faces per GPEN pass (same results up to float rounding; more memory).")
    var faceBatch: Int = 1

    @Option(help: "Suffix of output names: <name><suffix>.<ext>.")
    var suffix: String = ""

    @Option(help: "Output format: auto (the input's), png, jpg or webp.")
    var ext: BatchOutputExtension = .auto

    @Option(help: "JPEG/WebP quality 1-100.")
    var quality: Int?

    @OptionGroup var engine: EngineOptions
    @OptionGroup var models: ModelsDirectoryOption

    @OptionGroup var batch: BatchFlags

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one input file or folder") }
        if !(0...1).contains(alpha) { throw ValidationError("--alpha must be in 0...1, got \(alpha)") }
        if let u = upscale, !(1...8).contains(u) { throw ValidationError("--upscale must be 1...8, got \(u)") }
        if (upscale ?? 1) > 1 && bgUpsampler == "none" {
            throw ValidationError("--upscale \(upscale!) needs --bg-upsampler (bilinear or a Real-ESRGAN model)")
        }
        if size != "auto" && Int(size) == nil { throw ValidationError("--size must be auto or a number, got '\(size)'") }
        if let q = quality, !(1...100).contains(q) { throw ValidationError("--quality must be 1-100, got \(q)") }
        if !(1...64).contains(faceBatch) { throw ValidationError("--face-batch must be 1...64, got \(faceBatch)") }
    }

    /// A file path, or a model name looked up in the models folders.
    func locate(_ nameOrPath: String, what: String) throws -> URL {
        try ModelResolver.locate(nameOrPath, what: what, in: models.searchPath())
    }

    func log(_ s: String) { if !batch.quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) } }

    func makeRestorer(backend: any Backend) throws -> FaceRestorer {
        let gpenURL = try locate(gpen, what: "--gpen")
        let g = try GPENGenerator(contentsOf: gpenURL, backend: backend)
        if let s = Int(size), s != g.size {
            throw RestoreCommandError("--size \(s), but \(gpenURL.path) is a GPEN-\(g.size) (channel_multiplier \(g.configuration.channelMultiplier), narrow \(g.configuration.narrow))")
        }
        var det: RetinaFace?
        if !aligned {
            let url: URL
            do { url = try ModelResolver.detector(detector, in: models.searchPath()) }
            catch where detector == nil { throw RestoreCommandError("\(error), or use --aligned") }
            det = try RetinaFace(contentsOf: url, backend: backend)
        }
        var par: ParseNet?
        if mask == .parse && !aligned {
            if let p = parser { par = try ParseNet(contentsOf: locate(p, what: "--parser"), backend: backend) }
            else if let u = try? locate("ParseNet-latest", what: "--parser") { par = try ParseNet(contentsOf: u, backend: backend) }
        }
        var o = RestoreOptions()
        o.alpha = alpha; o.mask = mask; o.aligned = aligned; o.onlyCenterFace = onlyCenterFace; o.colorMatch = colorMatch
        o.upscale = upscale ?? (bgUpsampler == "none" ? 1 : 2)
        o.faceBatch = faceBatch
        var bg: (any BackgroundUpsampler)?
        switch bgUpsampler.lowercased() {
        case "none": bg = nil
        case "bilinear": bg = BilinearUpsampler()
        default: bg = try realESRGAN(bgUpsampler, scale: o.upscale, backend: backend)
        }
        let r = try FaceRestorer(gpen: g, detector: det.map { RetinaFaceDetector($0) }, parser: par, background: bg, options: o)
        log("GPEN-\(g.size) (style_dim \(g.configuration.styleDim), channel_multiplier \(g.configuration.channelMultiplier), narrow \(g.configuration.narrow)) from \(gpenURL.lastPathComponent) on \(backend.name)")
        if let d = det { log("detector: RetinaFace \(d.configuration.backbone.rawValue)") }
        if !aligned {
            if r.effectiveMask == .rect && mask == .parse { log("no parser weights given: using the rectangular mask (--mask rect)") }
            else { log("mask: \(r.effectiveMask.rawValue)") }
        }
        if let bg { log("background: \(bg.name) ×\(o.upscale)") }
        return r
    }

    func realESRGAN(_ nameOrPath: String, scale: Int, backend: any Backend) throws -> BackgroundUpsampler {
        let loaded: LoadedSuperResolutionModel
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) {
            loaded = try RealESRGANLoader.load(URL(fileURLWithPath: expanded), backend: backend)
        } else {
            switch try ModelResolver.resolve(name: nameOrPath, denoiseStrength: 0.5, dirs: models.searchPath()) {
            case .file(let u): loaded = try RealESRGANLoader.load(u, backend: backend)
            case let .dni(a, b, wa, wb): loaded = try RealESRGANLoader.loadDNI(a, b, wa: wa, wb: wb, backend: backend)
            }
        }
        var o = UpscaleOptions()
        o.outscale = Double(scale)
        o.tile = 400
        return RealESRGANBackground(upscaler: try Upscaler(network: loaded.network, options: o), name: nameOrPath)
    }

    func run() async throws {
        let restorer: FaceRestorer
        do {
            restorer = try makeRestorer(backend: engine.makeBackend())
        } catch {
            FileHandle.standardError.write(Data("enhance restore: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let b = try batch.options(output: output, suffix: suffix, ext: ext)
        let enc = UpscaleEncoding(quality: quality).encodeOptions
        let processor = RestoreProcessor(restorer: restorer, saveFaces: saveFaces, encodeOptions: enc)
        let summary = try await batch.run("restore", inputs: inputs, processor: processor, options: b)
        if summary.failed > 0 { throw ExitCode(1) }
    }
}
