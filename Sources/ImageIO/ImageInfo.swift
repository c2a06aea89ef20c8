internal import CPNG
internal import CTurboJPEG
internal import CWebP
import Foundation

/// What a file's header says, read without decoding the pixels.
public struct ImageInfo: Sendable, Equatable {
    /// The format found from the magic bytes.
    public var format: ImageFormat
    /// Width as decoded (after EXIF orientation for JPEG when it swaps the axes).
    public var width: Int
    /// Height as decoded (after EXIF orientation for JPEG when it swaps the axes).
    public var height: Int
    /// The layout `ImageDecoder` will produce.
    public var layout: ChannelLayout
    /// The bit depth `ImageDecoder` will produce (8 or 16).
    public var bitDepth: Int
}

extension ImageDecoder {
    /// Reads only the header of the file at `url`: format, size and layout.
    public static func info(fileAt url: URL, options: DecodeOptions = DecodeOptions()) throws -> ImageInfo {
        let bytes: [UInt8]
        do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
            throw ImageIOError(.io, "cannot read file: \(error.localizedDescription)", path: url.path)
        }
        return try info(bytes: bytes, name: url.path, options: options)
    }

    /// Reads only the header of an image in memory: format, size and layout.
    public static func info(bytes: [UInt8], name: String? = nil, options: DecodeOptions = DecodeOptions()) throws -> ImageInfo {
        guard !bytes.isEmpty else { throw ImageIOError(.empty, "empty file (0 bytes)", path: name) }
        guard let format = ImageFormat.sniff(bytes) else {
            throw ImageIOError(.notAnImage, "not an image (PNG, JPEG or WebP expected)", path: name)
        }
        switch format {
        case .png:
            var err = enh_png_err()
            var w: UInt32 = 0, h: UInt32 = 0
            var ch: Int32 = 0, depth: Int32 = 0, interlaced: Int32 = 0
            let rc = bytes.withUnsafeBufferPointer {
                enh_png_read_header($0.baseAddress, $0.count, &w, &h, &ch, &depth, &interlaced, &err)
            }
            guard rc == 0, let layout = ChannelLayout(rawValue: Int(ch)) else {
                let m = PNGCodec.errText(&err)
                throw ImageIOError(PNGCodec.classify(m), "PNG header unreadable: \(m)", path: name)
            }
            return ImageInfo(format: .png, width: Int(w), height: Int(h), layout: layout, bitDepth: Int(depth))
        case .jpeg:
            guard let h = tjInitDecompress() else { throw ImageIOError(.io, "cannot create a TurboJPEG decoder") }
            defer { tjDestroy(h) }
            var w: Int32 = 0, ht: Int32 = 0, subsamp: Int32 = 0, cs: Int32 = 0
            let rc = bytes.withUnsafeBufferPointer {
                tjDecompressHeader3(h, $0.baseAddress, UInt($0.count), &w, &ht, &subsamp, &cs)
            }
            guard rc == 0, w > 0, ht > 0 else {
                throw ImageIOError(rc == 0 ? .truncated : .corrupt, "JPEG header unreadable: \(JPEGCodec.message(h))", path: name)
            }
            var width = Int(w), height = Int(ht)
            if options.applyOrientation, let exif = EXIF.extract(fromJPEG: bytes), let o = EXIF.orientation(exif), o >= 5 {
                swap(&width, &height)
            }
            return ImageInfo(format: .jpeg, width: width, height: height,
                             layout: cs == Int32(TJCS_GRAY.rawValue) ? .gray : .rgb, bitDepth: 8)
        case .webp:
            var f = WebPBitstreamFeatures()
            let st = bytes.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &f) }
            guard st == VP8_STATUS_OK else {
                throw ImageIOError(st == VP8_STATUS_NOT_ENOUGH_DATA ? .truncated : .corrupt, "WebP header unreadable", path: name)
            }
            return ImageInfo(format: .webp, width: Int(f.width), height: Int(f.height),
                             layout: f.has_alpha != 0 ? .rgba : .rgb, bitDepth: 8)
        }
    }
}
