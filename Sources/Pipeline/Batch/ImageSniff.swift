// Content-based image recognition for batch inputs (PNG / JPEG / WebP magic bytes).
// TODO(dedupe): ImageIO will provide the same sniffing; switch to it once merged.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An image file format recognised by its leading bytes.
public enum BatchImageFormat: String, Sendable, Codable, CaseIterable {
    case png, jpeg, webp

    /// The canonical file extension (without the dot) for this format.
    public var fileExtension: String {
        switch self {
        case .png: "png"
        case .jpeg: "jpg"
        case .webp: "webp"
        }
    }

    /// Whether `ext` (no dot, any case) is a usual extension for this format.
    public func accepts(extension ext: String) -> Bool {
        switch (self, ext.lowercased()) {
        case (.png, "png"), (.jpeg, "jpg"), (.jpeg, "jpeg"), (.jpeg, "jpe"), (.jpeg, "jfif"), (.webp, "webp"): true
        default: false
        }
    }
}

/// Recognises PNG, JPEG or WebP from the first bytes of a file; nil for anything else.
public func sniffImageFormat<C: Collection>(_ bytes: C) -> BatchImageFormat? where C.Element == UInt8 {
    let b = Array(bytes.prefix(12))
    if b.count >= 8 && b[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
    if b.count >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF { return .jpeg }
    if b.count >= 12 && b[0..<4].elementsEqual(Array("RIFF".utf8)) && b[8..<12].elementsEqual(Array("WEBP".utf8)) {
        return .webp
    }
    return nil
}

/// Reads the first 12 bytes of the file at `path` and recognises its format; nil if unreadable or not an image.
public func sniffImageFormat(atPath path: String) -> BatchImageFormat? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 12)
    var filled = 0
    while filled < buffer.count {
        let n = buffer.withUnsafeMutableBytes { raw -> Int in
            guard let base = raw.baseAddress else { return -1 }
            return read(fd, base + filled, raw.count - filled)
        }
        if n <= 0 { break }
        filled += n
    }
    return sniffImageFormat(buffer[0..<filled])
}
