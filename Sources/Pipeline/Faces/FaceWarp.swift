import Foundation

/// Warps, resizes and small filters with OpenCV's arithmetic (the calls GPEN's paste-back makes).
public enum FaceWarp {
    /// Rounding of OpenCV's `saturate_cast<uchar>(float)`: round half to even, then clamp to 0...255.
    @inline(__always) static func saturateU8(_ v: Float) -> UInt8 {
        let r = v.rounded(.toNearestOrEven)
        if !(r > 0) { return 0 }  // also NaN → 0
        return r >= 255 ? 255 : UInt8(r)
    }

    /// Source-coordinate map of OpenCV 5's `warpAffine`: `dM` is the dst→src matrix; per row the offset
    /// `y·M1 + M2` is formed in float32, then `sx = fma(M0, x, offset)`, all coefficients rounded to float32.
    struct RowMap {
        let m: [Float]
        init(_ dM: [Double]) { m = dM.map { Float($0) } }
        @inline(__always) func rowOffsets(_ y: Int) -> (Float, Float) {
            let yf = Float(y)
            return (yf * m[1] + m[2], yf * m[4] + m[5])
        }
        @inline(__always) func map(_ x: Int, _ off: (Float, Float)) -> (Float, Float) {
            let xf = Float(x)
            return (off.0.addingProduct(m[0], xf), off.1.addingProduct(m[3], xf))
        }
    }

    /// `cv2.warpAffine(image, transform, (width, height), flags=INTER_LINEAR or INTER_AREA)` for uint8 images:
    /// bilinear, constant-0 border. `transform` maps source to destination pixels (OpenCV inverts it in Double) unless
    /// `inverseMap` is set (WARP_INVERSE_MAP: `transform` maps destination to source).
    public static func warpAffine(_ image: FaceImage, _ transform: AffineMatrix, width: Int, height: Int,
                                  inverseMap: Bool = false) throws -> FaceImage {
        _ = try checkedSize(width, height, image.channels, "warpAffine output")
        return try warpAffine(image, transform, region: Region(x0: 0, y0: 0, width: width, height: height),
                              inverseMap: inverseMap)
    }

    /// A window of a warp's output: pixels x0..<x0+width, y0..<y0+height of the full destination.
    struct Region: Equatable {
        var x0: Int, y0: Int, width: Int, height: Int
    }

    /// The part of a `width`×`height` destination that a warp of a `sourceWidth`×`sourceHeight` image with
    /// `transform` (source → destination) can reach: the image of the source rectangle widened by one pixel
    /// (bilinear taps) plus a 2 px safety margin, clipped. Outside it the warp is exactly 0. Nil if empty.
    static func reach(of transform: AffineMatrix, sourceWidth: Int, sourceHeight: Int,
                      width: Int, height: Int) -> Region? {
        let corners = [SIMD2<Double>(-1, -1), SIMD2(Double(sourceWidth), -1), SIMD2(-1, Double(sourceHeight)),
                       SIMD2(Double(sourceWidth), Double(sourceHeight))].map(transform.apply)
        let xs = corners.map(\.x), ys = corners.map(\.y)
        guard (xs + ys).allSatisfy(\.isFinite) else { return Region(x0: 0, y0: 0, width: width, height: height) }
        let lo = { (v: Double) in Int(max(-1e9, min(1e9, (v - 2).rounded(.down)))) }
        let hi = { (v: Double) in Int(max(-1e9, min(1e9, (v + 2).rounded(.up)))) }
        let x0 = max(0, lo(xs.min()!)), x1 = min(width, hi(xs.max()!) + 1)
        let y0 = max(0, lo(ys.min()!)), y1 = min(height, hi(ys.max()!) + 1)
        guard x1 > x0, y1 > y0 else { return nil }
        return Region(x0: x0, y0: y0, width: x1 - x0, height: y1 - y0)
    }

