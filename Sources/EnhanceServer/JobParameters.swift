import EnhanceKit
import Foundation
import Models
import Pipeline

/// The three image operations the API offers.
public enum Operation: String, Sendable, CaseIterable {
    case upscale, restore, chain
}

/// One POST's query string parsed into the configurations the CLI's flags build (same names, snake_case).
struct JobParameters: Sendable {
    var operation: Operation
    var upscale: UpscaleConfiguration?
    var restore: RestoreConfiguration?
    /// Output format; nil = the input's.
    var format: BatchImageFormat?
    /// JPEG/WebP quality.
    var quality: Int?

    /// The model names used (for X-Enhance-Model).
    var modelNames: [String] {
        var n: [String] = []
        if let u = upscale, case let .name(m) = u.model { n.append(m) }
        if let r = restore { n.append(r.gpen) }
        return n
    }

    static let upscaleKeys: Set<String> = ["model", "outscale", "tile", "tile_pad", "tile_batch", "pre_pad", "denoise_strength", "alpha_upsampler"]
    static let restoreKeys: Set<String> = ["gpen", "detector", "parser", "aligned", "only_center_face", "color_match", "alpha",
                                           "mask", "bg_upsampler", "upscale", "face_batch"]
    static let chainRestoreKeys: Set<String> = ["gpen", "detector", "parser", "only_center_face", "color_match", "alpha", "mask"]
    static let outputKeys: Set<String> = ["format", "quality"]

    /// Parses `query` for `operation`; `isKnownModel` says whether a name is in the catalogue or installed.
    /// Throws `APIError`: 400 bad_parameter (does not parse, unknown parameter), 422 invalid_parameter (out of
    /// range), 404 unknown_model.
    static func parse(_ operation: Operation, query: [(String, String)], maxMemory: Int,
                      isKnownModel: (String) -> Bool) throws -> JobParameters {
        var q = Query(pairs: query)
        let allowed: Set<String>
        switch operation {
        case .upscale: allowed = upscaleKeys.union(outputKeys)
        case .restore: allowed = restoreKeys.union(outputKeys)
        case .chain: allowed = upscaleKeys.union(chainRestoreKeys).union(outputKeys)
        }
        try q.rejectUnknown(allowed: allowed, operation: operation)
        var p = JobParameters(operation: operation)
        if operation != .restore { p.upscale = try upscaleConfiguration(&q, maxMemory: maxMemory, isKnownModel: isKnownModel) }
        if operation != .upscale { p.restore = try restoreConfiguration(&q, chain: operation == .chain, isKnownModel: isKnownModel) }
        if let f = try q.choice("format", ["png", "jpg", "jpeg", "webp"]) {
            p.format = f == "png" ? .png : f == "webp" ? .webp : .jpeg
        }
        p.quality = try q.int("quality", 1...100)
        return p
    }

    private static func upscaleConfiguration(_ q: inout Query, maxMemory: Int, isKnownModel: (String) -> Bool) throws -> UpscaleConfiguration {
        var c = UpscaleConfiguration()
        let name = try q.modelName("model") ?? "RealESRGAN_x4plus"
        guard RealESRGANModelZoo.info(named: name) != nil else {
            throw APIError(.unknownModel, "unknown Real-ESRGAN model '\(name)'; known: \(RealESRGANModelZoo.models.map(\.name).joined(separator: ", "))")
        }
        c.model = .name(name)
        if let d = try q.double("denoise_strength", 0...1) { c.denoiseStrength = d }
        var o = UpscaleOptions()
        if let s = try q.double("outscale", 0...16), s > 0 { o.outscale = s } else if q.had("outscale") {
            throw APIError.invalidParameter("outscale must be > 0 and ≤ 16")
        }
        o.tile = try q.int("tile", 0...4096) ?? 0
        o.tilePad = try q.int("tile_pad", 0...512) ?? 10
        o.tileBatch = try q.int("tile_batch", 1...16) ?? 1
        o.prePad = try q.int("pre_pad", 0...512) ?? 0
        if let a = try q.choice("alpha_upsampler", ["network", "realesrgan", "bicubic", "bilinear"]) {
            o.alphaUpsampler = a == "bicubic" ? .bicubic : a == "bilinear" ? .bilinear : .network
        }
        // no tile given: the largest tile whose estimate fits the server's memory (as `--max-memory` does)
        if o.tile == 0 { o.maxMemory = maxMemory }
        c.options = o
        return c
    }

