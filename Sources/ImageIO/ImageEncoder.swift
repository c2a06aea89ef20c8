import Foundation

/// Settings for encoding.
public struct EncodeOptions: Sendable {
    /// JPEG quality 1–100. Chroma is 4:4:4 at quality ≥ 90 and 4:2:0 below.
    public var jpegQuality: Int
    /// WebP quality 0–100 (lossy), or compression effort 0–100 when `webpLossless`.
    public var webpQuality: Double
    /// Write lossless WebP (bit-exact, including RGB under transparent pixels).
    public var webpLossless: Bool
    /// zlib level 0–9 for PNG. Default 1 (fastest), as OpenCV's `imwrite`, which upstream Real-ESRGAN uses.
    public var pngCompressionLevel: Int
    /// Copy `image.metadata.exif` into JPEG output (orientation reset to 1 when the decoder turned the pixels upright).
    public var copyEXIF: Bool
    /// Background (0 black … 1 white) that alpha is composited over when the format cannot keep alpha.
    public var alphaBackground: Double

    /// Defaults: JPEG q95, WebP lossy q90, PNG level 1, EXIF copied, black background.
    public init(jpegQuality: Int = 95, webpQuality: Double = 90, webpLossless: Bool = false,
                pngCompressionLevel: Int = 1, copyEXIF: Bool = true, alphaBackground: Double = 0) {
        self.jpegQuality = jpegQuality
        self.webpQuality = webpQuality
        self.webpLossless = webpLossless
        self.pngCompressionLevel = pngCompressionLevel
        self.copyEXIF = copyEXIF
        self.alphaBackground = alphaBackground
    }
}

/// Something the encoder changed because the output format cannot hold it.
public struct ConversionNote: Sendable, Equatable, CustomStringConvertible {
    /// What was changed.
    public enum Kind: String, Sendable {
        /// Alpha was composited over the background colour.
        case alphaDropped
        /// 16-bit samples were rounded to 8 bits.
        case bitDepthReduced
        /// Gray was replicated into RGB.
        case grayExpanded
        /// The source EXIF was not written.
        case exifDropped
    }
    /// What was changed.
    public var kind: Kind
    /// The change and its reason, in words.
    public var message: String
    public var description: String { message }
}

/// Encoded bytes plus the conversions that were needed.
public struct EncodedImage: Sendable {
    /// The file contents.
    public var data: Data
    /// Conversions applied (empty when the image was stored as is).
    public var notes: [ConversionNote]
}

/// Encodes images as PNG, JPEG or WebP, keeping bit depth, alpha and gray wherever the format can.
public enum ImageEncoder {
    /// Encodes `image` as `format`; see `EncodedImage.notes` for anything the format could not keep.
    public static func encode(_ image: Image, as format: ImageFormat, options: EncodeOptions = EncodeOptions()) throws -> EncodedImage {
        var notes: [ConversionNote] = []
        var img = image
        func reduceDepth(_ why: String) {
            if img.bitDepth == 16 {
                img = img.withBitDepth(8)
                notes.append(ConversionNote(kind: .bitDepthReduced, message: "16-bit reduced to 8-bit: \(why)"))
            }
        }
        let bytes: [UInt8]
        switch format {
        case .png:
            bytes = try PNGCodec.encode(img, compressionLevel: options.pngCompressionLevel)
        case .jpeg:
            guard (1...100).contains(options.jpegQuality) else {
                throw ImageIOError(.invalidArgument, "JPEG quality \(options.jpegQuality) is outside 1…100")
            }
            reduceDepth("JPEG stores 8 bits per sample")
            if img.layout.hasAlpha {
                let bg = options.alphaBackground == 0 ? "black" : options.alphaBackground == 1 ? "white" : "gray \(options.alphaBackground)"
                img = img.converted(to: img.layout.isGray ? .gray : .rgb, background: options.alphaBackground)
                notes.append(ConversionNote(kind: .alphaDropped, message: "alpha dropped: JPEG cannot store alpha (composited on \(bg))"))
            }
            var out = try JPEGCodec.encode(img, quality: options.jpegQuality)
            if options.copyEXIF, let exif = image.metadata.exif {
                let copied = image.metadata.orientationApplied ? EXIF.settingOrientation(exif, to: 1) : exif
                if let withExif = EXIF.inserting(copied, intoJPEG: out) {
                    out = withExif
                } else {
                    notes.append(ConversionNote(kind: .exifDropped, message: "EXIF dropped: \(exif.count) bytes do not fit one APP1 segment"))
                }
            }
            bytes = out
        case .webp:
            guard (0...100).contains(options.webpQuality) else {
                throw ImageIOError(.invalidArgument, "WebP quality \(options.webpQuality) is outside 0…100")
            }
            reduceDepth("WebP stores 8 bits per sample")
            if img.layout.isGray {
                img = img.converted(to: img.layout.hasAlpha ? .rgba : .rgb)
                notes.append(ConversionNote(kind: .grayExpanded, message: "gray stored as RGB: WebP has no grayscale mode"))
            }
            bytes = try WebPCodec.encode(img, quality: options.webpQuality, lossless: options.webpLossless)
        }
        if format != .jpeg, options.copyEXIF, image.metadata.exif != nil {
            notes.append(ConversionNote(kind: .exifDropped, message: "EXIF not written: only JPEG output carries EXIF here"))
        }
        return EncodedImage(data: Data(bytes), notes: notes)
    }

    /// Encodes and writes atomically (temporary file in the same directory, then rename), so an existing
    /// file is never truncated or half-written. The format comes from the extension when `format` is nil.
    @discardableResult
    public static func write(_ image: Image, to url: URL, format: ImageFormat? = nil,
                             options: EncodeOptions = EncodeOptions()) throws -> [ConversionNote] {
        let path = url.path
        guard let fmt = format ?? ImageFormat(fileExtension: url.pathExtension) else {
            throw ImageIOError(.invalidArgument,
                               "cannot tell the format from the extension \".\(url.pathExtension)\" (use .png, .jpg or .webp)", path: path)
        }
        let encoded: EncodedImage
        do { encoded = try encode(image, as: fmt, options: options) } catch let e as ImageIOError { throw e.at(path) }
        try atomicWrite(encoded.data, to: url)
        return encoded.notes
    }

    /// Writes `data` to a temporary file next to `url`, then renames it over `url`.
    static func atomicWrite(_ data: Data, to url: URL) throws {
        let path = url.path
        let dir = url.deletingLastPathComponent().path
        let tmp = (dir as NSString).appendingPathComponent(".\(url.lastPathComponent).\(UInt64.random(in: 0...UInt64.max)).tmp")
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw ImageIOError(.io, "cannot create a temporary file in \(dir): \(String(cString: strerror(errno)))", path: path)
        }
        var failure: String? = nil
        data.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = Foundation.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    failure = "write failed: \(String(cString: strerror(errno)))"
                    return
                }
                off += n
            }
        }
        if failure == nil, fsync(fd) != 0 { failure = "fsync failed: \(String(cString: strerror(errno)))" }
        if close(fd) != 0, failure == nil { failure = "close failed: \(String(cString: strerror(errno)))" }
        if failure == nil, rename(tmp, path) != 0 { failure = "cannot move into place: \(String(cString: strerror(errno)))" }
        if let failure {
            unlink(tmp)
            throw ImageIOError(.io, failure, path: path)
        }
    }
}
