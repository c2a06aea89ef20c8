import Foundation

/// Colour-statistics matching of a restored face to its original crop (beyond upstream: GPEN can shift skin tones).
///
/// Within the paste mask (pixels weighted by the mask value), each channel of the restored face is shifted and
/// scaled so that its weighted mean and standard deviation equal those of the original crop:
/// v' = (v − μ_restored) · clamp(σ_original / σ_restored, 0.5, 2) + μ_original, in CIE Lab (D65, sRGB transfer) or
/// in full-range BT.601 YCbCr. The ratio clamp keeps a flat region from being blown up. `strength` blends the
/// matched result with the unmatched one.
public enum FaceColor {
    /// Colour space in which the statistics are matched.
    public enum Space: String, Sendable, Equatable, CaseIterable {
        /// CIE L*a*b* (D65 white, sRGB transfer curve): perceptual, separates lightness from colour.
        case lab
        /// Full-range BT.601 YCbCr: cheap, linear in the bytes.
        case ycbcr
    }

    /// Weighted per-channel mean and standard deviation of `image` in `space` (weights: `weights`, same size).
    public static func statistics(_ image: FaceImage, weights: FaceMask, space: Space) throws
        -> (mean: SIMD3<Double>, std: SIMD3<Double>) {
        guard image.channels >= 3 else {
            throw FaceGeometryError.invalidParameter("FaceColor: needs 3 or 4 channels, got \(image.channels)")
        }
        guard weights.width == image.width, weights.height == image.height else {
            throw FaceGeometryError.mismatch(
                "FaceColor: weights \(weights.width)x\(weights.height) vs image \(image.width)x\(image.height)")
        }
        var sw = 0.0, s1 = SIMD3<Double>(repeating: 0), s2 = SIMD3<Double>(repeating: 0)
        for i in 0..<(image.width * image.height) {
            let w = Double(weights.values[i])
            guard w > 0, w.isFinite else { continue }
            let v = toSpace(pixel(image, i), space)
            sw += w; s1 += w * v; s2 += w * v * v
        }
        guard sw > 0 else { return (SIMD3(repeating: 0), SIMD3(repeating: 0)) }
        let mean = s1 / sw
        let variance = (s2 / sw - mean * mean).replacing(with: 0, where: (s2 / sw - mean * mean) .< 0)
        return (mean, SIMD3(variance.x.squareRoot(), variance.y.squareRoot(), variance.z.squareRoot()))
    }

    /// `restored` with its colour statistics inside `weights` matched to those of `reference` (see the type doc).
    /// With an all-zero mask the image is returned unchanged. Alpha (a 4th channel) is kept.
    public static func matchStatistics(_ restored: FaceImage, to reference: FaceImage, weights: FaceMask,
                                       space: Space, strength: Double = 1) throws -> FaceImage {
        guard restored.width == reference.width, restored.height == reference.height,
              restored.channels == reference.channels else {
            throw FaceGeometryError.mismatch("FaceColor: restored \(restored.width)x\(restored.height)x"
                + "\(restored.channels) vs reference \(reference.width)x\(reference.height)x\(reference.channels)")
        }
        guard (0...1).contains(strength) else {
            throw FaceGeometryError.invalidParameter("FaceColor: strength \(strength) must be in 0...1")
        }
        let r = try statistics(restored, weights: weights, space: space)
        let o = try statistics(reference, weights: weights, space: space)
        if weights.values.allSatisfy({ !($0 > 0) }) { return restored }
        var gain = SIMD3<Double>(repeating: 1)
        for c in 0..<3 where r.std[c] > 1e-6 { gain[c] = min(max(o.std[c] / r.std[c], 0.5), 2) }
        var out = restored
        let cn = restored.channels
        for i in 0..<(restored.width * restored.height) {
            let v = toSpace(pixel(restored, i), space)
            let matched = (v - r.mean) * gain + o.mean
            let blended = v + strength * (matched - v)
            let bgr = fromSpace(blended, space)
            for c in 0..<3 {
                let x = bgr[c].rounded(.toNearestOrEven)
                out.pixels[i * cn + c] = UInt8(min(max(x, 0), 255))
            }
        }
        return out
    }

    @inline(__always) static func pixel(_ im: FaceImage, _ i: Int) -> SIMD3<Double> {
        let j = i * im.channels
        return SIMD3(Double(im.pixels[j]), Double(im.pixels[j + 1]), Double(im.pixels[j + 2]))  // B, G, R
    }

    /// sRGB decoding of the byte values 0...255.
    static let srgbToLinear: [Double] = (0..<256).map { v in
        let c = Double(v) / 255
        return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4)
    }

    @inline(__always) static func linear(_ v: Double) -> Double {
        if v >= 0, v <= 255, v == v.rounded() { return srgbToLinear[Int(v)] }
        let c = v / 255
        return c <= 0.04045 ? c / 12.92 : pow((c + 0.055) / 1.055, 2.4)
    }

    static func toSpace(_ bgr: SIMD3<Double>, _ space: Space) -> SIMD3<Double> {
        let (b, g, r) = (bgr.x, bgr.y, bgr.z)
        switch space {
        case .ycbcr:
            let y = 0.299 * r + 0.587 * g + 0.114 * b
            return SIMD3(y, 128 + (b - y) * 0.564, 128 + (r - y) * 0.713)
        case .lab:
            let (rl, gl, bl) = (linear(r), linear(g), linear(b))
            let x = (0.4124564 * rl + 0.3575761 * gl + 0.1804375 * bl) / 0.95047
            let y = 0.2126729 * rl + 0.7151522 * gl + 0.0721750 * bl
            let z = (0.0193339 * rl + 0.1191920 * gl + 0.9503041 * bl) / 1.08883
            func f(_ t: Double) -> Double { t > 216.0 / 24389.0 ? cbrt(t) : (24389.0 / 27.0 * t + 16) / 116 }
            let (fx, fy, fz) = (f(x), f(y), f(z))
            return SIMD3(116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz))
        }
    }

    static func fromSpace(_ v: SIMD3<Double>, _ space: Space) -> SIMD3<Double> {
        switch space {
        case .ycbcr:
            let y = v.x, cb = v.y - 128, cr = v.z - 128
            let r = y + cr / 0.713, b = y + cb / 0.564
            let g = (y - 0.299 * r - 0.114 * b) / 0.587
            return SIMD3(b, g, r)
        case .lab:
            let fy = (v.x + 16) / 116, fx = fy + v.y / 500, fz = fy - v.z / 200
            func finv(_ t: Double) -> Double { t > 6.0 / 29.0 ? t * t * t : (116 * t - 16) * 27.0 / 24389.0 }
            let x = finv(fx) * 0.95047, y = finv(fy), z = finv(fz) * 1.08883
            let rl = 3.2404542 * x - 1.5371385 * y - 0.4985314 * z
            let gl = -0.9692660 * x + 1.8760108 * y + 0.0415560 * z
            let bl = 0.0556434 * x - 0.2040259 * y + 1.0572252 * z
            func enc(_ c: Double) -> Double {
                let c = min(max(c, 0), 1)
                return 255 * (c <= 0.0031308 ? 12.92 * c : 1.055 * pow(c, 1 / 2.4) - 0.055)
            }
            return SIMD3(enc(bl), enc(gl), enc(rl))
        }
    }
}
