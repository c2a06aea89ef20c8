import CDNNL
import Foundation
import TensorCore

// MARK: transposed convolution as stride² ordinary convolutions ("phases") interleaved into the output
//
// oneDNN 2.6's deconvolution (a backward-data kernel) ran GPEN-512's k3 s2 layers at ≈ 20 GFLOP/s on a 2-core Xeon
// (256→64 at 256² → 513²: 925 ms, 78 % of the generator's time), a tenth of its forward convolutions. Output pixel o
// of phase a = (o + padL) mod s only meets the taps t ≡ a (mod s), so each phase is an ordinary stride-1 convolution
// of the input with those taps (reversed: a correlation), with the same FLOPs and no zeros multiplied: for k3 s2 the
// kernels are 2×2, 2×1, 1×2 and 1×1. Their results go into the output's sub-lattices through strided reorders.

/// One dimension of a phase: its taps in correlation order, its convolution padding, its first output coordinate.
/// The padding does not depend on the input size: the last output of phase a is at input row n − 1 + ⌊(k − padR − 1 − a)/s⌋.
struct PhaseAxis {
    let taps: [Int]
    let padBegin: Int, padEnd: Int
    let first: Int
    private let mLo: Int, tail: Int

    /// nil when the phase has no taps or would need negative padding.
    init?(phase a: Int, stride s: Int, kernel k: Int, padL: Int, padR: Int) {
        let t = Array(Swift.stride(from: a, to: k, by: s))
        guard !t.isEmpty else { return nil }
        let j = t.count
        func floorDiv(_ x: Int, _ y: Int) -> Int { x >= 0 ? x / y : -((-x + y - 1) / y) }
        mLo = -floorDiv(a - padL, s)                   // ⌈(padL − a)/s⌉: the first m with s·m + a − padL ≥ 0
        tail = floorDiv(k - padR - 1 - a, s)           // last m = n − 1 + tail
        padBegin = (j - 1) - mLo
        padEnd = tail
        guard padBegin >= 0, padEnd >= 0, padBegin < j, padEnd < j else { return nil }
        taps = t.reversed()
        first = s * mLo + a - padL
    }

    /// Outputs of this phase for an input of n pixels.
    func length(input n: Int) -> Int { max(0, (n - 1 + tail) - mLo + 1) }
}

/// One phase: its convolution and its axes.
final class TransposedPhase {
    let conv: PreparedConv2d
    let y: PhaseAxis, x: PhaseAxis
    init(conv: PreparedConv2d, y: PhaseAxis, x: PhaseAxis) { self.conv = conv; self.y = y; self.x = x }
}

extension DNNLBackend {
    /// `ENHANCE_DECONV=onednn` keeps oneDNN's deconvolution (A/B measurements).
    static let transposedPhases = ProcessInfo.processInfo.environment["ENHANCE_DECONV"] != "onednn"

