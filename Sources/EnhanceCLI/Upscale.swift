import ArgumentParser
import EnhanceKit
import Foundation
import Models
import Pipeline
import TensorCore

extension AlphaUpsampler: ExpressibleByArgument {
    /// Accepts `network` (alias `realesrgan`, upstream's name), `bicubic` and `bilinear`.
    public init?(argument: String) {
        switch argument.lowercased() {
        case "network", "realesrgan": self = .network
        case "bicubic": self = .bicubic
        case "bilinear": self = .bilinear
        default: return nil
        }
    }
}

extension BatchOutputExtension: ExpressibleByArgument {}

/// `enhance upscale`: Real-ESRGAN super-resolution of image files (RealESRGANer semantics), as a batch.
struct Upscale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upscale images with Real-ESRGAN (RRDBNet or SRVGGNetCompact).",
        discussion: """
        Follows upstream's inference_realesrgan.py: same model names, same flags (-n, -s, -t, --tile-pad, --pre-pad, \
        -dn, --suffix, --ext, -g, --fp32), same RealESRGANer arithmetic. Differences: --outscale defaults to the model's own scale \
        (upstream defaults to 4, which makes x2plus resize its 2× result to 4×); --alpha-upsampler works (upstream \
        parses it but never uses it) and `bicubic` really is bicubic (upstream's runs bilinear; ask for `bilinear` \
        to get that); --max-memory picks the tile size; EXIF orientation is applied on input.
        """)

    @Argument(help: "Image files or folders.")
    var inputs: [String] = []

    @Option(name: [.customShort("i"), .customLong("input")], help: "More inputs (upstream's -i).")
    var extraInputs: [String] = []

    @OptionGroup var out: OutputFlags

    @OptionGroup var model: UpscaleModelFlags

    @Option(help: "Suffix of output names: <name>_<suffix>.<ext> (empty: <name>.<ext>).")
    var suffix: String = "out"



    @OptionGroup var engine: EngineOptions
    @OptionGroup var models: ModelsDirectoryOption

    @OptionGroup var batch: BatchFlags

    func validate() throws {
        if inputs.isEmpty && extraInputs.isEmpty { throw ValidationError("give at least one input file or folder") }
    }

    func run() async throws {
        let o: UpscaleOptions
        let devices: DeviceProcessors<UpscaleProcessor>
        let first: LoadedSuperResolutionModel
        do {
            let config = try model.configuration()
            try await models.fetchMissing(config.modelNames) { log in
                if !batch.quiet { FileHandle.standardError.write(Data(("upscale: " + log + "\n").utf8)) }
            }
            let options = try model.upscaleOptions(), factory = models.factory, encoding = out.encoding
            o = options
            // the first device's model, for what was loaded from where (the same network the processor holds: loading
            // it again for the "model:" line kept a second copy of the weights for the whole run)
            let firstLoaded = FirstValue<LoadedSuperResolutionModel>()
            devices = try engine.processors("upscale", imageBatch: batch.imageBatch, replays: { [$0.upscaler.replay] }) { backend, say in
                let loaded = try factory.loadSuperResolution(config, backend: backend)
                if say { firstLoaded.offer(loaded) }
                return UpscaleProcessor(upscaler: try Upscaler(network: loaded.network, options: options), encoding: encoding)
            }
            first = try firstLoaded.value ?? factory.loadSuperResolution(config, backend: devices.first.upscaler.network.backend)
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("enhance upscale: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if !batch.quiet && !batch.json {
            let n = first.network
            var line = "model: \(n.architectureName) ×\(n.scale), \(n.parameterCount) parameters from \(first.files.joined(separator: " + ")) on \(devices.backends.joined(separator: " and "))"
            if !first.notes.isEmpty { line += " (\(first.notes.joined(separator: "; ")))" }
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }

        var b = try batch.options(output: out.output, suffix: suffix.isEmpty ? "" : "_" + suffix, ext: out.ext, gpus: devices.backends.count)
        b.maxMemory = o.maxMemory
        let processor = devices.first
        let estimate: (@Sendable (BatchItem) -> Int)?
        if b.maxMemory == nil {
            estimate = nil
        } else {
            estimate = { (item: BatchItem) -> Int in
                // the pixel size is unknown before decoding: assume a compressed image of ~1 byte per pixel
                let px = max(item.inputBytes, 1 << 16)
                let side = Int(Double(px).squareRoot())
                return processor.memoryEstimate(width: side, height: side)
            }
        }
        let summary = try await batch.run("upscale", inputs: inputs + extraInputs, processor: devices.pool, options: b,
                                          memoryEstimate: estimate)
        batch.report("upscale", devices)
        if !batch.quiet && !batch.json, let rss = peakRSSBytes() {
            FileHandle.standardError.write(Data(String(format: "peak RSS %.0f MiB\n", Double(rss) / 1048576).utf8))
        }
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}
