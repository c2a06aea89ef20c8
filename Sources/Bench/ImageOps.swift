// Resampling and degradations used to make the bench scenes and to compare outputs with references.

import Foundation
import TensorCore
import ImageIO

/// Separable 1-D resampling weights: for each output index, the source indices and weights (summing to 1).
struct ResampleWeights {
    var taps: [[(index: Int, weight: Float)]]

    /// Area (box) resampling: each output sample averages the source interval it covers, weighting the two
    /// partially covered source samples by their overlap (OpenCV's INTER_AREA for shrinking).
    static func area(from n: Int, to m: Int) -> ResampleWeights {
        let scale = Double(n) / Double(m)
        var taps: [[(index: Int, weight: Float)]] = []
        taps.reserveCapacity(m)
        for o in 0..<m {
            let a = Double(o) * scale, b = Double(o + 1) * scale
            var row: [(index: Int, weight: Float)] = []
            var i = Int(a.rounded(.down))
            while Double(i) < b && i < n {
                let overlap = min(b, Double(i + 1)) - max(a, Double(i))
                if overlap > 1e-12 { row.append((i, Float(overlap / scale))) }
                i += 1
            }
            taps.append(row)
        }
        return ResampleWeights(taps: taps)
    }

    /// Bilinear resampling with half-pixel centres (`align_corners = false`), edges clamped.
    static func bilinear(from n: Int, to m: Int) -> ResampleWeights {
        let scale = Double(n) / Double(m)
        var taps: [[(index: Int, weight: Float)]] = []
        taps.reserveCapacity(m)
        for o in 0..<m {
            let s = max(0, (Double(o) + 0.5) * scale - 0.5)
            let i0 = min(Int(s.rounded(.down)), n - 1)
            let i1 = min(i0 + 1, n - 1)
            let f = Float(s - Double(i0))
            taps.append(i0 == i1 ? [(index: i0, weight: Float(1))] : [(index: i0, weight: 1 - f), (index: i1, weight: f)])
        }
        return ResampleWeights(taps: taps)
    }
}

/// Border index for filters: reflect without repeating the edge sample (`dcb|abcd|cba`, OpenCV's default).
@inline(__always) func reflect101(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    var j = i
    while j < 0 || j >= n { j = j < 0 ? -j : 2 * (n - 1) - j }
    return j
}

/// The resampling filter of `RGBImage.resized(width:height:filter:)`.
public enum ResizeFilter: String, Sendable, Codable {
    /// Box average over the covered source area (best for shrinking).
    case area
    /// Bilinear with half-pixel centres.
    case bilinear
}

