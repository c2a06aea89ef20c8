import ArgumentParser
import EnhanceKit
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

    @Option(help: "Tiles of equal size per network pass (1...64; same results up to float rounding; the activations grow with it). Worth it on a GPU.")
    var tileBatch: Int = 1

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
        if !(1...64).contains(tileBatch) { throw ValidationError("--tile-batch must be 1...64, got \(tileBatch)") }
        if prePad < 0 { throw ValidationError("--pre-pad must be ≥ 0") }
        if let s = outscale, !(s > 0 && s <= 64) { throw ValidationError("--outscale must be in (0, 64], got \(s)") }
        if !(0...1).contains(denoiseStrength) { throw ValidationError("-dn must be in [0, 1], got \(denoiseStrength)") }
    }

    /// The RealESRGANer settings these flags ask for.
    func upscaleOptions() throws -> UpscaleOptions {
        var o = UpscaleOptions()
        o.tile = tile; o.tilePad = tilePad; o.tileBatch = tileBatch; o.prePad = prePad; o.outscale = outscale
        o.alphaUpsampler = alphaUpsampler
        o.maxMemory = try memory.bytes()
        return o
    }

    /// The typed configuration EnhanceKit builds the upscaler from.
    func configuration() throws -> UpscaleConfiguration {
        var c = UpscaleConfiguration()
        c.model = modelPath.map { .file($0) } ?? .name(modelName)
        c.denoiseStrength = denoiseStrength
        c.options = try upscaleOptions()
        return c
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

    /// The typed configuration EnhanceKit builds the restorer from.
    var configuration: RestoreConfiguration {
        var c = RestoreConfiguration(gpen: gpen)
        c.detector = detector; c.parser = parser; c.expectedSize = Int(size)
        c.backgroundUpsampler = bgUpsampler
        c.options = restoreOptions
        return c
    }

    /// Builds the restorer; without --detector (and not --aligned) a missing default detector says which flags help.
    func makeRestorer(_ factory: ModelFactory, backend: any Backend, log: (String) -> Void) throws -> FaceRestorer {
        if !aligned && detector == nil {
            do { _ = try factory.locator.detector(nil) }
            catch { throw CommandError("\(error); pass --detector FILE, or --aligned for aligned faces") }
        }
        return try factory.restorer(configuration, backend: backend, log: log)
    }
}
