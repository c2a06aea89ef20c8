import Foundation

/// Settings for decoding.
public struct DecodeOptions: Sendable {
    /// Largest width × height accepted, checked from the header before pixels are allocated.
    public var maxPixels: Int
    /// Turn JPEGs upright according to their EXIF orientation (1–8).
    public var applyOrientation: Bool
    /// Refuse a file whose extension names a different format than its content (`.mislabelled`).
    /// When false (the default), the content decides and a note is added to the metadata.
    public var strictExtension: Bool
    /// Largest file read, in bytes.
    public var maxFileBytes: Int

    /// Default: 100 megapixels, orientation applied, extension not checked, files up to 1 GiB.
    public init(maxPixels: Int = 100_000_000, applyOrientation: Bool = true, strictExtension: Bool = false,
                maxFileBytes: Int = 1 << 30) {
        self.maxPixels = maxPixels
        self.applyOrientation = applyOrientation
        self.strictExtension = strictExtension
        self.maxFileBytes = maxFileBytes
    }
}

/// Decodes PNG, JPEG and WebP files, choosing the codec from the content's magic bytes.
///
/// Output: PNG keeps its layout (gray, gray+alpha, RGB, RGBA; palette → RGB or RGBA; tRNS → alpha;
/// 1/2/4-bit → 8-bit) and its bit depth (16-bit stays 16-bit), with no gamma transform. JPEG gives
/// 8-bit gray or RGB, turned upright by EXIF orientation, with the EXIF bytes kept in the metadata
/// (CMYK is converted to RGB). WebP gives 8-bit RGB or RGBA; animated WebP is refused (`.unsupported`).
public enum ImageDecoder {
    /// Reads and decodes the file at `url`. Errors carry the file path.
    public static func decode(fileAt url: URL, options: DecodeOptions = DecodeOptions()) throws -> Image {
        let path = url.path
        let bytes: [UInt8]
        do {
            let attrs = try FileManager.default.attributesOfItem(atPath: path)
            if let type = attrs[.type] as? FileAttributeType, type == .typeDirectory {
                throw ImageIOError(.io, "is a directory, not an image file", path: path)
            }
            if let size = attrs[.size] as? Int, size > options.maxFileBytes {
                throw ImageIOError(.tooManyPixels, "file is \(size) bytes, over the limit of \(options.maxFileBytes) (DecodeOptions.maxFileBytes)", path: path)
            }
            bytes = [UInt8](try Data(contentsOf: url))
        } catch let e as ImageIOError {
            throw e
        } catch {
            throw ImageIOError(.io, "cannot read file: \(error.localizedDescription)", path: path)
        }
        return try decode(bytes: bytes, name: path, options: options)
    }

    /// Decodes bytes in memory; `name` (a file name or path) is used for the extension check and in errors.
    public static func decode(data: Data, name: String? = nil, options: DecodeOptions = DecodeOptions()) throws -> Image {
        try decode(bytes: [UInt8](data), name: name, options: options)
    }

    /// Decodes bytes in memory; `name` (a file name or path) is used for the extension check and in errors.
    public static func decode(bytes: [UInt8], name: String? = nil, options: DecodeOptions = DecodeOptions()) throws -> Image {
        guard !bytes.isEmpty else { throw ImageIOError(.empty, "empty file (0 bytes)", path: name) }
        guard let format = ImageFormat.sniff(bytes) else {
            throw ImageIOError(.notAnImage, "not an image (PNG, JPEG or WebP expected)", path: name)
        }
        var note: String? = nil
        if let name, let named = ImageFormat(fileExtension: (name as NSString).pathExtension), named != format {
            if options.strictExtension {
                throw ImageIOError(.mislabelled, "named .\((name as NSString).pathExtension) but contains \(format) data",
                                   path: name)
            }
            note = "mislabelled: named .\((name as NSString).pathExtension) but contains \(format) data (decoded as \(format))"
        }
        var image: Image
        do {
            switch format {
            case .png: image = try PNGCodec.decode(bytes, maxPixels: options.maxPixels)
            case .jpeg: image = try JPEGCodec.decode(bytes, maxPixels: options.maxPixels, applyOrientation: options.applyOrientation)
            case .webp: image = try WebPCodec.decode(bytes, maxPixels: options.maxPixels)
            }
        } catch let e as ImageIOError {
            throw e.at(name)
        }
        if let note { image.metadata.notes.append(note) }
        return image
    }
}