    /// The phase convolutions of an ungrouped transposed convolution with stride ≥ 2, cut from its IOHW weights (OIHW
    /// with `oihw`); nil when it has other parameters or a phase would need negative padding.
    func makeTransposedPhases(_ weights: [Float], oihw: Bool, bias: HostTensor?, _ p: ConvTranspose2dParams, padL: Int, padR: Int) throws -> [TransposedPhase]? {
        guard Self.transposedPhases, p.groups == 1, p.stride >= 2, p.kernel >= p.stride else { return nil }
        let s = p.stride, k = p.kernel, ci = p.inChannels, co = p.outChannels
        var axes: [PhaseAxis] = []
        for a in 0..<s {
            guard let axis = PhaseAxis(phase: a, stride: s, kernel: k, padL: padL, padR: padR) else { return nil }
            axes.append(axis)
        }
        // Every phase's OIHW taps in one pass over the weights (each (i, o) kernel read once, each phase written
        // sequentially): loading GPEN-512 spent 150 ms and 170 MB of fresh pages on an OIHW copy and a pass per phase.
        let kk = k * k
        let (strideO, strideI) = oihw ? (ci * kk, kk) : (kk, co * kk)
        let pairs = axes.flatMap { ay in axes.map { ax in (y: ay, x: ax) } }
        // taps of each phase as offsets into one k×k kernel, in the phase kernel's row-major order
        let offsets = pairs.map { pair in pair.y.taps.flatMap { ty in pair.x.taps.map { tx in ty * k + tx } } }
        let flat = offsets.flatMap { $0 }, counts = offsets.map(\.count)
        let kernels = Self.filledArrays(counts: counts.map { co * ci * $0 }) { dst in
            weights.withUnsafeBufferPointer { w in
                flat.withUnsafeBufferPointer { t in
                    for o in 0..<co {
                        for i in 0..<ci {
                            let src = o * strideO + i * strideI
                            var f = 0
                            for (q, nt) in counts.enumerated() {
                                let d = dst[q] + (o * ci + i) * nt
                                for j in 0..<nt { d[j] = w[src + t[f + j]] }
                                f += nt
                            }
                        }
                    }
                }
            }
        }
        var phases: [TransposedPhase] = []
        for (q, pair) in pairs.enumerated() {
            let (ay, ax) = pair
            let jh = ay.taps.count, jw = ax.taps.count
            let params = Conv2dParams(inChannels: ci, outChannels: co, kernelH: jh, kernelW: jw, strideH: 1, strideW: 1,
                                      padTop: ay.padBegin, padBottom: ay.padEnd, padLeft: ax.padBegin, padRight: ax.padEnd, groups: 1)
            let conv = try prepareConv2d(weight: try HostTensor(shape: [co, ci, jh, jw], data: kernels[q]), bias: bias, params: params)
            phases.append(TransposedPhase(conv: conv, y: ay, x: ax))
        }
        return phases
    }

    /// Arrays of `counts[q]` floats each, written by `fill` through their base pointers (no zero-fill first).
    static func filledArrays(counts: [Int], _ fill: ([UnsafeMutablePointer<Float>]) -> Void) -> [[Float]] {
        func nest(_ q: Int, _ pointers: [UnsafeMutablePointer<Float>]) -> [[Float]] {
            guard q < counts.count else { fill(pointers); return [] }
            var rest: [[Float]] = []
            let a = [Float](unsafeUninitializedCapacity: max(counts[q], 1)) { buf, n in
                rest = nest(q + 1, pointers + [buf.baseAddress!])
                n = counts[q]
            }
            return [a] + rest
        }
        return nest(0, [])
    }

    /// Runs the phases into a new blocked output of `oshape`; a residual is added after the interleave (the phases take
    /// the rest of the epilogue, which is element-wise).
    func runTransposedPhases(_ x: Tensor, _ phases: [TransposedPhase], stride s: Int, epilogue: Epilogue, oshape: TensorShape, op: String) throws -> Tensor {
        let out = try alloc(oshape, blockedLayout, op: op)
        var e = epilogue
        e.residual = nil
        for phase in phases {
            let (lh, lw) = (phase.y.length(input: x.shape.h), phase.x.length(input: x.shape.w))
            guard lh > 0, lw > 0 else { continue }
            let z = try conv2d(x, phase.conv, epilogue: e, into: nil)
            guard z.shape.h == lh, z.shape.w == lw else {
                throw TensorError.backendFailure(op: op, message: "internal: phase output \(z.shape) for \(lh)×\(lw)")
            }
            try interleave(z, into: out, first: (phase.y.first, phase.x.first), stride: s, op: op)
        }
        if let r = epilogue.residual { return try add(out, r, alpha: 1, beta: epilogue.residualScale) }
        return out
    }

    /// Writes `z` into the sub-lattice of `out` (blocked, not a view) that starts at `first` and takes every `stride`-th
    /// row and column, through one strided reorder.
    func interleave(_ z: Tensor, into out: Tensor, first: (y: Int, x: Int), stride s: Int, op: String) throws {
        let b = blockedLayout.channelBlock
        let oh = out.shape.h, ow = out.shape.w
        var dst = MD.make([z.shape.n, z.shape.c, z.shape.h, z.shape.w], b == 16 ? dnnl_nChw16c : dnnl_nChw8c)
        MD.setStrides(&dst, [blockedLayout.paddedChannels(out.storageChannels) * oh * ow, b * oh * ow, s * b * ow, s * b])
        let offset = (first.y * ow + first.x) * b * 4
        try reorder(md(z), z.buffer.pointer + z.byteOffset, dst, out.buffer.pointer + out.byteOffset + offset, op: op + " phase")
    }

