internal import CWebP
import Foundation

/// WebP through libwebp 1.2 (simple decode API, advanced encode API).
enum WebPCodec {
    static let maxDimension = 16383

    static func decode(_ bytes: [UInt8], maxPixels: Int) throws -> Image {
        var f = WebPBitstreamFeatures()
        let st = bytes.withUnsafeBufferPointer { WebPGetFeatures($0.baseAddress, $0.count, &f) }
        switch st {
        case VP8_STATUS_OK: break
        case VP8_STATUS_NOT_ENOUGH_DATA: throw ImageIOError(.truncated, "WebP header incomplete (file truncated)")
        default: throw ImageIOError(.corrupt, "WebP header unreadable (libwebp status \(st.rawValue))")
        }
        try checkPixels(Int(f.width), Int(f.height), maxPixels, "WebP")
        if f.has_animation != 0 {
            throw ImageIOError(.unsupported, "animated WebP is not supported (extract a frame first)")
        }
        let alpha = f.has_alpha != 0
        let layout: ChannelLayout = alpha ? .rgba : .rgb
        let w = Int(f.width), h = Int(f.height)
        let stride = w * layout.channels
        let count = stride * h
        var ok = false
        let px = [UInt8](unsafeUninitializedCapacity: count) { buf, n in
            let r = bytes.withUnsafeBufferPointer { src in
                alpha ? WebPDecodeRGBAInto(src.baseAddress, src.count, buf.baseAddress, count, Int32(stride))
                      : WebPDecodeRGBInto(src.baseAddress, src.count, buf.baseAddress, count, Int32(stride))
            }
            ok = r != nil
            n = count
        }
        guard ok else {
            // RIFF size field: bytes 4..<8, little-endian, counts everything after byte 8.
            let declared = bytes.count >= 8
                ? Int(bytes[4]) | Int(bytes[5]) << 8 | Int(bytes[6]) << 16 | Int(bytes[7]) << 24 : 0
            if declared + 8 > bytes.count {
                throw ImageIOError(.truncated, "WebP data ends early: \(bytes.count) of \(declared + 8) bytes (file truncated)")
            }
            throw ImageIOError(.corrupt, "WebP data unreadable (libwebp could not decode the bitstream)")
        }
        return Image(unchecked: w, h, layout, .u8(px), ImageMetadata(sourceFormat: .webp))
    }

    /// Encodes 8-bit RGB or RGBA. Lossless keeps every sample (RGB under transparent pixels too).
    static func encode(_ image: Image, quality: Double, lossless: Bool) throws -> [UInt8] {
        precondition(image.layout == .rgb || image.layout == .rgba)
        guard image.width <= maxDimension, image.height <= maxDimension else {
            throw ImageIOError(.encodingFailed,
                               "WebP cannot store \(image.width)×\(image.height): at most \(maxDimension) pixels per side")
        }
        var config = WebPConfig()
        guard WebPConfigInit(&config) != 0 else { throw ImageIOError(.io, "libwebp version mismatch") }
        config.lossless = lossless ? 1 : 0
        config.quality = Float(max(0, min(100, quality)))
        config.exact = lossless ? 1 : 0
        config.thread_level = 1  // let libwebp use a second thread where it can
        guard WebPValidateConfig(&config) != 0 else { throw ImageIOError(.invalidArgument, "invalid WebP settings") }
        var pic = WebPPicture()
        guard WebPPictureInit(&pic) != 0 else { throw ImageIOError(.io, "libwebp version mismatch") }
        pic.use_argb = lossless ? 1 : 0
        pic.width = Int32(image.width)
        pic.height = Int32(image.height)
        let px = image.samples8
        let imported = px.withUnsafeBufferPointer {
            image.layout == .rgba
                ? WebPPictureImportRGBA(&pic, $0.baseAddress, Int32(image.width * 4))
                : WebPPictureImportRGB(&pic, $0.baseAddress, Int32(image.width * 3))
        }
        defer { WebPPictureFree(&pic) }
        guard imported != 0 else { throw ImageIOError(.io, "WebP: out of memory importing \(image.width)×\(image.height)") }
        let writer = UnsafeMutablePointer<WebPMemoryWriter>.allocate(capacity: 1)
        defer { WebPMemoryWriterClear(writer); writer.deallocate() }
        WebPMemoryWriterInit(writer)
        pic.writer = WebPMemoryWrite
        pic.custom_ptr = UnsafeMutableRawPointer(writer)
        guard WebPEncode(&config, &pic) != 0 else {
            throw ImageIOError(.encodingFailed, "WebP encoding failed (libwebp error \(pic.error_code.rawValue))")
        }
        return Array(UnsafeBufferPointer(start: writer.pointee.mem, count: writer.pointee.size))
    }
}
