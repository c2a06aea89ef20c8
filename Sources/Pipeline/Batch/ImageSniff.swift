// Content-based image recognition for batch inputs (PNG / JPEG / WebP magic bytes), through ImageIO.

import Foundation
import ImageIO

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

/// Recognises PNG, JPEG or WebP from the first bytes of a file; nil for anything else (ImageIO's magic-byte check).
public func sniffImageFormat<C: Collection>(_ bytes: C) -> BatchImageFormat? where C.Element == UInt8 {
    ImageFormat.sniff(bytes).flatMap { BatchImageFormat(rawValue: $0.rawValue) }
}

/// Recognises the format of the file at `path` from its first bytes; nil if unreadable or not an image.
public func sniffImageFormat(atPath path: String) -> BatchImageFormat? {
    ImageFormat.sniff(fileAt: URL(fileURLWithPath: path)).flatMap { BatchImageFormat(rawValue: $0.rawValue) }
}
