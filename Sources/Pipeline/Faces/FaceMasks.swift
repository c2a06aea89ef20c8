import Foundation

/// Paste-back masks: GPEN's parse-mask post-processing and a feathered rectangle.
public enum FaceMasks {
    /// ParseNet classes that GPEN leaves out of the face mask: background (0), hat (14), cloth (18).
    public static let excludedParseClasses: Set<Int> = [0, 14, 18]

    /// GPEN's 0/255 parse mask from per-pixel ParseNet class ids (layout H·W): 255 unless the class is excluded.
    public static func parseMask(classes: [Int], width: Int, height: Int) throws -> [UInt8] {
        let n = try checkedSize(width, height, 1, "parseMask")
        guard classes.count == n else {
            throw FaceGeometryError.mismatch("parseMask: \(width)x\(height) needs \(n) class ids, got \(classes.count)")
        }
        return classes.map { excludedParseClasses.contains($0) ? 0 : 255 }
    }

    /// OpenCV's bit-exact Gaussian kernel (`getGaussianKernel(n, sigma, CV_64F)`, `getGaussianKernelBitExact`):
    /// t_i = exp(x_i² · (−0.125/σ²)) with x_i = 2i − (n−1), normalised by 1/(2·Σt + 1), centre = that factor.
    public static func gaussianKernel(size n: Int, sigma: Double) throws -> [Double] {
        guard n > 0, n % 2 == 1, n <= 4097 else {
            throw FaceGeometryError.invalidParameter("gaussianKernel: size \(n) must be odd, 1...4097")
        }
        let sigmaX = sigma > 0 ? sigma : Double(n) * 0.15 + 0.35
        let scale2X = -0.125 / (sigmaX * sigmaX)
        let half = (n - 1) / 2
        var values = [Double](repeating: 0, count: half)
        var sum = 0.0
        var x = 1 - n
        for i in 0..<half {
            let t = exp(Double(x * x) * scale2X)
            values[i] = t
            sum += t
            x += 2
        }
        sum *= 2
        sum += 1
        let mul = 1.0 / sum
        var k = [Double](repeating: 0, count: n)
        for i in 0..<half {
            let t = values[i] * mul
            k[i] = t; k[n - 1 - i] = t
        }
        k[half] = mul
        return k
    }

    /// Index under OpenCV's BORDER_REFLECT_101 (…, 2, 1 | 0, 1, …, n−1 | n−2, …).
    @inline(__always) static func reflect101(_ i: Int, _ n: Int) -> Int {
        if n == 1 { return 0 }
        var i = i
        while i < 0 || i >= n {
            if i < 0 { i = -i }
            if i >= n { i = 2 * n - 2 - i }
        }
        return i
    }

