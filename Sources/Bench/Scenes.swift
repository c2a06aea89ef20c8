// The five 512×512 scene types of the study, made deterministically from real photos.

import Foundation

/// One benchmark input: the degraded image the workloads see and, when known, its clean source.
public struct BenchInput: Sendable, Codable, Equatable {
    /// Short name, e.g. `frontal`.
    public var name: String
    /// What the scene is, in words.
    public var summary: String
    /// Path of the image given to the workloads.
    public var path: String
    /// Path of the clean source (same size), or nil for user photos.
    public var cleanPath: String?

    /// Creates an input.
    public init(name: String, summary: String, path: String, cleanPath: String?) {
        self.name = name
        self.summary = summary
        self.path = path
        self.cleanPath = cleanPath
    }
}

/// The scene types of the original study.
public enum SceneKind: String, Sendable, CaseIterable, Codable {
    case frontal, side, jpeg, motion, group

    /// The source photo in the assets folder.
    public var sourceFile: String {
        switch self {
        case .frontal: return "astronaut.png"
        case .side: return "biden.jpg"
        case .jpeg: return "obama.jpg"
        case .motion, .group: return "t1.jpg"
        }
    }

    /// What the scene is and how it was made.
    public var summary: String {
        switch self {
        case .frontal: return "frontal, clear: astronaut.png as is"
        case .side: return "turned face, light blur: biden.jpg 560 px crop, area to 512, Gaussian σ 1.2"
        case .jpeg: return "JPEG q30 artefacts: obama.jpg 640 px crop, area to 512, JPEG quality 30"
        case .motion: return "motion blur: t1.jpg 512 px crop (three faces), line kernel 15 px at 20°"
        case .group: return "several faces on clutter: t1.jpg 886 px centre crop (5 faces), area to 512"
        }
    }

    /// The clean 512×512 source cut from `photo`.
    public func clean(from photo: RGBImage) throws(BenchError) -> RGBImage {
        let cropped: RGBImage
        switch self {
        case .frontal: cropped = photo
        case .side: cropped = try photo.squareCrop(side: 560, centerX: 550, centerY: 330)
        case .jpeg: cropped = try photo.squareCrop(side: 640, centerX: 489, centerY: 320)
        case .motion: cropped = try photo.squareCrop(side: 512, centerX: 1024, centerY: 316)
        case .group: cropped = try photo.squareCrop(side: 886, centerX: 640, centerY: 443)
        }
        return try cropped.resized(width: 512, height: 512, filter: .area).quantized()
    }

    /// The degraded input made from the clean source.
    public func degrade(_ clean: RGBImage) throws(BenchError) -> RGBImage {
        switch self {
        case .frontal, .group: return clean
        case .side: return try clean.gaussianBlurred(sigma: 1.2).quantized()
        case .jpeg: return try clean.jpegRoundTrip(quality: 30)
        case .motion: return try clean.motionBlurred(length: 15, angle: 20).quantized()
        }
    }
}

/// Makes the scene files, or lists the user's photos.
public enum Scenes {
    /// Writes `<dir>/<scene>.png` and `<dir>/<scene>.clean.png` for each kind, from photos in `assets`.
    /// The same assets always give byte-identical files.
    public static func generate(kinds: [SceneKind] = SceneKind.allCases, assets: URL,
                                into dir: URL) throws(BenchError) -> [BenchInput] {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw .io(path: dir.path, reason: "cannot create folder: \(error.localizedDescription)")
        }
        var photos: [String: RGBImage] = [:]
        var out: [BenchInput] = []
        for kind in kinds {
            let file = kind.sourceFile
            let photo: RGBImage
            if let p = photos[file] { photo = p } else {
                let url = assets.appendingPathComponent(file)
                guard FileManager.default.fileExists(atPath: url.path) else {
                    throw .io(path: url.path, reason: "scene photo missing; run scripts/setup (or set ENHANCE_ASSETS)")
                }
                photo = try RGBImage(contentsOf: url)
                photos[file] = photo
            }
            let clean = try kind.clean(from: photo)
            let degraded = try kind.degrade(clean)
            let input = dir.appendingPathComponent("\(kind.rawValue).png")
            let cleanURL = dir.appendingPathComponent("\(kind.rawValue).clean.png")
            try degraded.write(to: input)
            try clean.write(to: cleanURL)
            out.append(BenchInput(name: kind.rawValue, summary: kind.summary, path: input.path, cleanPath: cleanURL.path))
        }
        return out
    }

    /// The images (PNG, JPEG, WebP by extension) directly inside `dir`, sorted by name, with no clean reference.
    public static func userImages(in dir: URL) throws(BenchError) -> [BenchInput] {
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: dir.path) } catch {
            throw .io(path: dir.path, reason: "cannot list folder: \(error.localizedDescription)")
        }
        let exts: Set<String> = ["png", "jpg", "jpeg", "webp"]
        let images = names.filter { exts.contains(($0 as NSString).pathExtension.lowercased()) && !$0.hasPrefix(".") }.sorted()
        guard !images.isEmpty else { throw .io(path: dir.path, reason: "no .png, .jpg or .webp images in the folder") }
        return images.map { name in
            BenchInput(name: (name as NSString).deletingPathExtension, summary: "user photo \(name)",
                       path: dir.appendingPathComponent(name).path, cleanPath: nil)
        }
    }
}
