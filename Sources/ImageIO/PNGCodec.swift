internal import CPNG
import Foundation

/// PNG through libpng (classic API, wrapped by the C helpers in `CPNG/shim.h`).
enum PNGCodec {
    static func errText(_ e: inout enh_png_err) -> String {
        withUnsafeBytes(of: &e.msg) { raw in
            String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func classify(_ msg: String) -> ImageIOError.Code {
        let m = msg.lowercased()
        return m.contains("truncated") || m.contains("end of data") || m.contains("not enough image data")
            ? .truncated : .corrupt
    }

    static func decode(_ bytes: [UInt8], maxPixels: Int) throws -> Image {
        var err = enh_png_err()
        var w: UInt32 = 0, h: UInt32 = 0
        var ch: Int32 = 0, depth: Int32 = 0, interlaced: Int32 = 0
        let rc = bytes.withUnsafeBufferPointer {
            enh_png_read_header($0.baseAddress, $0.count, &w, &h, &ch, &depth, &interlaced, &err)
        }
        guard rc == 0 else {
            let m = errText(&err)
            throw ImageIOError(classify(m), "PNG header unreadable: \(m)")
        }
        try checkPixels(Int(w), Int(h), maxPixels, "PNG")
        guard let layout = ChannelLayout(rawValue: Int(ch)) else {
            throw ImageIOError(.unsupported, "PNG with \(ch) channels")
        }
        let sampleBytes = Int(depth) / 8
        let stride = Int(w) * Int(ch) * sampleBytes
        let count = Int(w) * Int(h) * Int(ch)
        var derr = enh_png_err()
        func run(_ out: UnsafeMutableRawBufferPointer) -> Int32 {
            bytes.withUnsafeBufferPointer {
                enh_png_decode($0.baseAddress, $0.count, out.baseAddress!.assumingMemoryBound(to: UInt8.self),
                               out.count, stride, &derr)
            }
        }
        let storage: PixelStorage
        var status: Int32 = 0
        if depth == 16 {
            let a = [UInt16](unsafeUninitializedCapacity: count) { buf, n in
                status = run(UnsafeMutableRawBufferPointer(buf)); n = count
            }
            storage = .u16(a)
        } else {
            let a = [UInt8](unsafeUninitializedCapacity: count) { buf, n in
                status = run(UnsafeMutableRawBufferPointer(buf)); n = count
            }
            storage = .u8(a)
        }
        guard status == 0 else {
            let m = errText(&derr)
            throw ImageIOError(classify(m), "PNG data unreadable: \(m)")
        }
        return Image(unchecked: Int(w), Int(h), layout, storage, ImageMetadata(sourceFormat: .png))
    }

    static func encode(_ image: Image, compressionLevel: Int) throws -> [UInt8] {
        var err = enh_png_err()
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size = 0
        let level = Int32(max(0, min(9, compressionLevel)))
        let rc: Int32
        switch image.storage {
        case .u8(let a):
            rc = a.withUnsafeBytes {
                enh_png_encode($0.bindMemory(to: UInt8.self).baseAddress, UInt32(image.width), UInt32(image.height),
                               Int32(image.channels), 8, level, &out, &size, &err)
            }
        case .u16(let a):
            rc = a.withUnsafeBytes {
                enh_png_encode($0.bindMemory(to: UInt8.self).baseAddress, UInt32(image.width), UInt32(image.height),
                               Int32(image.channels), 16, level, &out, &size, &err)
            }
        }
        guard rc == 0, let out else { throw ImageIOError(.encodingFailed, "PNG encoding failed: \(errText(&err))") }
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: size))
    }
}

/// Refuses images whose header declares more than `maxPixels` pixels (or a zero size).
func checkPixels(_ w: Int, _ h: Int, _ maxPixels: Int, _ format: String) throws {
    guard w > 0, h > 0 else { throw ImageIOError(.corrupt, "\(format) header declares an empty \(w)×\(h) image") }
    let (n, o) = w.multipliedReportingOverflow(by: h)
    if o || n > maxPixels {
        throw ImageIOError(.tooManyPixels,
                           "\(format) header declares \(w)×\(h) = \(o ? "overflow" : String(n)) pixels, over the limit of \(maxPixels) (DecodeOptions.maxPixels)")
    }
}
