import Foundation
import ImageIO

/// Converts between ImageIO images and the BGR `FaceImage` of the face pipeline.
public enum RestoreImageConversion {
    /// 8-bit BGR pixels of `image` (gray replicated, 16-bit rounded) and its alpha plane when it has one.
    public static func bgr(from image: Image) throws -> (bgr: FaceImage, alpha: [UInt8]?) {
        let img8 = image.withBitDepth(8)
        var alpha: [UInt8]?
        if img8.layout.hasAlpha {
            let rgba = img8.converted(to: .rgba).samples8
            alpha = stride(from: 3, to: rgba.count, by: 4).map { rgba[$0] }
        }
        let rgb = img8.converted(to: .rgb).samples8
        return (try FaceImage(interleaved: rgb, width: image.width, height: image.height, channels: 3, order: .rgb), alpha)
    }

    /// An 8-bit RGB (or RGBA with `alpha`, resized bilinearly to the image size if needed) ImageIO image.
    public static func image(from bgr: FaceImage, alpha: [UInt8]? = nil, alphaSize: (width: Int, height: Int)? = nil,
                             metadata: ImageMetadata = ImageMetadata()) throws -> Image {
        let rgb = bgr.interleaved(order: .rgb)
        guard let alpha, let size = alphaSize else {
            return try Image(width: bgr.width, height: bgr.height, layout: .rgb, storage: .u8(rgb), metadata: metadata)
        }
        var a = try FaceImage(width: size.width, height: size.height, channels: 1, pixels: alpha)
        if size.width != bgr.width || size.height != bgr.height { a = try ImageResize.bilinear(a, width: bgr.width, height: bgr.height) }
        var rgba = [UInt8](repeating: 0, count: bgr.width * bgr.height * 4)
        for i in 0..<(bgr.width * bgr.height) {
            rgba[4 * i] = rgb[3 * i]; rgba[4 * i + 1] = rgb[3 * i + 1]; rgba[4 * i + 2] = rgb[3 * i + 2]; rgba[4 * i + 3] = a.pixels[i]
        }
        return try Image(width: bgr.width, height: bgr.height, layout: .rgba, storage: .u8(rgba), metadata: metadata)
    }
}

/// Batch processor of `enhance restore`: decode → `FaceRestorer.restore` → encode, plus GFPGAN-style face folders
/// (`cropped_faces/`, `restored_faces/`, `cmp/` next to the output) with `saveFaces`.
public struct RestoreProcessor: BatchProcessor {
    /// The restorer (shared; its models run one call at a time).
    public let restorer: FaceRestorer
    /// Write the per-face crops, restorations and comparisons.
    public let saveFaces: Bool
    /// Encoder settings.
    public let encodeOptions: EncodeOptions
    /// Called with each file's log remarks (rect-mask fallback, faces found).
    public let log: @Sendable (String) -> Void

    /// Creates the processor.
    public init(restorer: FaceRestorer, saveFaces: Bool = false, encodeOptions: EncodeOptions = EncodeOptions(),
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.restorer = restorer; self.saveFaces = saveFaces; self.encodeOptions = encodeOptions; self.log = log
    }

    /// Decoded input.
    public struct Loaded: Sendable { let image: Image }
    /// Restored output.
    public struct Computed: Sendable { let image: Image; let faces: [RestoredFace] }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> Loaded {
        let img = try ImageDecoder.decode(fileAt: URL(fileURLWithPath: item.input))
        notes.width = img.width; notes.height = img.height
        return Loaded(image: img)
    }

    public func compute(_ loaded: Loaded, item: BatchItem, notes: inout BatchNotes) async throws -> Computed {
        let (bgr, alpha) = try RestoreImageConversion.bgr(from: loaded.image)
        let r = try restorer.restore(bgr)
        notes.faces = r.faces.count
        notes.recordEngine(restorer.gpen.backend.memoryStats)
        for (k, v) in r.timings { notes.timings[k] = v }
        for n in r.notes { log("\(item.relativePath): \(n)") }
        var meta = loaded.image.metadata
        meta.orientation = nil
        let out = try RestoreImageConversion.image(from: r.image, alpha: alpha,
                                                   alphaSize: (loaded.image.width, loaded.image.height), metadata: meta)
        return Computed(image: out, faces: r.faces)
    }

    public func store(_ computed: Computed, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        let fmt = ImageFormat(rawValue: item.outputFormat.rawValue) ?? .png
        let data = try ImageEncoder.encode(computed.image, as: fmt, options: encodeOptions).data
        try data.write(to: URL(fileURLWithPath: temporaryPath))
        guard saveFaces, !computed.faces.isEmpty else { return }
        let dir = URL(fileURLWithPath: item.outputDirectory)
        let stem = ((item.output as NSString).lastPathComponent as NSString).deletingPathExtension
        for sub in ["cropped_faces", "restored_faces", "cmp"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for (i, f) in computed.faces.enumerated() {
            let name = String(format: "%@_%02d.png", stem, i)
            try ImageEncoder.write(RestoreImageConversion.image(from: f.crop), to: dir.appendingPathComponent("cropped_faces/" + name))
            try ImageEncoder.write(RestoreImageConversion.image(from: f.restored), to: dir.appendingPathComponent("restored_faces/" + name))
            let crop = f.crop.width == f.restored.width ? f.crop : try ImageResize.bilinear(f.crop, width: f.restored.width, height: f.restored.height)
            try ImageEncoder.write(RestoreImageConversion.image(from: ImageResize.hconcat([crop, f.restored])),
                                   to: dir.appendingPathComponent("cmp/" + name))
        }
    }
}
