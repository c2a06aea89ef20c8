/// EXIF helpers: find the APP1 block in a JPEG, read and reset the orientation tag, insert APP1.
public enum EXIF {
    /// The EXIF payload (from the TIFF header on) of the first "Exif" APP1 segment of a JPEG, or nil.
    public static func extract(fromJPEG b: [UInt8]) -> [UInt8]? {
        guard b.count >= 4, b[0] == 0xFF, b[1] == 0xD8 else { return nil }
        var i = 2
        while i + 4 <= b.count {
            guard b[i] == 0xFF else { return nil }
            let marker = b[i + 1]
            if marker == 0xFF { i += 1; continue }
            if marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7) || marker == 0x01 { i += 2; continue }
            if marker == 0xDA || marker == 0xD9 { return nil }
            let len = Int(b[i + 2]) << 8 | Int(b[i + 3])
            guard len >= 2, i + 2 + len <= b.count else { return nil }
            if marker == 0xE1, len >= 8, b[(i + 4)..<(i + 10)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) {
                return Array(b[(i + 10)..<(i + 2 + len)])
            }
            i += 2 + len
        }
        return nil
    }

    /// Byte offset (within `tiff`) of the orientation tag's value and the byte order, if present and well formed.
    static func orientationOffset(_ t: [UInt8]) -> (offset: Int, bigEndian: Bool)? {
        guard t.count >= 8 else { return nil }
        let be: Bool
        if t[0] == 0x4D, t[1] == 0x4D { be = true } else if t[0] == 0x49, t[1] == 0x49 { be = false } else { return nil }
        func u16(_ o: Int) -> Int { be ? Int(t[o]) << 8 | Int(t[o + 1]) : Int(t[o + 1]) << 8 | Int(t[o]) }
        func u32(_ o: Int) -> Int { be ? u16(o) << 16 | u16(o + 2) : u16(o + 2) << 16 | u16(o) }
        guard u16(2) == 42 else { return nil }
        let ifd = u32(4)
        guard ifd >= 8, ifd + 2 <= t.count else { return nil }
        let n = u16(ifd)
        for k in 0..<n {
            let e = ifd + 2 + 12 * k
            guard e + 12 <= t.count else { return nil }
            if u16(e) == 0x0112 {
                guard u16(e + 2) == 3, u32(e + 4) >= 1 else { return nil }
                return (e + 8, be)
            }
        }
        return nil
    }

    /// The orientation (1–8) recorded in a TIFF-structured EXIF payload; nil if absent or out of range.
    public static func orientation(_ tiff: [UInt8]) -> Int? {
        guard let (o, be) = orientationOffset(tiff) else { return nil }
        let v = be ? Int(tiff[o]) << 8 | Int(tiff[o + 1]) : Int(tiff[o + 1]) << 8 | Int(tiff[o])
        return (1...8).contains(v) ? v : nil
    }

    /// A copy of the EXIF payload with the orientation tag set to `value` (unchanged if there is no tag).
    public static func settingOrientation(_ tiff: [UInt8], to value: Int) -> [UInt8] {
        guard let (o, be) = orientationOffset(tiff) else { return tiff }
        var t = tiff
        let v = UInt16(clamping: value)
        if be { t[o] = UInt8(v >> 8); t[o + 1] = UInt8(v & 0xFF) } else { t[o] = UInt8(v & 0xFF); t[o + 1] = UInt8(v >> 8) }
        return t
    }

    /// A minimal EXIF payload (little-endian TIFF, IFD0 holding only the orientation tag).
    public static func minimal(orientation: Int) -> [UInt8] {
        let v = UInt8(clamping: orientation)
        return [0x49, 0x49, 42, 0, 8, 0, 0, 0,   // header, IFD0 at 8
                1, 0,                            // one entry
                0x12, 0x01, 3, 0, 1, 0, 0, 0, v, 0, 0, 0,  // 0x0112 SHORT ×1 = v
                0, 0, 0, 0]                      // no next IFD
    }

    /// The JPEG with an "Exif" APP1 segment holding `tiff` inserted after SOI (and after a JFIF APP0),
    /// replacing any existing Exif APP1; nil if the payload is too large for one segment (64 KiB).
    public static func inserting(_ tiff: [UInt8], intoJPEG jpeg: [UInt8]) -> [UInt8]? {
        let len = tiff.count + 8
        guard len <= 0xFFFF, jpeg.count >= 4, jpeg[0] == 0xFF, jpeg[1] == 0xD8 else { return nil }
        var pos = 2
        var out = [UInt8]()
        out.reserveCapacity(jpeg.count + len + 2)
        out += [0xFF, 0xD8]
        // keep an APP0 (JFIF) first, as JFIF requires
        if jpeg.count >= 6, jpeg[2] == 0xFF, jpeg[3] == 0xE0 {
            let l = Int(jpeg[4]) << 8 | Int(jpeg[5])
            if pos + 2 + l <= jpeg.count { out += jpeg[pos..<(pos + 2 + l)]; pos += 2 + l }
        }
        out += [0xFF, 0xE1, UInt8(len >> 8), UInt8(len & 0xFF), 0x45, 0x78, 0x69, 0x66, 0, 0]
        out += tiff
        // drop existing Exif APP1 segments among the leading markers
        while pos + 4 <= jpeg.count, jpeg[pos] == 0xFF, jpeg[pos + 1] == 0xE1 {
            let l = Int(jpeg[pos + 2]) << 8 | Int(jpeg[pos + 3])
            guard pos + 2 + l <= jpeg.count, l >= 8,
                  jpeg[(pos + 4)..<(pos + 10)].elementsEqual([0x45, 0x78, 0x69, 0x66, 0, 0]) else { break }
            pos += 2 + l
        }
        out += jpeg[pos...]
        return out
    }
}

/// Turns interleaved pixels (H, W, C) upright for EXIF orientation 1–8; returns the new width and height.
func applyOrientation<T>(_ src: [T], width w: Int, height h: Int, channels c: Int, orientation: Int) -> ([T], Int, Int) {
    guard (2...8).contains(orientation) else { return (src, w, h) }
    let swap = orientation >= 5
    let ow = swap ? h : w, oh = swap ? w : h
    var dst = src  // same count; every element is overwritten
    src.withUnsafeBufferPointer { s in
        dst.withUnsafeMutableBufferPointer { d in
            for y in 0..<oh {
                for x in 0..<ow {
                    let sx: Int, sy: Int
                    switch orientation {
                    case 2: sx = w - 1 - x; sy = y
                    case 3: sx = w - 1 - x; sy = h - 1 - y
                    case 4: sx = x; sy = h - 1 - y
                    case 5: sx = y; sy = x
                    case 6: sx = y; sy = h - 1 - x
                    case 7: sx = w - 1 - y; sy = h - 1 - x
                    default: sx = w - 1 - y; sy = x  // 8
                    }
                    let si = (sy * w + sx) * c, di = (y * ow + x) * c
                    for k in 0..<c { d[di + k] = s[si + k] }
                }
            }
        }
    }
    return (dst, ow, oh)
}