    /// The uint8 warp restricted to `region` of the destination (output size = region size, same values).
    static func warpAffine(_ image: FaceImage, _ transform: AffineMatrix, region: Region,
                           inverseMap: Bool = false) throws -> FaceImage {
        var out = try FaceImage(width: region.width, height: region.height, channels: image.channels)
        let cn = image.channels, sw = image.width, sh = image.height
        let stride = sw * cn
        image.pixels.withUnsafeBufferPointer { src in
            out.pixels.withUnsafeMutableBufferPointer { dst in
                walk(transform, inverseMap: inverseMap, region: region,
                     sourceWidth: sw, sourceHeight: sh) { p, ix, iy, ax, ay, interior in
                    let o = p * cn
                    let base = iy * stride + ix * cn
                    if interior {
                        for c in 0..<cn {
                            let p00 = Float(src[base + c]), p01 = Float(src[base + cn + c])
                            let p10 = Float(src[base + stride + c]), p11 = Float(src[base + stride + cn + c])
                            let v0 = p00.addingProduct(ax, p01 - p00)
                            let v1 = p10.addingProduct(ax, p11 - p10)
                            dst[o + c] = saturateU8(v0.addingProduct(ay, v1 - v0))
                        }
                    } else {
                        let inX0 = ix >= 0, inX1 = ix + 1 < sw, inY0 = iy >= 0, inY1 = iy + 1 < sh
                        for c in 0..<cn {
                            let p00: Float = inX0 && inY0 ? Float(src[base + c]) : 0
                            let p01: Float = inX1 && inY0 ? Float(src[base + cn + c]) : 0
                            let p10: Float = inX0 && inY1 ? Float(src[base + stride + c]) : 0
                            let p11: Float = inX1 && inY1 ? Float(src[base + stride + cn + c]) : 0
                            let v0 = p00.addingProduct(ax, p01 - p00)
                            let v1 = p10.addingProduct(ax, p11 - p10)
                            dst[o + c] = saturateU8(v0.addingProduct(ay, v1 - v0))
                        }
                    }
                }
            }
        }
        return out
    }

    /// `cv2.warpAffine` of a float32 mask: bilinear, constant-0 border, same coordinate arithmetic as the uint8 warp.
    public static func warpAffine(_ mask: FaceMask, _ transform: AffineMatrix, width: Int, height: Int,
                                  inverseMap: Bool = false) throws -> FaceMask {
        _ = try checkedSize(width, height, 1, "warpAffine output")
        return try warpAffine(mask, transform, region: Region(x0: 0, y0: 0, width: width, height: height),
                              inverseMap: inverseMap)
    }

    /// The float warp restricted to `region` of the destination.
    static func warpAffine(_ mask: FaceMask, _ transform: AffineMatrix, region: Region,
                           inverseMap: Bool = false) throws -> FaceMask {
        var out = try FaceMask(width: region.width, height: region.height)
        let sw = mask.width, sh = mask.height
        mask.values.withUnsafeBufferPointer { src in
            out.values.withUnsafeMutableBufferPointer { dst in
                walk(transform, inverseMap: inverseMap, region: region,
                     sourceWidth: sw, sourceHeight: sh) { p, ix, iy, ax, ay, _ in
                    let inX0 = ix >= 0, inX1 = ix + 1 < sw, inY0 = iy >= 0, inY1 = iy + 1 < sh
                    let base = iy * sw + ix
                    let p00: Float = inX0 && inY0 ? src[base] : 0
                    let p01: Float = inX1 && inY0 ? src[base + 1] : 0
                    let p10: Float = inX0 && inY1 ? src[base + sw] : 0
                    let p11: Float = inX1 && inY1 ? src[base + sw + 1] : 0
                    let v0 = p00.addingProduct(ax, p01 - p00)
                    let v1 = p10.addingProduct(ax, p11 - p10)
                    dst[p] = v0.addingProduct(ay, v1 - v0)
                }
            }
        }
        return out
    }

    /// The bilinear coordinate walk of both warps over `region`: for each output pixel with a tap inside the source,
    /// `body(p, ix, iy, ax, ay, interior)` gets the pixel's index p in the region (row-major), the top-left tap
    /// (ix, iy), the fractions (ax, ay) and whether all four taps are inside.
    @inline(__always)
    private static func walk(_ transform: AffineMatrix, inverseMap: Bool, region: Region,
                             sourceWidth sw: Int, sourceHeight sh: Int,
                             _ body: (Int, Int, Int, Float, Float, Bool) -> Void) {
        let rm = RowMap(inverseMap ? transform.m : transform.inverted().m)
        let width = region.width
        for yo in 0..<region.height {
            let off = rm.rowOffsets(yo + region.y0)
            for xo in 0..<width {
                let (sx, sy) = rm.map(xo + region.x0, off)
                guard sx.isFinite, sy.isFinite, abs(sx) < 1e9, abs(sy) < 1e9 else { continue }
                let fx = sx.rounded(.down), fy = sy.rounded(.down)
                let ix = Int(fx), iy = Int(fy)
                // Entirely outside (no tap inside): border value 0, already there.
                if ix < -1 || ix >= sw || iy < -1 || iy >= sh { continue }
                let interior = ix >= 0 && ix + 1 < sw && iy >= 0 && iy + 1 < sh
                body(yo * width + xo, ix, iy, sx - fx, sy - fy, interior)
            }
        }
    }
}
