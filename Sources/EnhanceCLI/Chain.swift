import ArgumentParser
import EnhanceKit
import Foundation
import ImageIO
import Pipeline
import TensorCore

/// `enhance chain`: Real-ESRGAN then GPEN in one process, models loaded once; faces are detected on the
/// upscaled image. The stages are configured exactly as `enhance upscale` and `enhance restore` configure them.
struct Chain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upscale with Real-ESRGAN, then restore faces with GPEN on the upscaled image.",
        discussion: """
        One process, both models loaded once. Takes every model flag of `enhance upscale` and of `enhance restore` \
        (the same option groups: same names, help and meaning), the engine flags and the batch flags (resume, atomic \
        outputs, results.jsonl, --jobs, --shard).
        """)

    @Argument(help: "Image files or folders.")
    var inputs: [String] = []
    @OptionGroup var out: OutputFlags

    @OptionGroup(title: "Real-ESRGAN stage (as enhance upscale)") var upscale: UpscaleModelFlags
    @OptionGroup(title: "GPEN stage (as enhance restore)") var restore: RestoreModelFlags

    // Output and batch
    @Option(help: "Suffix of output names: <name><suffix>.<ext>.")
    var suffix: String = ""
    @OptionGroup var engine: EngineOptions
    @OptionGroup var models: ModelsDirectoryOption
    @OptionGroup var batch: BatchFlags

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one input file or folder") }
    }

    func run() async throws {
        let devices: DeviceProcessors<ChainProcessor>
        let quiet = batch.quiet || batch.json
        do {
            let upConfig = try upscale.configuration()
            try await models.fetchMissing(upConfig.modelNames + restore.configuration.modelNames) { line in
                if !batch.quiet { FileHandle.standardError.write(Data(("chain: " + line + "\n").utf8)) }
            }
            let factory = models.factory, flags = restore, encoding = out.encoding
            devices = try engine.processors("chain", imageBatch: batch.imageBatch,
                                            replays: { [$0.upscale.upscaler.replay] + $0.restore.restorer.replays }) { backend, say in
                let (upscaler, loaded) = try factory.upscaler(upConfig, backend: backend)
                let restorer = try flags.makeRestorer(factory, backend: backend) { line in
                    if say && !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
                }
                if say && !quiet {
                    let n = loaded.network
                    FileHandle.standardError.write(Data("chain: \(n.architectureName) ×\(n.scale) then GPEN-\(restorer.gpen.size) on \(backend.name)\n".utf8))
                }
                return try ChainProcessor(
                    upscale: UpscaleProcessor(upscaler: upscaler, encoding: encoding),
                    restore: RestoreProcessor(restorer: restorer, saveFaces: flags.saveFaces, encodeOptions: encoding.encodeOptions))
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("enhance chain: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if devices.backends.count > 1 && !quiet {
            FileHandle.standardError.write(Data("chain: on \(devices.backends.joined(separator: " and "))\n".utf8))
        }
        let b = try batch.options(output: out.output, suffix: suffix, ext: out.ext, gpus: devices.backends.count)
        let summary = try await batch.run("chain", inputs: inputs, processor: devices.pool, options: b)
        batch.report("chain", devices)
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}
