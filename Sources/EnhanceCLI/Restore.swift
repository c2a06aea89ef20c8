import ArgumentParser
import Checkpoint
import EnhanceKit
import Foundation
import ImageIO
import Models
import Pipeline
import TensorCore

extension RestoreMaskKind: ExpressibleByArgument {}

/// Raw-network runners of `enhance forward` for the face networks (registered in `ForwardRegistry.runners`).
enum FaceForwardRunners {
    /// GPEN FullGenerator: input N×3×S×S RGB in [-1, 1] → `output` N×3×S×S.
    static let gpen: ForwardRegistry.Runner = { ckpt, _, backend in
        let g = try GPENGenerator(stateDict: ckpt.stateDict, backend: backend)
        return ForwardNetwork(backend: backend) { x in [("output", try g.forward(x))] }
    }
    /// RetinaFace: input 1×3×H×W (BGR − mean) → `loc` [1,N,4], `conf` [1,N,2] (softmaxed), `landms` [1,N,10], `priors` [N,4].
    static let retinaFace: ForwardRegistry.Runner = { ckpt, _, backend in
        let net = try RetinaFace(stateDict: ckpt.stateDict, backend: backend)
        return ForwardNetwork { input in
            let r = try net.forward(backend.upload(input))
            let n = r.count
            return [("loc", try HostTensor(shape: [1, n, 4], data: r.loc)), ("conf", try HostTensor(shape: [1, n, 2], data: r.conf)),
                    ("landms", try HostTensor(shape: [1, n, 10], data: r.landms)),
                    ("priors", try HostTensor(shape: [n, 4], data: RetinaFace.priors(height: input.shape[2], width: input.shape[3])))]
        }
    }
    /// ParseNet: input N×3×H×W RGB in [-1, 1] → `out_mask` (logits) and `out_img`.
    static let parseNet: ForwardRegistry.Runner = { ckpt, _, backend in
        let net = try ParseNet(stateDict: ckpt.stateDict, backend: backend)
        return ForwardNetwork(backend: backend) { x in
            let (m, i) = try net.forward(x)
            return [("out_mask", m), ("out_img", i)]
        }
    }
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

    @OptionGroup var out: OutputFlags

    @OptionGroup var model: RestoreModelFlags

    @Option(help: "Suffix of output names: <name><suffix>.<ext>.")
    var suffix: String = ""



    @OptionGroup var engine: EngineOptions
    @OptionGroup var models: ModelsDirectoryOption

    @OptionGroup var batch: BatchFlags

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("give at least one input file or folder") }
    }

    func log(_ s: String) { if !batch.quiet { FileHandle.standardError.write(Data((s + "\n").utf8)) } }

    func run() async throws {
        let devices: DeviceProcessors<RestoreProcessor>
        do {
            try await models.fetchMissing(model.configuration.modelNames) { log($0) }
            let factory = models.factory, flags = model, enc = out.encoding.encodeOptions, quiet = batch.quiet
            devices = try engine.processors("restore", imageBatch: batch.imageBatch, replays: { $0.restorer.replays }) { backend, say in
                let restorer = try flags.makeRestorer(factory, backend: backend) { line in
                    if say && !quiet { FileHandle.standardError.write(Data((line + "\n").utf8)) }
                }
                return RestoreProcessor(restorer: restorer, saveFaces: flags.saveFaces, encodeOptions: enc)
            }
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("enhance restore: \(error)\n".utf8))
            throw ExitCode(2)
        }
        if devices.backends.count > 1 { log("restore: on \(devices.backends.joined(separator: " and "))") }
        let b = try batch.options(output: out.output, suffix: suffix, ext: out.ext, gpus: devices.backends.count)
        let summary = try await batch.run("restore", inputs: inputs, processor: devices.pool, options: b)
        batch.report("restore", devices)
        if summary.exitCode != 0 { throw ExitCode(summary.exitCode) }
    }
}
