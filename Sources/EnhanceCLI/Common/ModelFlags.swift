import ArgumentParser
import Foundation
import Models
import Pipeline
import TensorCore

/// The Real-ESRGAN flags of `upscale` and `chain` (one declaration: same names, same help, same meaning).
struct UpscaleModelFlags: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("model-name"), .customLong("name")], help: "Model name (RealESRGAN_x4plus, RealESRNet_x4plus, RealESRGAN_x4plus_anime_6B, RealESRGAN_x2plus, realesr-animevideov3, realesr-general-x4v3).")
    var modelName: String = "RealESRGAN_x4plus"

    @Option(name: [.customShort("m"), .customLong("model-path")], help: "Weights file (.pth, .safetensors or ncnn .param); the architecture is detected from it.")
    var modelPath: String?

    @Option(name: [.customShort("s"), .long], help: "Final scale relative to the input (Lanczos-4 resize of the network output when it differs from the model scale). Default: the model's scale.")
    var outscale: Double?

    @Option(name: [.customShort("t"), .long], help: "Tile size in input pixels (0 = whole image).")
    var tile: Int = 0

    @Option(help: "Context pixels around each tile.")
    var tilePad: Int = 10

    @Option(help: "Reflect padding on the right/bottom before inference, cropped afterwards.")
    var prePad: Int = 0

    @Option(help: "Alpha channel upscaling: network (alias realesrgan), bicubic or bilinear.")
    var alphaUpsampler: AlphaUpsampler = .network

    @Option(name: [.customLong("dn", withSingleDash: true), .customLong("denoise-strength")], help: "realesr-general-x4v3 only: 1 = plain x4v3, 0 = the wdn model; in between a DNI blend of the two.")
    var denoiseStrength: Double = 0.5

    @OptionGroup var memory: MemoryOption

    func validate() throws {
        if tile < 0 { throw ValidationError("--tile must be ≥ 0") }
        if tilePad < 0 { throw ValidationError("--tile-pad must be ≥ 0") }
        if prePad < 0 { throw ValidationError("--pre-pad must be ≥ 0") }
        if let s = outscale, !(s > 0 && s <= 64) { throw ValidationError("--outscale must be in (0, 64], got \(s)") }
        if !(0...1).contains(denoiseStrength) { throw ValidationError("-dn must be in [0, 1], got \(denoiseStrength)") }
    }

    /// The RealESRGANer settings these flags ask for.
    func upscaleOptions() throws -> UpscaleOptions {
        var o = UpscaleOptions()
        o.tile = tile; o.tilePad = tilePad; o.prePad = prePad; o.outscale = outscale
        o.alphaUpsampler = alphaUpsampler
        o.maxMemory = try memory.bytes()
        return o
    }

    /// The named models this run needs (`--download` fetches the missing ones): the model, and for
    /// realesr-general-x4v3 with -dn ≠ 1 its wdn companion.
    var namesToFetch: [String] {
        guard modelPath == nil else { return [] }
        var names = [modelName]
        if denoiseStrength != 1, let c = RealESRGANModelZoo.info(named: modelName)?.denoiseCompanion { names.append(c) }
        return names
    }

    /// Loads the model from --model-path or by name from `dirs`.
    func loadModel(backend: any Backend, dirs: [URL]) throws -> LoadedSuperResolutionModel {
        if let p = modelPath {
            let url = URL(fileURLWithPath: (p as NSString).expandingTildeInPath)
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelLookupError(description: "--model-path \(p): no such file")
            }
            return try RealESRGANLoader.load(url, backend: backend)
        }
        switch try ModelResolver.resolve(name: modelName, denoiseStrength: denoiseStrength, dirs: dirs) {
        case .file(let u): return try RealESRGANLoader.load(u, backend: backend)
        case let .dni(a, bURL, wa, wb): return try RealESRGANLoader.loadDNI(a, bURL, wa: wa, wb: wb, backend: backend)
        }
    }
}

/// The GPEN flags of `restore` and `chain` (one declaration: same names, same help, same meaning).
struct RestoreModelFlags: ParsableArguments {
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

