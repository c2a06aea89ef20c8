import ArgumentParser
import Foundation
import ImageIO
import Pipeline

/// `enhance chain`: Real-ESRGAN then GPEN in one process, models loaded once; faces are detected on the
/// upscaled image. The stages are configured exactly as `enhance upscale` and `enhance restore` configure them.
struct Chain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upscale with Real-ESRGAN, then restore faces with GPEN on the upscaled image.",
        discussion: """
        One process, both models loaded once. Takes the model flags of `enhance upscale` (-n/-m, -s, -t, --tile-pad, \
        --pre-pad, -dn, --max-memory) and of `enhance restore` (--gpen, --detector, --parser, --alpha, --mask, \
        --only-center-face, --color-match, --save-faces, --face-batch), and the batch flags (resume, atomic outputs, \
        results.jsonl, --jobs, --shard).
        """)

    @Argument(help: "Image files or folders.")
    var inputs: [String] = []
    @Option(name: [.customShort("o"), .long], help: "Output folder (created if missing).")
    var output: String = "results"

    // Real-ESRGAN stage
    @Option(name: [.customShort("n"), .customLong("model-name")], help: "Real-ESRGAN model name.")
    var modelName: String = "RealESRGAN_x4plus"
    @Option(name: [.customShort("m"), .customLong("model-path")], help: "Real-ESRGAN weights file.")
    var modelPath: String?
    @Option(name: [.customShort("s"), .long], help: "Final scale relative to the input (default: the model's scale).")
    var outscale: Double?
    @Option(name: [.customShort("t"), .long], help: "Tile size in input pixels (0 = whole image).")
    var tile: Int = 0
    @Option(help: "Context pixels around each tile.")
    var tilePad: Int = 10
    @Option(help: "Reflect padding on the right/bottom before inference.")
    var prePad: Int = 0
    @Option(name: [.customLong("dn", withSingleDash: true), .customLong("denoise-strength")], help: "realesr-general-x4v3 denoise strength.")
    var denoiseStrength: Double = 0.5
    @Option(name: .customLong("max-memory"), help: "Memory cap such as 2G (chooses the Real-ESRGAN tile size).")
    var maxMemory: String?

    // GPEN stage
    @Option(help: "GPEN weights (file or name in the models folder).")
    var gpen: String
    @Option(help: "RetinaFace weights (file or name).")
    var detector: String?
    @Option(help: "ParseNet weights (file or name; else the rectangular mask).")
    var parser: String?
    @Option(help: "Per-face blend restored·alpha + original·(1 − alpha).")
    var alpha: Double = 1
    @Option(help: "Paste mask: parse or rect.")
    var mask: String = "parse"
    @Flag(help: "Restore only the face closest to the image centre.")
    var onlyCenterFace = false
    @Flag(help: "Match restored faces' colour statistics to the originals.")
    var colorMatch = false
    @Flag(help: "Also write cropped_faces/, restored_faces/ and cmp/.")
    var saveFaces = false
    @Option(help: "Faces per GPEN pass.")
    var faceBatch: Int = 1

    // Output and batch
    @Option(help: "Suffix of output names: <name><suffix>.<ext>.")
    var suffix: String = ""
    @Option(help: "Output format: auto, png, jpg or webp.")
    var ext: BatchOutputExtension = .auto
    @Option(help: "JPEG/WebP quality 1-100.")
    var quality: Int?
    @OptionGroup var engine: EngineOptions
    @OptionGroup var models: ModelsDirectoryOption
    @OptionGroup var batch: BatchFlags

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one input file or folder") }
        if let q = quality, !(1...100).contains(q) { throw ValidationError("--quality must be 1-100, got \(q)") }
    }

    /// Flags shared by both stages, forwarded so each stage is configured by its own command's parser.
    private var commonArguments: [String] {
        var a = ["--backend", engine.backend.rawValue]
        if let t = engine.threads { a += ["--threads", String(t)] }
        if engine.noWinograd { a.append("--no-winograd") }
        if let d = models.modelsDir { a += ["--models-dir", d] }
        return a
    }

    /// The `enhance upscale` configuration of the first stage.
    func upscaleCommand() throws -> Upscale {
        var a = ["-n", modelName, "-t", String(tile), "--tile-pad", String(tilePad), "--pre-pad", String(prePad),
                 "-dn", String(denoiseStrength)]
        if let m = modelPath { a += ["-m", m] }
        if let s = outscale { a += ["-s", String(s)] }
        if let mm = maxMemory { a += ["--max-memory", mm] }
        return try Upscale.parse(a + commonArguments + ["chain-input"])
    }

    /// The `enhance restore` configuration of the second stage.
    func restoreCommand() throws -> Restore {
        var a = ["--gpen", gpen, "--alpha", String(alpha), "--mask", mask, "--face-batch", String(faceBatch)]
        if let d = detector { a += ["--detector", d] }
        if let p = parser { a += ["--parser", p] }
        if onlyCenterFace { a.append("--only-center-face") }
        if colorMatch { a.append("--color-match") }
        if batch.quiet || batch.json { a.append("--quiet") }
        return try Restore.parse(a + commonArguments + ["chain-input"])
    }

    func run() async throws {
        let processor: ChainProcessor
        do {
            let backend = try engine.makeBackend()
            let up = try upscaleCommand()
            let loaded = try up.loadModel(backend: backend)
            let upscaler = try Upscaler(network: loaded.network, options: up.upscaleOptions())
            let restorer = try restoreCommand().makeRestorer(backend: backend)
            let enc = UpscaleEncoding(quality: quality).encodeOptions
            processor = try ChainProcessor(
                upscale: UpscaleProcessor(upscaler: upscaler, encoding: UpscaleEncoding(quality: quality)),
                restore: RestoreProcessor(restorer: restorer, saveFaces: saveFaces, encodeOptions: enc))
            if !batch.quiet && !batch.json {
                let n = loaded.network
                FileHandle.standardError.write(Data("chain: \(n.architectureName) ×\(n.scale) then GPEN-\(restorer.gpen.size) on \(backend.name)\n".utf8))
            }
        } catch {
            FileHandle.standardError.write(Data("enhance chain: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let b = try batch.options(output: output, suffix: suffix, ext: ext)
        let summary = try await batch.run("chain", inputs: inputs, processor: processor, options: b)
        if summary.failed > 0 { throw ExitCode(1) }
    }
}
