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

    /// The phase convolutions of an ungrouped transposed convolution with stride ≥ 2, cut from its IOHW weights; nil
    /// when it has other parameters or a phase would need negative padding.
    func makeTransposedPhases(_ iohw: [Float], bias: HostTensor?, _ p: ConvTranspose2dParams, padL: Int, padR: Int) throws -> [TransposedPhase]? {
        guard Self.transposedPhases, p.groups == 1, p.stride >= 2, p.kernel >= p.stride else { return nil }
        let s = p.stride, k = p.kernel, ci = p.inChannels, co = p.outChannels
        var axes: [PhaseAxis] = []
        for a in 0..<s {
            guard let axis = PhaseAxis(phase: a, stride: s, kernel: k, padL: padL, padR: padR) else { return nil }
            axes.append(axis)
        }
        var phases: [TransposedPhase] = []
        for ay in axes {
            for ax in axes {
                let jh = ay.taps.count, jw = ax.taps.count
                var wt = [Float](repeating: 0, count: co * ci * jh * jw)
                for o in 0..<co {
                    for i in 0..<ci {
                        for (qy, ty) in ay.taps.enumerated() {
                            for (qx, tx) in ax.taps.enumerated() {
                                wt[((o * ci + i) * jh + qy) * jw + qx] = iohw[((i * co + o) * k + ty) * k + tx]
                            }
                        }
                    }
                }
                let params = Conv2dParams(inChannels: ci, outChannels: co, kernelH: jh, kernelW: jw, strideH: 1, strideW: 1,
                                          padTop: ay.padBegin, padBottom: ay.padEnd, padLeft: ax.padBegin, padRight: ax.padEnd, groups: 1)
                let conv = try prepareConv2d(weight: try HostTensor(shape: [co, ci, jh, jw], data: wt), bias: bias, params: params)
                phases.append(TransposedPhase(conv: conv, y: ay, x: ax))
            }
        }
        return phases
    }

    /// Runs the phases into a new blocked output of `oshape`; a residual is added after the interleave (the phases take
    /// the rest of the epilogue, which is element-wise).
    func runTransposedPhases(_ x: Tensor, _ phases: [TransposedPhase], stride s: Int, epilogue: Epilogue, oshape: TensorShape, op: String) throws -> Tensor {
        let out = try alloc(oshape, blockedLayout, op: op)
        let b = blockedLayout.channelBlock
        let oh = oshape.h, ow = oshape.w
        var e = epilogue
        e.residual = nil
        for phase in phases {
            let (lh, lw) = (phase.y.length(input: x.shape.h), phase.x.length(input: x.shape.w))
            guard lh > 0, lw > 0 else { continue }
            let z = try conv2d(x, phase.conv, epilogue: e, into: nil)
            guard z.shape.h == lh, z.shape.w == lw else {
                throw TensorError.backendFailure(op: op, message: "internal: phase output \(z.shape) for \(lh)×\(lw)")
            }
            // the phase's sub-lattice of `out`: every s-th row and column from its first pixel
            var dst = MD.make([oshape.n, oshape.c, lh, lw], b == 16 ? dnnl_nChw16c : dnnl_nChw8c)
            MD.setStrides(&dst, [blockedLayout.paddedChannels(oshape.c) * oh * ow, b * oh * ow, s * b * ow, s * b])
            let offset = (phase.y.first * ow + phase.x.first) * b * 4
            try reorder(md(z), z.buffer.pointer + z.byteOffset, dst, out.buffer.pointer + offset, op: op + " phase")
        }
        if let r = epilogue.residual { return try add(out, r, alpha: 1, beta: epilogue.residualScale) }
        return out
    }
}
