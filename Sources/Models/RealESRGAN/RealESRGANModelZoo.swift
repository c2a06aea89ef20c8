import Checkpoint
import Foundation
import TensorCore

/// One released Real-ESRGAN model: how upstream builds it and where its weights come from.
public struct RealESRGANModelInfo: Sendable, Equatable {
    /// Upstream model name (`-n` of `inference_realesrgan.py`), e.g. "RealESRGAN_x4plus".
    public let name: String
    /// Network scale (what one forward pass produces).
    public let scale: Int
    /// Constructor in words, e.g. "RRDBNet(num_block=23, scale=4)".
    public let constructor: String
    /// Official download URL of the `.pth`.
    public let url: String
    /// sha256 of the official `.pth`, when known.
    public let sha256: String?
    /// Base name of the ncnn `.param`/`.bin` pair with the same weights (fp16), when one exists offline.
    public let ncnnName: String?
    /// For realesr-general-x4v3: the companion model blended in by `-dn` (the "wdn" weights).
    public let denoiseCompanion: String?
}

/// The released model names and their files.
public enum RealESRGANModelZoo {
    private static let base = "https://github.com/xinntao/Real-ESRGAN/releases/download"

    /// Every model name upstream's CLI knows.
    public static let models: [RealESRGANModelInfo] = [
        RealESRGANModelInfo(name: "RealESRGAN_x4plus", scale: 4, constructor: "RRDBNet(num_feat=64, num_block=23, num_grow_ch=32, scale=4)",
                            url: "\(base)/v0.1.0/RealESRGAN_x4plus.pth",
                            sha256: "4fa0d38905f75ac06eb49a7951b426670021be3018265fd191d2125df9d682f1",
                            ncnnName: "realesrgan-x4plus", denoiseCompanion: nil),
        RealESRGANModelInfo(name: "RealESRNet_x4plus", scale: 4, constructor: "RRDBNet(num_feat=64, num_block=23, num_grow_ch=32, scale=4)",
                            url: "\(base)/v0.1.1/RealESRNet_x4plus.pth", sha256: nil, ncnnName: nil, denoiseCompanion: nil),
        RealESRGANModelInfo(name: "RealESRGAN_x4plus_anime_6B", scale: 4, constructor: "RRDBNet(num_feat=64, num_block=6, num_grow_ch=32, scale=4)",
                            url: "\(base)/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
                            sha256: "f872d837d3c90ed2e05227bed711af5671a6fd1c9f7d7e91c911a61f155e99da",
                            ncnnName: "realesrgan-x4plus-anime", denoiseCompanion: nil),
        RealESRGANModelInfo(name: "RealESRGAN_x2plus", scale: 2, constructor: "RRDBNet(num_feat=64, num_block=23, num_grow_ch=32, scale=2)",
                            url: "\(base)/v0.2.1/RealESRGAN_x2plus.pth",
                            sha256: "49fafd45f8fd7aa8d31ab2a22d14d91b536c34494a5cfe31eb5d89c2fa266abb",
                            ncnnName: nil, denoiseCompanion: nil),
        RealESRGANModelInfo(name: "realesr-animevideov3", scale: 4, constructor: "SRVGGNetCompact(num_feat=64, num_conv=16, upscale=4, act_type='prelu')",
                            url: "\(base)/v0.2.5.0/realesr-animevideov3.pth", sha256: nil,
                            ncnnName: "realesr-animevideov3-x4", denoiseCompanion: nil),
        RealESRGANModelInfo(name: "realesr-general-x4v3", scale: 4, constructor: "SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4, act_type='prelu')",
                            url: "\(base)/v0.2.5.0/realesr-general-x4v3.pth", sha256: nil,
                            ncnnName: nil, denoiseCompanion: "realesr-general-wdn-x4v3"),
        RealESRGANModelInfo(name: "realesr-general-wdn-x4v3", scale: 4, constructor: "SRVGGNetCompact(num_feat=64, num_conv=32, upscale=4, act_type='prelu')",
                            url: "\(base)/v0.2.5.0/realesr-general-wdn-x4v3.pth", sha256: nil,
                            ncnnName: nil, denoiseCompanion: nil),
    ]