    /// `cv2.GaussianBlur(img, (n, n), sigma)` on a Double plane (layout H·W), border REFLECT_101, as OpenCV's
    /// separable double path computes it: row pass summing taps left to right, then the symmetric column pass
    /// (centre tap, then k·(above + below) pairs outward).
    public static func gaussianBlur(_ plane: [Double], width: Int, height: Int, size n: Int, sigma: Double) throws -> [Double] {
        let count = try checkedSize(width, height, 1, "gaussianBlur")
        guard plane.count == count else {
            throw FaceGeometryError.mismatch("gaussianBlur: \(width)x\(height) needs \(count) values, got \(plane.count)")
        }
        let k = try gaussianKernel(size: n, sigma: sigma)
        let r = n / 2
        var rows = [Double](repeating: 0, count: count)
        plane.withUnsafeBufferPointer { src in
            rows.withUnsafeMutableBufferPointer { dst in
                k.withUnsafeBufferPointer { kp in
                    var ext = [Double](repeating: 0, count: width + 2 * r)
                    let xIndex = (0..<(width + 2 * r)).map { reflect101($0 - r, width) }
                    for y in 0..<height {
                        let row = y * width
                        var allZero = true
                        for x in 0..<width where src[row + x] != 0 { allZero = false; break }
                        if allZero { continue }  // exact: every tap is 0·k = 0
                        for i in 0..<ext.count { ext[i] = src[row + xIndex[i]] }
                        ext.withUnsafeBufferPointer { e in
                            for x in 0..<width {
                                var s = kp[0] * e[x]
                                for t in 1..<n { s += kp[t] * e[x + t] }
                                dst[row + x] = s
                            }
                        }
                    }
                }
            }
        }
        var out = [Double](repeating: 0, count: count)
        rows.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let kc = Array(k[r...])  // centre, then outward
                var acc = [Double](repeating: 0, count: width)
                for y in 0..<height {
                    let c = y * width
                    for x in 0..<width { acc[x] = kc[0] * src[c + x] }
                    for t in 1...max(r, 1) where t <= r {
                        let up = reflect101(y - t, height) * width, dn = reflect101(y + t, height) * width
                        let f = kc[t]
                        for x in 0..<width { acc[x] += f * (src[dn + x] + src[up + x]) }
                    }
                    for x in 0..<width { dst[c + x] = acc[x] }
                }
            }
        }
        return out
    }

    /// GPEN's `mask_postprocess(parse / 255., thres=26)`: zero a `border`-pixel frame, GaussianBlur 101×101 σ 4
    /// twice in Double, cast to float32. `parse` is the 0/255 parse mask at 512×512 (layout H·W).
    public static func postprocess(parse: [UInt8], width: Int = 512, height: Int = 512, border: Int = 26,
                                   kernelSize: Int = 101, sigma: Double = 4) throws -> FaceMask {
        let count = try checkedSize(width, height, 1, "postprocess")
        guard parse.count == count else {
            throw FaceGeometryError.mismatch("postprocess: parse mask \(width)x\(height) needs \(count) bytes, got \(parse.count)")
        }
        guard border >= 0 else { throw FaceGeometryError.invalidParameter("postprocess: border \(border) < 0") }
        var m = parse.map { Double($0) / 255.0 }
        for y in 0..<height {
            for x in 0..<width where y < border || y >= height - border || x < border || x >= width - border {
                m[y * width + x] = 0
            }
        }
        m = try gaussianBlur(m, width: width, height: height, size: kernelSize, sigma: sigma)
        m = try gaussianBlur(m, width: width, height: height, size: kernelSize, sigma: sigma)
        return try FaceMask(width: width, height: height, values: m.map { Float($0) })
    }

    /// A feathered rectangle for `--mask rect` on a `size`² crop: 0 in a frame of `margin` (default 26/512 of the
    /// size), rising along a smoothstep over `feather` pixels (default 1/8 of the size) to 1 inside. The product
    /// of the x and y ramps is C¹-continuous, exactly 0 at the crop edge and has no step anywhere, so the pasted
    /// face shows no rectangle. Symmetric under both flips.
    public static func rectangular(size: Int, margin: Double? = nil, feather: Double? = nil) throws -> FaceMask {
        _ = try checkedSize(size, size, 1, "rectangular")
        let s = Double(size)
        let mg = margin ?? s * 26.0 / 512.0
        let fe = feather ?? s / 8.0
        guard mg >= 0, fe > 0, 2 * (mg + fe) <= s else {
            throw FaceGeometryError.invalidParameter("rectangular: margin \(mg) and feather \(fe) do not fit a \(size) px crop")
        }
        var ramp = [Float](repeating: 0, count: size)
        for i in 0..<size {
            // distance of the pixel centre from the nearer edge, in pixels
            let d = min(Double(i) + 0.5, s - Double(i) - 0.5)
            ramp[i] = Float(smoothstep((d - mg) / fe))
        }
        var v = [Float](repeating: 0, count: size * size)
        for y in 0..<size { for x in 0..<size { v[y * size + x] = ramp[y] * ramp[x] } }
        return try FaceMask(width: size, height: size, values: v)
    }

    @inline(__always) static func smoothstep(_ t: Double) -> Double {
        let c = min(max(t, 0), 1)
        return c * c * (3 - 2 * c)
    }

    /// Multiplies `mask` by a smoothstep ramp that is 0 at the mask's own border and 1 from `width` pixels inward, so
    /// a warped mask can never end in a hard edge at the crop boundary (whatever the parser produced).
    public static func featherEdges(_ mask: FaceMask, width: Double) throws -> FaceMask {
        guard width > 0 else { throw FaceGeometryError.invalidParameter("featherEdges: width \(width) must be > 0") }
        var out = mask
        func ramp(_ i: Int, _ n: Int) -> Float {
            let d = min(Double(i) + 0.5, Double(n) - Double(i) - 0.5)
            return Float(smoothstep(d / width))
        }
        let rx = (0..<mask.width).map { ramp($0, mask.width) }
        for y in 0..<mask.height {
            let ry = ramp(y, mask.height)
            for x in 0..<mask.width { out.values[y * mask.width + x] *= ry * rx[x] }
        }
        return out
    }

    /// `cv2.resize(mask, (width, height))` for float32 masks (INTER_LINEAR; an exact 2× reduction takes OpenCV's
    /// INTER_AREA shortcut, the mean of each 2×2 block). Used when the GPEN size is not 512.
    public static func resize(_ mask: FaceMask, width: Int, height: Int) throws -> FaceMask {
        _ = try checkedSize(width, height, 1, "resize")
        if width == mask.width && height == mask.height { return mask }
        var out = try FaceMask(width: width, height: height)
        let sw = mask.width, sh = mask.height
        if sw == 2 * width && sh == 2 * height {
            for y in 0..<height {
                for x in 0..<width {
                    let i = 2 * y * sw + 2 * x
                    // OpenCV's SIMD area-fast path: (row0 pair) + (row1 pair), × 0.25
                    let s = (mask.values[i] + mask.values[i + 1]) + (mask.values[i + sw] + mask.values[i + sw + 1])
                    out.values[y * width + x] = s * 0.25
                }
            }
            return out
        }
        // INTER_LINEAR: half-pixel centres, float coefficients, clamped at the edges.
        func coeffs(_ dsize: Int, _ ssize: Int) -> [(Int, Float, Float)] {
            let scale = 1.0 / (Double(dsize) / Double(ssize))
            return (0..<dsize).map { dx in
                var fx = Float((Double(dx) + 0.5) * scale - 0.5)
                var sx = Int(fx.rounded(.down))
                fx -= Float(sx)
                if sx < 0 { fx = 0; sx = 0 }
                if sx >= ssize - 1 { fx = 0; sx = ssize - 1 }
                return (sx, 1 - fx, fx)
            }
        }
        let cx = coeffs(width, sw), cy = coeffs(height, sh)
        var tmp = [Float](repeating: 0, count: width)
        var tmp2 = [Float](repeating: 0, count: width)
        for y in 0..<height {
            let (sy, b0, b1) = cy[y]
            let sy1 = min(sy + 1, sh - 1)
            for x in 0..<width {
                let (sx, a0, a1) = cx[x]
                let sx1 = min(sx + 1, sw - 1)
                tmp[x] = mask.values[sy * sw + sx] * a0 + mask.values[sy * sw + sx1] * a1
                tmp2[x] = mask.values[sy1 * sw + sx] * a0 + mask.values[sy1 * sw + sx1] * a1
            }
            for x in 0..<width { out.values[y * width + x] = b0 * tmp[x] + b1 * tmp2[x] }
        }
        return out
    }
}