    func validate() throws {
        if !(0...1).contains(alpha) { throw ValidationError("--alpha must be in 0...1, got \(alpha)") }
        if let u = upscale, !(1...8).contains(u) { throw ValidationError("--upscale must be 1...8, got \(u)") }
        if (upscale ?? 1) > 1 && bgUpsampler == "none" {
            throw ValidationError("--upscale \(upscale!) needs --bg-upsampler (bilinear or a Real-ESRGAN model)")
        }
        if size != "auto" && Int(size) == nil { throw ValidationError("--size must be auto or a number, got '\(size)'") }
        if !(1...64).contains(faceBatch) { throw ValidationError("--face-batch must be 1...64, got \(faceBatch)") }
    }

    /// The `FaceRestorer` settings these flags ask for.
    var restoreOptions: RestoreOptions {
        var o = RestoreOptions()
        o.alpha = alpha; o.mask = mask; o.aligned = aligned; o.onlyCenterFace = onlyCenterFace; o.colorMatch = colorMatch
        o.upscale = upscale ?? (bgUpsampler == "none" ? 1 : 2)
        o.faceBatch = faceBatch
        return o
    }

    /// The named models this run needs (`--download` fetches the missing ones): GPEN, and unless --aligned GPEN's
    /// own detector and (for the parse mask) parser when none is given, and a named background upsampler.
    var namesToFetch: [String] {
        var names = [gpen]
        if !aligned {
            names.append(detector ?? "RetinaFace-R50")
            if mask == .parse { names.append(parser ?? "ParseNet-latest") }
        }
        if !["none", "bilinear"].contains(bgUpsampler.lowercased()) { names.append(bgUpsampler) }
        return names
    }

    /// Loads GPEN, the detector, the parser and the background upsampler from files or names in `dirs`.
    func makeRestorer(backend: any Backend, dirs: [URL], log: (String) -> Void) throws -> FaceRestorer {
        func locate(_ nameOrPath: String, what: String) throws -> URL { try ModelResolver.locate(nameOrPath, what: what, in: dirs) }
        let gpenURL = try locate(gpen, what: "--gpen")
        let g = try GPENGenerator(contentsOf: gpenURL, backend: backend)
        if let s = Int(size), s != g.size {
            throw RestoreCommandError("--size \(s), but \(gpenURL.path) is a GPEN-\(g.size) (channel_multiplier \(g.configuration.channelMultiplier), narrow \(g.configuration.narrow))")
        }
        var det: RetinaFace?
        if !aligned {
            let url: URL
            do { url = try ModelResolver.detector(detector, in: dirs) }
            catch where detector == nil { throw RestoreCommandError("\(error), or use --aligned") }
            det = try RetinaFace(contentsOf: url, backend: backend)
        }
        var par: ParseNet?
        if mask == .parse && !aligned {
            if let p = parser { par = try ParseNet(contentsOf: locate(p, what: "--parser"), backend: backend) }
            else if let u = try? locate("ParseNet-latest", what: "--parser") { par = try ParseNet(contentsOf: u, backend: backend) }
        }
        let o = restoreOptions
        var bg: (any BackgroundUpsampler)?
        switch bgUpsampler.lowercased() {
        case "none": bg = nil
        case "bilinear": bg = BilinearUpsampler()
        default: bg = try realESRGAN(bgUpsampler, scale: o.upscale, backend: backend, dirs: dirs)
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

    func realESRGAN(_ nameOrPath: String, scale: Int, backend: any Backend, dirs: [URL]) throws -> BackgroundUpsampler {
        let loaded: LoadedSuperResolutionModel
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) {
            loaded = try RealESRGANLoader.load(URL(fileURLWithPath: expanded), backend: backend)
        } else {
            switch try ModelResolver.resolve(name: nameOrPath, denoiseStrength: 0.5, dirs: dirs) {
            case .file(let u): loaded = try RealESRGANLoader.load(u, backend: backend)
            case let .dni(a, b, wa, wb): loaded = try RealESRGANLoader.loadDNI(a, b, wa: wa, wb: wb, backend: backend)
            }
        }
        var o = UpscaleOptions()
        o.outscale = Double(scale)
        o.tile = 400
        return RealESRGANBackground(upscaler: try Upscaler(network: loaded.network, options: o), name: nameOrPath)
    }
}
