// Full-reference quality: PSNR and SSIM of an output against the clean source.

import Foundation

/// PSNR and SSIM of one output against its clean reference.
public struct QualityScore: Sendable, Codable, Equatable {
    /// Peak signal-to-noise ratio in dB over all RGB samples (peak 255); +inf for identical images.
    public var psnr: Double
    /// Mean structural similarity of the Rec. 601 luma, Gaussian window (σ 1.5, 11 × 11), in −1…1.
    public var ssim: Double
    /// How the reference was brought to the output size: "none", "bilinear" (enlarged) or "area" (shrunk).
    public var referenceResize: String

    /// Creates a score.
    public init(psnr: Double, ssim: Double, referenceResize: String) {
        self.psnr = psnr
        self.ssim = ssim
        self.referenceResize = referenceResize
    }
}

/// The metrics, as commonly defined (Wang et al. 2004 for SSIM).
public enum Quality {
    /// PSNR in dB of `a` against `b` over all samples: 10·log10(255² / MSE); +inf when MSE is 0.
    public static func psnr(_ a: RGBImage, _ b: RGBImage) throws(BenchError) -> Double {
        try sameSize(a, b)
        var sum = 0.0
        for i in a.pixels.indices {
            let d = Double(a.pixels[i]) - Double(b.pixels[i])
            sum += d * d
        }
        let mse = sum / Double(a.pixels.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// Mean SSIM of the luma of `a` and `b`: local means, variances and covariance from an 11 × 11 Gaussian
    /// window (σ 1.5, normalised), C1 = (0.01·255)², C2 = (0.03·255)², averaged over every position where the
    /// window lies inside the image (no padding). Images smaller than 11 px use a window clipped to the image.
    public static func ssim(_ a: RGBImage, _ b: RGBImage) throws(BenchError) -> Double {
        try sameSize(a, b)
        let w = a.width, h = a.height
        let x = a.luma(), y = b.luma()
        let full = gaussianWindow()
        let r = min(5, (min(w, h) - 1) / 2)
        let kernel = r == 5 ? full : normalised(Array(full[(5 - r)...(5 + r)]))
        let ow = w - 2 * r, oh = h - 2 * r
        func filter(_ f: [Double]) -> [Double] {
            var tmp = [Double](repeating: 0, count: ow * h)
            f.withUnsafeBufferPointer { src in
                tmp.withUnsafeMutableBufferPointer { dst in
                    for row in 0..<h {
                        for col in 0..<ow {
                            var acc = 0.0
                            for k in 0...(2 * r) { acc += kernel[k] * src[row * w + col + k] }
                            dst[row * ow + col] = acc
                        }
                    }
                }
            }
            var out = [Double](repeating: 0, count: ow * oh)
            tmp.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for row in 0..<oh {
                        for k in 0...(2 * r) {
                            let wt = kernel[k], s0 = (row + k) * ow, d0 = row * ow
                            for col in 0..<ow { dst[d0 + col] += wt * src[s0 + col] }
                        }
                    }
                }
            }
            return out
        }
        let mx = filter(x), my = filter(y)
        let xx = filter(x.map { (v: Double) -> Double in v * v }), yy = filter(y.map { (v: Double) -> Double in v * v })
        let xy = filter((0..<x.count).map { (i: Int) -> Double in x[i] * y[i] })
        let c1: Double = (0.01 * 255) * (0.01 * 255), c2: Double = (0.03 * 255) * (0.03 * 255)
        var total = 0.0
        for i in 0..<(ow * oh) {
            let vx = xx[i] - mx[i] * mx[i], vy = yy[i] - my[i] * my[i], cov = xy[i] - mx[i] * my[i]
            total += ((2 * mx[i] * my[i] + c1) * (2 * cov + c2))
                / ((mx[i] * mx[i] + my[i] * my[i] + c1) * (vx + vy + c2))
        }
        return total / Double(ow * oh)
    }

    /// Scores `output` against `reference`. When sizes differ the reference is resized to the output size:
    /// bilinear (half-pixel centres) when enlarging, area averaging when shrinking.
    public static func score(output: RGBImage, reference: RGBImage) throws(BenchError) -> QualityScore {
        var ref = reference
        var how = "none"
        if output.width != reference.width || output.height != reference.height {
            let enlarge = output.width * output.height > reference.width * reference.height
            how = enlarge ? "bilinear" : "area"
            ref = try reference.resized(width: output.width, height: output.height, filter: enlarge ? .bilinear : .area)
                .quantized()
        }
        return QualityScore(psnr: try psnr(output, ref), ssim: try ssim(output, ref), referenceResize: how)
    }

    static func sameSize(_ a: RGBImage, _ b: RGBImage) throws(BenchError) {
        guard a.width == b.width, a.height == b.height else {
            throw .invalidArgument("quality needs equal sizes, got \(a.width)×\(a.height) and \(b.width)×\(b.height)")
        }
    }

    static func gaussianWindow() -> [Double] {
        normalised((-5...5).map { exp(-Double($0 * $0) / (2 * 1.5 * 1.5)) })
    }

    static func normalised(_ k: [Double]) -> [Double] {
        let s = k.reduce(0, +)
        return k.map { $0 / s }
    }
}
