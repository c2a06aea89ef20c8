// Re-implementations of OpenCV's cv2.resize for the cases RealESRGANer uses, with OpenCV's arithmetic:
// - INTER_LANCZOS4 on uint8 (11-bit fixed-point coefficients, int accumulation, rounding shift by 22, saturation)
//   and on uint16 (float coefficients and accumulation, round half to even, saturation);
// - INTER_LINEAR and INTER_CUBIC (a = −0.75) on single-channel float32 planes.
// Sample positions follow OpenCV: src = (dst + 0.5)·(src_size / dst_size) − 0.5, computed in double and rounded to
// float; out-of-range taps replicate the border pixel.

import Foundation

/// Interpolation kernels of the OpenCV-compatible resize.
public enum OpenCVInterpolation: Sendable {
    /// INTER_LINEAR (2 taps).
    case linear
    /// INTER_CUBIC (4 taps, a = −0.75).
    case cubic
    /// INTER_LANCZOS4 (8 taps).
    case lanczos4

    var taps: Int {
        switch self {
        case .linear: 2
        case .cubic: 4
        case .lanczos4: 8
        }
    }
}

/// Per-output-position source index of the first tap and the tap weights.
struct ResizeAxis {
    let first: [Int]      // index of tap 0 (may be out of range; taps are clamped when read)
    let weights: [Float]  // taps × dst
    let taps: Int

    init(src: Int, dst: Int, kind: OpenCVInterpolation) {
        let inv = Double(dst) / Double(src)
        let scale = 1.0 / inv
        let k = kind.taps
        taps = k
        var first = [Int](repeating: 0, count: dst)
        var w = [Float](repeating: 0, count: dst * k)
        var c = [Float](repeating: 0, count: k)
        for d in 0..<dst {
            var fx = Float((Double(d) + 0.5) * scale - 0.5)
            var sx = Int(fx.rounded(.down))
            fx -= Float(sx)
            switch kind {
            case .linear:
                if sx < 0 { fx = 0; sx = 0 }
                if sx >= src - 1 { fx = 0; sx = src - 1 }
                c[0] = 1 - fx; c[1] = fx
            case .cubic:
                ResizeAxis.cubic(fx, &c)
            case .lanczos4:
                ResizeAxis.lanczos4(fx, &c)
            }
            first[d] = sx - (k / 2 - 1)
            for j in 0..<k { w[d * k + j] = c[j] }
        }
        self.first = first
        weights = w
    }

    static func cubic(_ x: Float, _ c: inout [Float]) {
        let a: Float = -0.75
        c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a
        c[1] = ((a + 2) * x - (a + 3)) * x * x + 1
        c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1
        c[3] = 1 - c[0] - c[1] - c[2]
    }

    static func lanczos4(_ x: Float, _ c: inout [Float]) {
        let s45 = 0.70710678118654752440084436210485
        let cs: [(Double, Double)] = [(1, 0), (-s45, -s45), (0, 1), (s45, -s45), (-1, 0), (s45, s45), (0, -1), (-s45, s45)]
        if x < Float.ulpOfOne {
            for i in 0..<8 { c[i] = 0 }
            c[3] = 1
            return
        }
        var sum: Float = 0
        let y0 = -(Double(x) + 3) * Double.pi * 0.25
        let s0 = sin(y0), c0 = cos(y0)
        for i in 0..<8 {
            let y = -(Double(x) + 3 - Double(i)) * Double.pi * 0.25
            c[i] = Float((cs[i].0 * s0 + cs[i].1 * c0) / (y * y))
            sum += c[i]
        }
        sum = 1 / sum
        for i in 0..<8 { c[i] *= sum }
    }
}

/// OpenCV-compatible image resizes on interleaved samples (H, W, C row-major).
public enum OpenCVResize {
    /// cv2.resize(INTER_LANCZOS4) of 8-bit interleaved samples (fixed-point arithmetic as OpenCV).
    public static func lanczos4(_ src: [UInt8], width: Int, height: Int, channels cn: Int, toWidth dw: Int, toHeight dh: Int) -> [UInt8] {
        lanczos4(src, LanczosU8.self, width: width, height: height, channels: cn, toWidth: dw, toHeight: dh)
    }

    /// cv2.resize(INTER_LANCZOS4) of 16-bit interleaved samples (float arithmetic, round half to even).
    public static func lanczos4(_ src: [UInt16], width: Int, height: Int, channels cn: Int, toWidth dw: Int, toHeight dh: Int) -> [UInt16] {
        lanczos4(src, LanczosU16.self, width: width, height: height, channels: cn, toWidth: dw, toHeight: dh)
    }

