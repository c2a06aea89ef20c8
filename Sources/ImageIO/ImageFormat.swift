import Foundation

/// A file format this module reads and writes.
public enum ImageFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    /// PNG (libpng): 8/16-bit gray, gray+alpha, RGB, RGBA; lossless.
    case png
    /// JPEG (TurboJPEG): 8-bit gray or RGB; lossy; carries EXIF.
    case jpeg
    /// WebP (libwebp): 8-bit RGB or RGBA; lossy or lossless.
    case webp

    public var description: String {
        switch self {
        case .png: "PNG"
        case .jpeg: "JPEG"
        case .webp: "WebP"
        }
    }

    /// The usual file extension (without dot).
    public var fileExtension: String {
        switch self {
        case .png: "png"
        case .jpeg: "jpg"
        case .webp: "webp"
        }
    }

    /// The format a file extension names (case-insensitive; "jpg", "jpeg", "jpe", "png", "webp"), or nil.
    public init?(fileExtension ext: String) {
        switch ext.lowercased() {
        case "png": self = .png
        case "jpg", "jpeg", "jpe", "jfif": self = .jpeg
        case "webp": self = .webp
        default: return nil
        }
    }

    /// The format the magic bytes at the start of `data` identify, or nil.
    public static func sniff<C: Collection>(_ data: C) -> ImageFormat? where C.Element == UInt8 {
        let head = Array(data.prefix(16))
        if head.count >= 8, head[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if head.count >= 3, head[0] == 0xFF, head[1] == 0xD8, head[2] == 0xFF { return .jpeg }
        if head.count >= 12, head[0..<4].elementsEqual(Array("RIFF".utf8)), head[8..<12].elementsEqual(Array("WEBP".utf8)) {
            return .webp
        }
        return nil
    }

    /// The format of the file at `url` from its first bytes (not its extension); nil if unknown or unreadable.
    public static func sniff(fileAt url: URL) -> ImageFormat? {
        guard let h = try? FileHandle(forReadingFrom: url) else { return nil }
        defer { try? h.close() }
        guard let d = try? h.read(upToCount: 16) else { return nil }
        return sniff(d)
    }
}
