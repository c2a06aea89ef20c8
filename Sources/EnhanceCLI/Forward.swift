import ArgumentParser
import Checkpoint
import Foundation
import Pipeline
import Models
import TensorCore

/// Raw-network runners of `enhance forward`, one per architecture key.
///
/// To add an architecture, replace its `notYetSupported` entry in `runners` with a closure that builds the
/// network from the loaded checkpoint on `backend`, runs it on the input (float32 **N, C, H, W**) and returns the
/// outputs by file stem (each becomes `<stem>.npy`, float32).
enum ForwardRegistry {
    /// Builds and runs a network: (checkpoint, detected architecture, input, backend) → named outputs.
    typealias Runner = @Sendable (_ checkpoint: LoadedCheckpoint, _ architecture: DetectedArchitecture,
                                  _ input: HostTensor, _ backend: any Backend) throws -> [(name: String, tensor: HostTensor)]

    /// Architecture keys accepted by `--arch` (besides `auto`).
    static let keys = ["rrdbnet", "srvgg", "gpen", "retinaface", "parsenet"]

    static let runners: [String: Runner] = [
        "rrdbnet": superResolution,
        "srvgg": superResolution,
        "gpen": FaceForwardRunners.gpen,
        "retinaface": FaceForwardRunners.retinaFace,
        "parsenet": FaceForwardRunners.parseNet,
    ]

    /// The `--arch` key of a detected architecture.
    static func key(of arch: DetectedArchitecture) -> String? {
        switch arch {
        case .rrdbNet: "rrdbnet"
        case .srvggNet: "srvgg"
        case .gpen: "gpen"
        case .retinaFace: "retinaface"
        case .parseNet: "parsenet"
        case .unrecognised: nil
        }
    }

    static let superResolution: Runner = { ckpt, arch, input, backend in
        let net = try RealESRGANLoader.network(arch, weights: ckpt.stateDict, backend: backend, file: ckpt.path)
        let y = try net.forward(backend.upload(input))
        return [("output", try backend.download(y))]
    }

    static func notYetSupported(_ key: String) -> Runner {
        { _, _, _, _ in throw CommandError("--arch \(key): not yet supported by `enhance forward` in this build") }
    }
}

/// `enhance forward`: the raw network on a float32 NCHW `.npy`, for parity checks against PyTorch.
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a raw network on a float32 NCHW .npy and write its outputs as .npy (parity checks).",
        discussion: "Writes one float32 .npy per network output into the output folder (output.npy for RRDBNet and SRVGGNetCompact).")

    @Option(help: "Weights file (.pth, .safetensors or ncnn .param).")
    var weights: String

    @Option(help: "Architecture: auto (detected from the keys), rrdbnet, srvgg, gpen, retinaface or parsenet.")
    var arch: String = "auto"

    @Option(help: "Input .npy: float32, N×C×H×W.")
    var input: String

    @Option(help: "Output folder (created if missing).")
    var output: String

    @OptionGroup var engine: EngineOptions

    func validate() throws {
        guard arch == "auto" || ForwardRegistry.keys.contains(arch) else {
            throw ValidationError("--arch must be auto or one of \(ForwardRegistry.keys.joined(separator: ", ")), got '\(arch)'")
        }
    }

    func run() throws {
        do {
            try execute()
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("enhance forward: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }

    func execute() throws {
        let inURL = URL(fileURLWithPath: input)
        let npy: NPYArray
        do { npy = try NPYArray(contentsOf: inURL) } catch { throw CommandError("\(input): \(error)") }
        guard npy.dtype == .float32 else { throw CommandError("\(input): expected float32, got \(npy.dtype.rawValue)") }
        guard npy.shape.count == 4 else { throw CommandError("\(input): expected an N×C×H×W array, got shape \(npy.shape)") }
        let host = try HostTensor(shape: npy.shape, data: npy.floats())
        let ckpt = try CheckpointLoader.load(URL(fileURLWithPath: weights))
        let detected = ArchitectureDetector.detect(ckpt.stateDict)
        let key: String
        if arch == "auto" {
            guard let k = ForwardRegistry.key(of: detected) else {
                throw CommandError("\(weights): architecture not recognised (first keys: \(ckpt.stateDict.keys.prefix(5).joined(separator: ", "))); pass --arch")
            }
            key = k
        } else {
            key = arch
            if let k = ForwardRegistry.key(of: detected), k != key {
                throw CommandError("\(weights): --arch \(arch) but the file holds a \(detected.name) network")
            }
        }
        guard let runner = ForwardRegistry.runners[key] else { throw CommandError("--arch \(key): no runner") }
        let backend = try engine.makeBackend()
        let start = ContinuousClock.now
        let outputs = try runner(ckpt, detected, host, backend)
        let seconds = secondsSince(start)
        let dir = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, t) in outputs {
            let url = dir.appendingPathComponent("\(name).npy")
            try NPYArray(shape: t.shape, floats: t.data).write(to: url)
            print("\(url.path): \(t.shape.map(String.init).joined(separator: "×")) float32")
        }
        print(String(format: "%@ on %@: %.3f s", detected.name, backend.name, seconds))
    }
}
