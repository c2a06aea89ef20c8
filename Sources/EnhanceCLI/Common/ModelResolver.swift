import EnhanceKit
import Foundation
import Models

/// Where the weights of a named Real-ESRGAN model are, or why they cannot be found.
enum ResolvedModel {
    /// One file (.pth, .safetensors or an ncnn .param whose .bin sits next to it).
    case file(URL)
    /// Two files blended by DNI with weights (wa, wb).
    case dni(URL, URL, wa: Float, wb: Float)
}

/// Errors of model lookup, naming what was searched and where to get the file.
struct ModelLookupError: Error, CustomStringConvertible {
    let description: String
}

/// Finds model files by name in the search folders.
enum ModelResolver {
    /// The first existing `NAME.pth`, `NAME.safetensors` or ncnn `NCNN.param` (+ `.bin`) in `dirs`.
    static func find(_ name: String, ncnn: String?, in dirs: [URL]) -> URL? {
        let fm = FileManager.default
        for dir in dirs {
            for ext in ["pth", "safetensors"] {
                let u = dir.appendingPathComponent("\(name).\(ext)")
                if fm.fileExists(atPath: u.path) { return u }
            }
            for base in [ncnn, name].compactMap({ $0 }) {
                let p = dir.appendingPathComponent("\(base).param"), b = dir.appendingPathComponent("\(base).bin")
                if fm.fileExists(atPath: p.path), fm.fileExists(atPath: b.path) { return p }
            }
        }
        return nil
    }

    /// A file path, or a model name looked up in `dirs` (`NAME.pth`, `NAME.safetensors`, ncnn pair).
    static func locate(_ nameOrPath: String, what: String, in dirs: [URL]) throws -> URL {
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) { return URL(fileURLWithPath: expanded) }
        if let u = find(nameOrPath, ncnn: nil, in: dirs) { return u }
        let hint = ModelCatalog.entry(named: nameOrPath).map { e in
            e.urls.isEmpty ? "; \(e.name): \(e.note ?? "no download location is published")" : "; fetch it with `enhance models fetch \(e.name)` (or add --download)"
        } ?? ""
        throw ModelLookupError(description: "\(what) '\(nameOrPath)': no such file, and no \(nameOrPath).pth or .safetensors in \(dirs.map(\.path).joined(separator: ", "))\(hint)")
    }

    /// Detector names tried in the models folders when none is given: GPEN's own RetinaFace-R50, else the
    /// MobileNet-0.25 one that scripts/setup converts from an offline ONNX export (real weights, smaller and faster).
    static let defaultDetectors = ["RetinaFace-R50", "RetinaFace-mnet025"]

    /// The RetinaFace weights for `--detector` (a file or name), or the first default found; shared by `restore`,
    /// `chain` and `detect`.
    static func detector(_ nameOrPath: String?, in dirs: [URL]) throws -> URL {
        let names = nameOrPath.map { [$0] } ?? defaultDetectors
        if let url = names.lazy.compactMap({ try? locate($0, what: "--detector", in: dirs) }).first { return url }
        throw ModelLookupError(description: nameOrPath == nil
            ? "no detector: pass --detector FILE (RetinaFace .pth), put RetinaFace-R50.pth in the models folder (or run scripts/setup for RetinaFace-mnet025)"
            : "--detector '\(nameOrPath!)': no such file or model")
    }

    /// Resolves a model name (anything after the first dot is ignored, as upstream). For realesr-general-x4v3 with
    /// `denoiseStrength` ≠ 1, the result is the DNI pair [x4v3, wdn-x4v3] with weights [dn, 1 − dn].
    static func resolve(name: String, denoiseStrength: Double, dirs: [URL]) throws -> ResolvedModel {
        guard let info = RealESRGANModelZoo.info(named: name) else {
            let known = RealESRGANModelZoo.models.map(\.name).joined(separator: ", ")
            throw ModelLookupError(description: "unknown model name '\(name)'; known: \(known) (or pass a file with --model-path)")
        }
        func locate(_ i: RealESRGANModelInfo) throws -> URL {
            if let u = find(i.name, ncnn: i.ncnnName, in: dirs) { return u }
            let searched = dirs.map(\.path).joined(separator: ", ")
            let sha = i.sha256.map { " (sha256 \($0))" } ?? ""
            let ncnnHint = i.ncnnName.map { " or the ncnn pair \($0).param/.bin" } ?? ""
            throw ModelLookupError(description: "model '\(i.name)' not found: looked for \(i.name).pth, \(i.name).safetensors\(ncnnHint) in \(searched). Fetch it with `enhance models fetch \(i.name)` (or add --download), or download \(i.url)\(sha) into the models folder (--models-dir or $ENHANCE_MODELS_DIR)")
        }
        if let companion = info.denoiseCompanion, denoiseStrength != 1, let other = RealESRGANModelZoo.info(named: companion) {
            return .dni(try locate(info), try locate(other), wa: Float(denoiseStrength), wb: Float(1 - denoiseStrength))
        }
        return .file(try locate(info))
    }
}