    /// The separable Lanczos-4 pass in `A`'s arithmetic: horizontal on every source row, then vertical.
    @inline(__always)
    private static func lanczos4<A: LanczosArithmetic>(_ src: [A.Sample], _: A.Type, width: Int, height: Int,
                                                       channels cn: Int, toWidth dw: Int, toHeight dh: Int) -> [A.Sample] {
        let hx = ResizeAxis(src: width, dst: dw, kind: .lanczos4)
        let vy = ResizeAxis(src: height, dst: dh, kind: .lanczos4)
        let ia = hx.weights.map(A.weight)
        let ib = vy.weights.map(A.weight)
        // horizontal pass on every source row
        let rowLen = dw * cn
        var tmp = [A.Acc](repeating: A.zero, count: height * rowLen)
        for y in 0..<height {
            let srow = y * width * cn
            for dx in 0..<dw {
                let f = hx.first[dx]
                for ch in 0..<cn {
                    var v = A.zero
                    for j in 0..<8 {
                        let sx = min(max(f + j, 0), width - 1)
                        v = A.multiplyAdd(v, A.load(src[srow + sx * cn + ch]), ia[dx * 8 + j])
                    }
                    tmp[y * rowLen + dx * cn + ch] = v
                }
            }
        }
        var out = [A.Sample](repeating: 0, count: dh * rowLen)
        for dy in 0..<dh {
            let f = vy.first[dy]
            var rows = [Int](repeating: 0, count: 8)
            for k in 0..<8 { rows[k] = min(max(f + k, 0), height - 1) * rowLen }
            for x in 0..<rowLen {
                var s = A.multiply(tmp[rows[0] + x], ib[dy * 8])
                for k in 1..<8 { s = A.multiplyAdd(s, tmp[rows[k] + x], ib[dy * 8 + k]) }
                out[dy * rowLen + x] = A.store(s)
            }
        }
        return out
    }

    /// cv2.resize of one float32 plane (H, W) with INTER_LINEAR or INTER_CUBIC (float arithmetic).
    public static func resizePlane(_ src: [Float], width: Int, height: Int, toWidth dw: Int, toHeight dh: Int,
                                   kind: OpenCVInterpolation) -> [Float] {
        let hx = ResizeAxis(src: width, dst: dw, kind: kind)
        let vy = ResizeAxis(src: height, dst: dh, kind: kind)
        let k = kind.taps
        var tmp = [Float](repeating: 0, count: height * dw)
        for y in 0..<height {
            for dx in 0..<dw {
                let f = hx.first[dx]
                var v = src[y * width + min(max(f, 0), width - 1)] * hx.weights[dx * k]
                for j in 1..<k { v += src[y * width + min(max(f + j, 0), width - 1)] * hx.weights[dx * k + j] }
                tmp[y * dw + dx] = v
            }
        }
        var out = [Float](repeating: 0, count: dh * dw)
        for dy in 0..<dh {
            let f = vy.first[dy]
            for x in 0..<dw {
                var s = tmp[min(max(f, 0), height - 1) * dw + x] * vy.weights[dy * k]
                for j in 1..<k { s += tmp[min(max(f + j, 0), height - 1) * dw + x] * vy.weights[dy * k + j] }
                out[dy * dw + x] = s
            }
        }
        return out
    }
}

/// Sample arithmetic of the Lanczos-4 resize; weights are converted to the accumulator type.
private protocol LanczosArithmetic {
    associatedtype Sample: FixedWidthInteger
    associatedtype Acc
    static var zero: Acc { get }
    static func weight(_ w: Float) -> Acc
    static func load(_ s: Sample) -> Acc
    static func multiply(_ a: Acc, _ w: Acc) -> Acc
    static func multiplyAdd(_ acc: Acc, _ a: Acc, _ w: Acc) -> Acc
    static func store(_ s: Acc) -> Sample
}

/// uint8: weights ×2048 in Int32, wrapping int accumulation, rounding shift by 22, saturation.
private enum LanczosU8: LanczosArithmetic {
    static var zero: Int32 { 0 }
    @inline(__always) static func weight(_ w: Float) -> Int32 { Int32((w * 2048).rounded(.toNearestOrEven)) }
    @inline(__always) static func load(_ s: UInt8) -> Int32 { Int32(s) }
    @inline(__always) static func multiply(_ a: Int32, _ w: Int32) -> Int32 { a &* w }
    @inline(__always) static func multiplyAdd(_ acc: Int32, _ a: Int32, _ w: Int32) -> Int32 { acc &+ a &* w }
    @inline(__always) static func store(_ s: Int32) -> UInt8 { UInt8(clamping: (s &+ (1 << 21)) >> 22) }
}

/// uint16: float weights and accumulation, round half to even, saturation.
private enum LanczosU16: LanczosArithmetic {
    static var zero: Float { 0 }
    @inline(__always) static func weight(_ w: Float) -> Float { w }
    @inline(__always) static func load(_ s: UInt16) -> Float { Float(s) }
    @inline(__always) static func multiply(_ a: Float, _ w: Float) -> Float { a * w }
    @inline(__always) static func multiplyAdd(_ acc: Float, _ a: Float, _ w: Float) -> Float { acc + a * w }
    @inline(__always) static func store(_ s: Float) -> UInt16 {
        let r = s.rounded(.toNearestOrEven)
        return r <= 0 ? 0 : r >= 65535 ? 65535 : UInt16(r)
    }
}
