import Foundation
import Models

/// One model the tool knows: what it is, the file it lives in and where upstream publishes it.
public struct ModelEntry: Sendable, Equatable {
    /// What the model does.
    public enum Kind: String, Sendable, CaseIterable {
        case upscaler, faceRestorer = "face-restorer", detector, parser
    }
    /// Name used on the command line (`-n`, `--gpen`, `--detector`, `--parser`, `enhance models fetch NAME`).
    public let name: String
    public let kind: Kind
    /// The network and its configuration, in words.
    public let architecture: String
    /// File name in the models folder.
    public let fileName: String
    /// Official download locations as the upstream projects publish them (empty: none is published).
    public let urls: [String]
    /// sha256 of the official file, when known (GPEN's authors publish none).
    public let sha256: String?
    /// Size of the official file in bytes, when known.
    public let bytes: Int?
    /// License of the weights as upstream states it.
    public let license: String
    /// Where to get the file when no URL is published, or other facts a user needs.
    public let note: String?

    public init(name: String, kind: Kind, architecture: String, fileName: String, urls: [String], sha256: String?,
                bytes: Int?, license: String, note: String? = nil) {
        self.name = name; self.kind = kind; self.architecture = architecture; self.fileName = fileName; self.urls = urls
        self.sha256 = sha256; self.bytes = bytes; self.license = license; self.note = note
    }
}

/// Every model the tool knows: the Real-ESRGAN family (from `RealESRGANModelZoo`), GPEN's restorers and its
/// RetinaFace-R50 and ParseNet.
public enum ModelCatalog {
    static let gpenHost = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/"
    static let gpenLicense = "unstated (yangxy/GPEN removed its license section; research use)"

    public static let all: [ModelEntry] = RealESRGANModelZoo.models.map { m in
        ModelEntry(name: m.name, kind: .upscaler, architecture: m.constructor, fileName: m.name + ".pth", urls: [m.url],
                   sha256: m.sha256, bytes: nil, license: "BSD-3-Clause (xinntao/Real-ESRGAN)",
                   note: m.ncnnName.map { "its ncnn pair \($0).param/.bin comes offline with scripts/setup" })
    } + [
        ModelEntry(name: "GPEN-BFR-256", kind: .faceRestorer, architecture: "GPEN FullGenerator(256, 512, 8, channel_multiplier 1, narrow 0.5)",
                   fileName: "GPEN-BFR-256.pth", urls: [gpenHost + "GPEN-BFR-256.pth"], sha256: nil, bytes: nil, license: gpenLicense),
        ModelEntry(name: "GPEN-BFR-512", kind: .faceRestorer, architecture: "GPEN FullGenerator(512, 512, 8, channel_multiplier 2, narrow 1)",
                   fileName: "GPEN-BFR-512.pth", urls: [gpenHost + "GPEN-BFR-512.pth"], sha256: nil, bytes: nil, license: gpenLicense),
        ModelEntry(name: "GPEN-BFR-1024", kind: .faceRestorer, architecture: "GPEN FullGenerator(1024, 512, 8, channel_multiplier 2, narrow 1)",
                   fileName: "GPEN-BFR-1024.pth", urls: [], sha256: nil, bytes: nil, license: gpenLicense,
                   note: "published only on ModelScope (pytorch_model.pt of the hires portrait-enhancement model): fetch it with --url URL --name GPEN-BFR-1024.pth"),
        ModelEntry(name: "GPEN-BFR-2048", kind: .faceRestorer, architecture: "GPEN FullGenerator(2048, 512, 8, channel_multiplier 2, narrow 1)",
                   fileName: "GPEN-BFR-2048.pth", urls: [], sha256: nil, bytes: nil, license: gpenLicense,
                   note: "taken down by GPEN's authors; on ModelScope as pytorch_model-2048.pt: fetch it with --url URL --name GPEN-BFR-2048.pth"),
        ModelEntry(name: "RetinaFace-R50", kind: .detector, architecture: "RetinaFace, ResNet-50 backbone (GPEN's detector)",
                   fileName: "RetinaFace-R50.pth", urls: [gpenHost + "RetinaFace-R50.pth"], sha256: nil, bytes: nil, license: gpenLicense),
        ModelEntry(name: "ParseNet-latest", kind: .parser, architecture: "ParseNet (GPEN's face parser, 19 classes)",
                   fileName: "ParseNet-latest.pth", urls: [gpenHost + "ParseNet-latest.pth"], sha256: nil, bytes: nil, license: gpenLicense),
    ]

    /// The entry called `name` (case-insensitive; a trailing `.pth` is ignored).
    public static func entry(named name: String) -> ModelEntry? {
        let stem = name.lowercased().hasSuffix(".pth") ? String(name.dropLast(4)) : name
        return all.first { $0.name.lowercased() == stem.lowercased() }
    }
}