    /// The model called `name`; like upstream, anything after the first dot is ignored ("X.pth" → "X").
    public static func info(named name: String) -> RealESRGANModelInfo? {
        let stem = String(name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
        return models.first { $0.name == stem }
    }
}

/// A network ready to run plus how it was loaded.
public struct LoadedSuperResolutionModel: Sendable {
    /// The network.
    public let network: any SuperResolutionNetwork
    /// The detected architecture (with its configuration).
    public let architecture: DetectedArchitecture
    /// The files read.
    public let files: [String]
    /// Facts worth telling the user (wrapper key used, DNI ignored because of `params_ema`, …).
    public let notes: [String]
}

/// Builds Real-ESRGAN networks from checkpoint files, detecting the architecture from the keys.
public enum RealESRGANLoader {
    /// Loads `url` (.pth zip/legacy, .safetensors, or an ncnn .param/.bin pair) and builds the network it holds.
    public static func load(_ url: URL, backend: any Backend) throws -> LoadedSuperResolutionModel {
        let ckpt = try CheckpointLoader.load(url)
        return try build(ckpt, backend: backend)
    }

    /// Builds the network held by an already loaded checkpoint (strict: every key used, shapes checked).
    public static func build(_ ckpt: LoadedCheckpoint, backend: any Backend) throws -> LoadedSuperResolutionModel {
        let arch = ArchitectureDetector.detect(ckpt.stateDict)
        ckpt.stateDict.resetUsage()
        let net = try network(arch, weights: ckpt.stateDict, backend: backend, file: ckpt.path)
        var notes: [String] = []
        if let w = ckpt.wrapper { notes.append("weights read from '\(w)'") }
        return LoadedSuperResolutionModel(network: net, architecture: arch, files: [ckpt.path], notes: notes)
    }

    /// Deep network interpolation as upstream's `-dn` does it for realesr-general-x4v3: tensors become
    /// `wa·a + wb·b` (upstream: wa = dn for x4v3, wb = 1 − dn for the wdn file). Upstream blends only the
    /// `params` entry; when file `a` holds `params_ema`, upstream silently uses `a`'s `params_ema` unblended —
    /// reproduced here, with a note saying so.
    public static func loadDNI(_ a: URL, _ b: URL, wa: Float, wb: Float, backend: any Backend) throws -> LoadedSuperResolutionModel {
        let ca = try CheckpointLoader.load(a)
        if ca.wrapper == "params_ema" {
            let m = try build(ca, backend: backend)
            return LoadedSuperResolutionModel(network: m.network, architecture: m.architecture, files: m.files,
                                              notes: m.notes + ["\(a.path) holds 'params_ema': like upstream, the DNI blend (which only touches 'params') is not applied"])
        }
        let cb = try CheckpointLoader.load(b)
        let archA = ArchitectureDetector.detect(ca.stateDict)
        let archB = ArchitectureDetector.detect(cb.stateDict)
        guard archA == archB else {
            throw RealESRGANError.weights(file: b.path, reason: "DNI needs the same architecture: \(a.lastPathComponent) is \(archA.configurationJSON() ?? archA.name), \(b.lastPathComponent) is \(archB.configurationJSON() ?? archB.name)")
        }
        ca.stateDict.resetUsage(); cb.stateDict.resetUsage()
        let net = try network(archA, weights: DNIWeights(a: ca.stateDict, b: cb.stateDict, wa: wa, wb: wb), backend: backend,
                              file: "\(a.path) + \(b.path)")
        return LoadedSuperResolutionModel(network: net, architecture: archA, files: [a.path, b.path],
                                          notes: ["DNI blend \(wa)·\(a.lastPathComponent) + \(wb)·\(b.lastPathComponent)"])
    }

    /// Builds the network for a detected architecture; weight errors are rethrown as `RealESRGANError.weights`
    /// naming `file`, the dotted key and both shapes.
    public static func network(_ arch: DetectedArchitecture, weights: any WeightSource, backend: any Backend,
                               file: String) throws -> any SuperResolutionNetwork {
        do {
            switch arch {
            case let .rrdbNet(c): return try RRDBNet(configuration: c, weights: weights, backend: backend)
            case let .srvggNet(c): return try SRVGGNetCompact(configuration: c, weights: weights, backend: backend)
            case .unrecognised(let keys):
                throw RealESRGANError.wrongArchitecture(file: file, found: "unrecognised (first keys: \(keys.prefix(4).joined(separator: ", ")))")
            default: throw RealESRGANError.wrongArchitecture(file: file, found: arch.name)
            }
        } catch let e as CheckpointError {
            throw RealESRGANError.weights(file: file, reason: e.description)
        }
    }
}