extension RGBImage {
    /// This image resampled to `w × h` with `filter`, separably (rows, then columns).
    public func resized(width w: Int, height h: Int, filter: ResizeFilter) throws(BenchError) -> RGBImage {
        guard w > 0, h > 0, w <= 1 << 15, h <= 1 << 15 else { throw .invalidArgument("resize target \(w)×\(h) is invalid") }
        if w == width && h == height { return self }
        let wx = filter == .area ? ResampleWeights.area(from: width, to: w) : .bilinear(from: width, to: w)
        let wy = filter == .area ? ResampleWeights.area(from: height, to: h) : .bilinear(from: height, to: h)
        var tmp = [Float](repeating: 0, count: w * height * 3)
        let width = self.width, height = self.height
        pixels.withUnsafeBufferPointer { src in
            tmp.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let row = y * width * 3
                    for x in 0..<w {
                        var r: Float = 0, g: Float = 0, b: Float = 0
                        for (i, wt) in wx.taps[x] {
                            let p = row + i * 3
                            r += src[p] * wt; g += src[p + 1] * wt; b += src[p + 2] * wt
                        }
                        let q = (y * w + x) * 3
                        dst[q] = r; dst[q + 1] = g; dst[q + 2] = b
                    }
                }
            }
        }
        var out = [Float](repeating: 0, count: w * h * 3)
        tmp.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<h {
                    for (i, wt) in wy.taps[y] {
                        let s0 = i * w * 3, d0 = y * w * 3
                        for k in 0..<(w * 3) { dst[d0 + k] += src[s0 + k] * wt }
                    }
                }
            }
        }
        return try RGBImage(width: w, height: h, pixels: out)
    }

    /// Separable Gaussian blur with standard deviation `sigma` (kernel radius ceil(3σ), reflect-101 borders).
    public func gaussianBlurred(sigma: Double) throws(BenchError) -> RGBImage {
        guard sigma > 0, sigma <= 100 else { throw .invalidArgument("Gaussian sigma \(sigma) must be in (0, 100]") }
        let kernel = gaussianKernel(sigma: sigma)
        let r0 = kernel.count / 2
        let tmp = filtered(taps: kernel.indices.map { (dx: $0 - r0, dy: 0, weight: kernel[$0]) })
        let width = self.width, height = self.height
        var out = [Float](repeating: 0, count: pixels.count)
        tmp.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    for k in -r0...r0 {
                        let wt = kernel[k + r0], s0 = reflect101(y + k, height) * width * 3, d0 = y * width * 3
                        for i in 0..<(width * 3) { dst[d0 + i] += src[s0 + i] * wt }
                    }
                }
            }
        }
        return try RGBImage(width: width, height: height, pixels: out)
    }

    /// Linear motion blur: the average of `length` samples along a line through each pixel at `angle` degrees
    /// (0 = horizontal, counter-clockwise), sampled at unit steps with bilinear weights, reflect-101 borders.
    public func motionBlurred(length: Int, angle: Double) throws(BenchError) -> RGBImage {
        guard length >= 1, length <= 101 else { throw .invalidArgument("motion blur length \(length) must be in 1…101") }
        return try RGBImage(width: width, height: height, pixels: filtered(taps: motionKernel(length: length, angle: angle)))
    }

    /// Each pixel as the weighted sum of the pixels at the `taps` offsets from it (in order), reflect-101 borders.
    func filtered(taps: [(dx: Int, dy: Int, weight: Float)]) -> [Float] {
        var out = [Float](repeating: 0, count: pixels.count)
        let width = self.width, height = self.height
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    for x in 0..<width {
                        var r: Float = 0, g: Float = 0, b: Float = 0
                        for t in taps {
                            let p = (reflect101(y + t.dy, height) * width + reflect101(x + t.dx, width)) * 3
                            r += src[p] * t.weight; g += src[p + 1] * t.weight; b += src[p + 2] * t.weight
                        }
                        let q = (y * width + x) * 3
                        dst[q] = r; dst[q + 1] = g; dst[q + 2] = b
                    }
                }
            }
        }
        return out
    }

    /// The image after a JPEG round trip at `quality` (1…100) through the project's encoder and decoder.
    public func jpegRoundTrip(quality: Int) throws(BenchError) -> RGBImage {
        guard (1...100).contains(quality) else { throw .invalidArgument("JPEG quality \(quality) must be in 1…100") }
        do {
            let encoded = try ImageEncoder.encode(toImage(), as: .jpeg, options: EncodeOptions(jpegQuality: quality))
            return RGBImage(try ImageDecoder.decode(data: encoded.data, name: "roundtrip.jpg"))
        } catch { throw .invalidArgument("JPEG round trip failed: \(error)") }
    }

    /// This image plus zero-mean Gaussian noise of standard deviation `sigma`, from a seeded generator,
    /// not clamped (so the noise level is exact).
    public func addingGaussianNoise(sigma: Double, seed: UInt64) throws(BenchError) -> RGBImage {
        var rng = SplitMix64(seed: seed)
        var out = pixels
        for i in out.indices { out[i] += Float(sigma * rng.nextGaussian()) }
        return try RGBImage(width: width, height: height, pixels: out)
    }

    /// Samples rounded and clamped to 0…255, as an 8-bit file would store them.
    public func quantized() -> RGBImage {
        var copy = self
        for i in copy.pixels.indices { copy.pixels[i] = max(0, min(255, copy.pixels[i].rounded())) }
        return copy
    }
}

/// A normalised Gaussian of radius ceil(3σ).
func gaussianKernel(sigma: Double) -> [Float] {
    let r = max(1, Int((3 * sigma).rounded(.up)))
    var k = (-r...r).map { exp(-Double($0 * $0) / (2 * sigma * sigma)) }
    let s = k.reduce(0, +)
    k = k.map { $0 / s }
    return k.map(Float.init)
}

/// Integer taps of a line kernel: `length` points at unit spacing centred on the origin, each spread
/// bilinearly over its 4 neighbours; weights merged per offset and normalised to sum 1.
func motionKernel(length: Int, angle: Double) -> [(dx: Int, dy: Int, weight: Float)] {
    let a = angle * .pi / 180
    let ux = cos(a), uy = -sin(a)  // image y points down
    var acc: [Int: Double] = [:]   // key = (dy + 128) * 256 + (dx + 128)
    for i in 0..<length {
        let t = Double(i) - Double(length - 1) / 2
        let fx = t * ux, fy = t * uy
        let x0 = Int(fx.rounded(.down)), y0 = Int(fy.rounded(.down))
        let ax = fx - Double(x0), ay = fy - Double(y0)
        for (dx, dy, w) in [(0, 0, (1 - ax) * (1 - ay)), (1, 0, ax * (1 - ay)), (0, 1, (1 - ax) * ay), (1, 1, ax * ay)]
        where w > 1e-9 {
            acc[(y0 + dy + 128) * 256 + (x0 + dx + 128), default: 0] += w
        }
    }
    let total = acc.values.reduce(0, +)
    return acc.keys.sorted().map { key in
        (dx: key % 256 - 128, dy: key / 256 - 128, weight: Float(acc[key]! / total))
    }
}

extension SplitMix64 {
    /// A standard normal sample (Box–Muller).
    public mutating func nextGaussian() -> Double {
        let u1 = max(nextUnit(), 1e-300), u2 = nextUnit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }
}