    // MARK: nearest ×2 upsampling followed by a 3×3 convolution, as four 2×2 convolutions on the small input

    /// The four phase convolutions of "nearest ×2, then this 3×3 padding-1 convolution": output pixel (2m+a, 2n+b) sees
    /// input rows m−1, m (a = 0: taps w0 and w1+w2) or m, m+1 (a = 1: w0+w1 and w2), and likewise for columns. Same
    /// result, 16/36 of the multiplications, and the upsampled tensor (RealESRGAN_x2plus at 512²: 64×1024² floats,
    /// 256 MiB) is never made.
    func upsamplePhases(_ state: ConvState, _ p: Conv2dParams, op: String) throws -> [(conv: PreparedConv2d, a: Int, b: Int)] {
        if let known = state.upsamplePhases { return known }
        let ci = p.inChannels, co = p.outChannels
        let w: [Float]
        if let host = state.weight {
            w = host
        } else {
            let buffer = try ownWinogradWeights(state, op: op)
            w = Array(UnsafeBufferPointer(start: buffer.floats, count: co * ci * 9))
        }
        let sets = [[[0], [1, 2]], [[0, 1], [2]]]   // [phase][tap] → 3×3 kernel rows (or columns) it sums
        var phases: [(PreparedConv2d, Int, Int)] = []
        for a in 0..<2 {
            for b in 0..<2 {
                var k = [Float](repeating: 0, count: co * ci * 4)
                for o in 0..<co {
                    for i in 0..<ci {
                        let src = (o * ci + i) * 9
                        for qy in 0..<2 {
                            for qx in 0..<2 {
                                var sum: Float = 0
                                for ty in sets[a][qy] { for tx in sets[b][qx] { sum += w[src + ty * 3 + tx] } }
                                k[((o * ci + i) * 2 + qy) * 2 + qx] = sum
                            }
                        }
                    }
                }
                let params = Conv2dParams(inChannels: ci, outChannels: co, kernelH: 2, kernelW: 2, strideH: 1, strideW: 1,
                                          padTop: 1 - a, padBottom: a, padLeft: 1 - b, padRight: b, groups: 1)
                let bias = try state.biasHost.map { try HostTensor(shape: [$0.count], data: $0) }
                phases.append((try prepareConv2d(weight: try HostTensor(shape: [co, ci, 2, 2], data: k), bias: bias, params: params), a, b))
            }
        }
        state.upsamplePhases = phases
        return phases
    }

    public func upsampleNearestConv2d(_ x: Tensor, factor: Int, _ conv: PreparedConv2d, epilogue: Epilogue) throws -> Tensor {
        try sync {
            let p = conv.params
            guard Self.transposedPhases, factor == 2, conv.backendID == id, let state = conv.payload as? ConvState,
                  p.kernelH == 3, p.kernelW == 3, p.strideH == 1, p.strideW == 1, p.groups == 1,
                  p.padTop == 1, p.padBottom == 1, p.padLeft == 1, p.padRight == 1,
                  epilogue.residual == nil, x.shape.c == p.inChannels else {
                return try conv2d(upsampleNearest(x, factor: factor), conv, epilogue: epilogue, into: nil)
            }
            let op = "upsampleNearestConv2d"
            try check(x, op)
            let oshape = TensorShape(n: x.shape.n, c: p.outChannels, h: 2 * x.shape.h, w: 2 * x.shape.w)
            try validateEpilogue(epilogue, out: oshape, op: op)
            let out = try alloc(oshape, blockedLayout, op: op)
            for (phase, a, b) in try upsamplePhases(state, p, op: op) {
                let z = try conv2d(x, phase, epilogue: epilogue, into: nil)
                try interleave(z, into: out, first: (a, b), stride: 2, op: op)
            }
            return out
        }
    }
}
