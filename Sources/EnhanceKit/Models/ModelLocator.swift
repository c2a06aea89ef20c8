import Foundation
import Models

/// Where the weights of a named Real-ESRGAN model are.
public enum ResolvedModel: Sendable, Equatable {
    /// One file (.pth, .safetensors or an ncnn .param whose .bin sits next to it).
    case file(URL)
    /// Two files blended by DNI with weights (wa, wb).
    case dni(URL, URL, wa: Float, wb: Float)
}

/// Finds model files by path or by name in a list of folders (the models folder first, then the offline assets).
public struct ModelLocator: Sendable {
    /// Folders searched in order.
    public let dirs: [URL]

    public init(dirs: [URL]) { self.dirs = dirs }

    /// The first existing `NAME.pth`, `NAME.safetensors` or ncnn `NCNN.param` (+ `.bin`) in the folders.
    public func find(_ name: String, ncnn: String? = nil) -> URL? {
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

    var searched: String { dirs.map(\.path).joined(separator: ", ") }

    /// A file path, or a model name looked up in the folders; `what` names the role in the message ("GPEN weights").
    public func locate(_ nameOrPath: String, what: String) throws(EnhanceError) -> URL {
        let expanded = (nameOrPath as NSString).expandingTildeInPath
        if FileManager.default.fileExists(atPath: expanded) { return URL(fileURLWithPath: expanded) }
        if let u = find(nameOrPath) { return u }
        let hint = ModelCatalog.entry(named: nameOrPath).map { e in
            e.urls.isEmpty ? "; \(e.name): \(e.note ?? "no download location is published")" : "; fetch it with `enhance models fetch \(e.name)`"
        } ?? ""
        throw EnhanceError(.missingResource, "\(what) '\(nameOrPath)': no such file, and no \(nameOrPath).pth or .safetensors in \(searched)\(hint)")
    }

    /// Detector names tried when none is given: GPEN's own RetinaFace-R50, else the MobileNet-0.25 one that
    /// scripts/setup converts from an offline ONNX export (real weights, smaller and faster).
    public static let defaultDetectors = ["RetinaFace-R50", "RetinaFace-mnet025"]

    /// The RetinaFace weights `nameOrPath` names, or the first default found.
    public func detector(_ nameOrPath: String?) throws(EnhanceError) -> URL {
        if let nameOrPath { return try locate(nameOrPath, what: "detector") }
        for name in Self.defaultDetectors { if let u = try? locate(name, what: "detector") { return u } }
        throw EnhanceError(.missingResource, "no detector: give a RetinaFace file, or install RetinaFace-R50 (`enhance models fetch RetinaFace-R50`) or RetinaFace-mnet025 (scripts/setup) in \(searched)")
    }

    /// Resolves a Real-ESRGAN model name (anything after the first dot is ignored, as upstream). For
    /// realesr-general-x4v3 with `denoiseStrength` ≠ 1 the result is the DNI pair [x4v3, wdn-x4v3] with weights
    /// [dn, 1 − dn].
    public func resolve(name: String, denoiseStrength: Double) throws(EnhanceError) -> ResolvedModel {
        guard let info = RealESRGANModelZoo.info(named: name) else {
            let known = RealESRGANModelZoo.models.map(\.name).joined(separator: ", ")
            throw EnhanceError(.badInput, "unknown model name '\(name)'; known: \(known) (or give a weights file)")
        }
        func locate(_ i: RealESRGANModelInfo) throws(EnhanceError) -> URL {
            if let u = find(i.name, ncnn: i.ncnnName) { return u }
            let sha = i.sha256.map { " (sha256 \($0))" } ?? ""
            let ncnnHint = i.ncnnName.map { " or the ncnn pair \($0).param/.bin" } ?? ""
            throw EnhanceError(.missingResource, "model '\(i.name)' not found: looked for \(i.name).pth, \(i.name).safetensors\(ncnnHint) in \(searched). Fetch it with `enhance models fetch \(i.name)`, or download \(i.url)\(sha) into the models folder")
        }
        if let companion = info.denoiseCompanion, denoiseStrength != 1, let other = RealESRGANModelZoo.info(named: companion) {
            return .dni(try locate(info), try locate(other), wa: Float(denoiseStrength), wb: Float(1 - denoiseStrength))
        }
        return .file(try locate(info))
    }
}
