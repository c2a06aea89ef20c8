internal import CTurboJPEG
import Foundation

/// JPEG through TurboJPEG (libjpeg-turbo 2.1).
enum JPEGCodec {
    static func message(_ h: tjhandle?) -> String {
        guard let p = tjGetErrorStr2(h) else { return "unknown TurboJPEG error" }
        return String(cString: p)
    }

    static func decode(_ bytes: [UInt8], maxPixels: Int, applyOrientation orient: Bool) throws -> Image {
        guard let h = tjInitDecompress() else { throw ImageIOError(.io, "cannot create a TurboJPEG decoder") }
        defer { tjDestroy(h) }
        var w: Int32 = 0, ht: Int32 = 0, subsamp: Int32 = 0, cs: Int32 = 0
        let rc = bytes.withUnsafeBufferPointer {
            tjDecompressHeader3(h, $0.baseAddress, UInt($0.count), &w, &ht, &subsamp, &cs)
        }
        guard rc == 0 else {
            let m = message(h)
            let code: ImageIOError.Code = m.lowercased().contains("premature end") || m.contains("insufficient") ? .truncated : .corrupt
            throw ImageIOError(code, "JPEG header unreadable: \(m)")
        }
        if w == 0 || ht == 0 {
            // TurboJPEG reports 0×0 when the data ends before a frame header (or holds tables only).
            throw ImageIOError(.truncated, "JPEG ends before its frame header (file truncated)")
        }
        try checkPixels(Int(w), Int(ht), maxPixels, "JPEG")
        let cmyk = cs == Int32(TJCS_CMYK.rawValue) || cs == Int32(TJCS_YCCK.rawValue)
        let gray = cs == Int32(TJCS_GRAY.rawValue)
        let pf: TJPF = gray ? TJPF_GRAY : (cmyk ? TJPF_CMYK : TJPF_RGB)
        let ch = gray ? 1 : (cmyk ? 4 : 3)
        let count = Int(w) * Int(ht) * ch
        var status: Int32 = 0
        var pixels = [UInt8](unsafeUninitializedCapacity: count) { buf, n in
            status = bytes.withUnsafeBufferPointer {
                tjDecompress2(h, $0.baseAddress, UInt($0.count), buf.baseAddress, w, 0, ht, Int32(pf.rawValue),
                              TJFLAG_LIMITSCANS)
            }
            n = count
        }
        var notes: [String] = []
        if status != 0 {
            let m = message(h)
            let lower = m.lowercased()
            if tjGetErrorCode(h) == Int32(TJERR_WARNING.rawValue) && !lower.contains("premature end") {
                notes.append("libjpeg warning: \(m)")
            } else {
                let code: ImageIOError.Code = lower.contains("premature end") ? .truncated : .corrupt
                throw ImageIOError(code, "JPEG data unreadable: \(m)")
            }
        }
        var layout: ChannelLayout = gray ? .gray : .rgb
        if cmyk {
            // Adobe-style inverted CMYK (what libjpeg produces for CMYK/YCCK files): R = C·K/255, etc.
            var rgb = [UInt8](repeating: 0, count: Int(w) * Int(ht) * 3)
            for i in 0..<(Int(w) * Int(ht)) {
                let k = UInt32(pixels[4 * i + 3])
                for j in 0..<3 { rgb[3 * i + j] = UInt8((UInt32(pixels[4 * i + j]) * k + 127) / 255) }
            }
            pixels = rgb
            layout = .rgb
            notes.append("CMYK JPEG converted to RGB")
        }
        var meta = ImageMetadata(sourceFormat: .jpeg, notes: notes)
        var width = Int(w), height = Int(ht)
        if let exif = EXIF.extract(fromJPEG: bytes) {
            meta.exif = exif
            if let o = EXIF.orientation(exif) {
                meta.orientation = o
                if orient {
                    (pixels, width, height) = applyOrientation(pixels, width: width, height: height,
                                                               channels: layout.channels, orientation: o)
                    meta.orientationApplied = true
                }
            }
        }
        return Image(unchecked: width, height, layout, .u8(pixels), meta)
    }

    /// Encodes 8-bit gray or RGB pixels; 4:4:4 chroma at quality ≥ 90, 4:2:0 below.
    static func encode(_ image: Image, quality: Int) throws -> [UInt8] {
        precondition(image.layout == .gray || image.layout == .rgb)
        guard let h = tjInitCompress() else { throw ImageIOError(.io, "cannot create a TurboJPEG encoder") }
        defer { tjDestroy(h) }
        let gray = image.layout == .gray
        let samp: TJSAMP = gray ? TJSAMP_GRAY : (quality >= 90 ? TJSAMP_444 : TJSAMP_420)
        var out: UnsafeMutablePointer<UInt8>? = nil
        var size: UInt = 0
        let px = image.samples8
        let rc = px.withUnsafeBufferPointer {
            tjCompress2(h, $0.baseAddress, Int32(image.width), 0, Int32(image.height),
                        Int32((gray ? TJPF_GRAY : TJPF_RGB).rawValue), &out, &size, Int32(samp.rawValue), Int32(quality), 0)
        }
        defer { if let out { tjFree(out) } }
        guard rc == 0, let out else { throw ImageIOError(.encodingFailed, "JPEG encoding failed: \(message(h))") }
        return Array(UnsafeBufferPointer(start: out, count: Int(size)))
    }
}