    private static func restoreConfiguration(_ q: inout Query, chain: Bool, isKnownModel: (String) -> Bool) throws -> RestoreConfiguration {
        let gpen = try q.modelName("gpen") ?? "GPEN-BFR-512"
        guard isKnownModel(gpen) else { throw APIError(.unknownModel, "unknown GPEN model '\(gpen)'") }
        var c = RestoreConfiguration(gpen: gpen)
        for key in ["detector", "parser"] {
            if let n = try q.modelName(key) {
                guard isKnownModel(n) else { throw APIError(.unknownModel, "unknown \(key) model '\(n)'") }
                if key == "detector" { c.detector = n } else { c.parser = n }
            }
        }
        var o = RestoreOptions()
        o.alpha = try q.double("alpha", 0...1) ?? 1
        if let m = try q.choice("mask", ["parse", "rect"]) { o.mask = m == "rect" ? .rect : .parse }
        o.aligned = try q.bool("aligned") ?? false
        o.onlyCenterFace = try q.bool("only_center_face") ?? false
        o.colorMatch = try q.bool("color_match") ?? false
        o.faceBatch = try q.int("face_batch", 1...16) ?? 1
        if !chain {
            let bg = try q.string("bg_upsampler") ?? "none"
            if !["none", "bilinear"].contains(bg.lowercased()) {
                try Query.checkName(bg, key: "bg_upsampler")
                guard RealESRGANModelZoo.info(named: bg) != nil else {
                    throw APIError(.unknownModel, "unknown background upsampler '\(bg)': none, bilinear or a Real-ESRGAN model name")
                }
            }
            c.backgroundUpsampler = bg
            let up = try q.int("upscale", 1...8)
            if (up ?? 1) > 1 && bg == "none" {
                throw APIError.invalidParameter("upscale \(up!) needs bg_upsampler (bilinear or a Real-ESRGAN model)")
            }
            o.upscale = up ?? (bg == "none" ? 1 : 2)
        }
        c.options = o
        return c
    }
}

/// Typed access to query parameters with the API's errors.
struct Query {
    private var values: [String: String] = [:]
    private var duplicated: [String] = []

    init(pairs: [(String, String)]) {
        for (k, v) in pairs {
            if values[k] != nil { duplicated.append(k) }
            values[k] = v
        }
    }

    func rejectUnknown(allowed: Set<String>, operation: Operation) throws {
        if let d = duplicated.first { throw APIError.badParameter("parameter '\(d)' given more than once") }
        let unknown = values.keys.filter { !allowed.contains($0) }.sorted()
        if !unknown.isEmpty {
            throw APIError.badParameter("unknown parameter\(unknown.count > 1 ? "s" : "") \(unknown.map { "'\($0)'" }.joined(separator: ", ")) for /v1/\(operation.rawValue); accepted: \(allowed.sorted().joined(separator: ", "))")
        }
    }

    func had(_ key: String) -> Bool { values[key] != nil }

    func string(_ key: String) throws -> String? {
        guard let v = values[key] else { return nil }
        guard !v.isEmpty else { throw APIError.badParameter("\(key) is empty") }
        return v
    }

    func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let s = try string(key) else { return nil }
        guard let v = Int(s) else { throw APIError.badParameter("\(key) must be an integer, got '\(s)'") }
        guard range.contains(v) else { throw APIError.invalidParameter("\(key) must be \(range.lowerBound)…\(range.upperBound), got \(v)") }
        return v
    }

    func double(_ key: String, _ range: ClosedRange<Double>) throws -> Double? {
        guard let s = try string(key) else { return nil }
        guard let v = Double(s), v.isFinite else { throw APIError.badParameter("\(key) must be a number, got '\(s)'") }
        guard range.contains(v) else { throw APIError.invalidParameter("\(key) must be in \(range.lowerBound)…\(range.upperBound), got \(s)") }
        return v
    }

    func bool(_ key: String) throws -> Bool? {
        guard let s = try string(key) else { return nil }
        switch s.lowercased() {
        case "true", "1", "yes": return true
        case "false", "0", "no": return false
        default: throw APIError.badParameter("\(key) must be true or false, got '\(s)'")
        }
    }

    func choice(_ key: String, _ options: [String]) throws -> String? {
        guard let s = try string(key) else { return nil }
        guard options.contains(s.lowercased()) else {
            throw APIError.invalidParameter("\(key) must be one of \(options.joined(separator: ", ")), got '\(s)'")
        }
        return s.lowercased()
    }

    /// A model name: never a path (the server only serves what is in its models folders).
    func modelName(_ key: String) throws -> String? {
        guard let s = try string(key) else { return nil }
        try Self.checkName(s, key: key)
        return s
    }

    static func checkName(_ s: String, key: String) throws {
        let ok = s.count <= 128 && !s.hasPrefix(".") && s.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "._-".contains($0)) }
        guard ok else { throw APIError.invalidParameter("\(key) must be a model name ([A-Za-z0-9._-], not starting with '.'), got '\(s)'") }
    }
}
