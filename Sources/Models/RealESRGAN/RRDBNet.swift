import Foundation
import Checkpoint
import TensorCore

/// BasicSR's RRDBNet (ESRGAN / Real-ESRGAN generator) on any backend.
///
/// Input 1×C×H×W (**N, C, H, W**, RGB in [0, 1]); ×2 and ×1 models pixel-unshuffle the input by 2 / 4 first, so
/// H and W must be even (×2) or multiples of 4 (×1). Output 1×C×(scale·H)×(scale·W), raw (no clamp).
/// Fusions: conv + LeakyReLU(0.2) epilogues, dense-block concatenation through channel views of one buffer when
/// the backend's view alignment allows (copies through `concat` otherwise), the RDB residual `x + 0.2·conv5`
/// and the RRDB residual `x + 0.2·rdb3` folded into conv5's epilogue of the third block.
public final class RRDBNet: SuperResolutionNetwork, @unchecked Sendable {
    /// The configuration (num_in_ch, num_out_ch, scale, num_feat, num_block, num_grow_ch).
    public let configuration: RRDBNetConfiguration
    public let backend: any Backend
    public var architectureName: String { "RRDBNet" }
    public var scale: Int { configuration.scale }
    public var channels: Int { configuration.numInCh }
    public var inputMultiple: Int { configuration.scale == 4 ? 1 : 4 / configuration.scale }
    public let parameterCount: Int

    private struct RDB { let convs: [PreparedConv2d] }
    private let convFirst: PreparedConv2d
    private let body: [[RDB]]
    private let convBody, convUp1, convUp2, convHR, convLast: PreparedConv2d
    private static let lrelu = Activation.leakyReLU(slope: 0.2)

    /// Builds the network and loads its weights strictly from `weights` (every key consumed, shapes checked).
    public init(configuration c: RRDBNetConfiguration, weights: any WeightSource, backend: any Backend) throws {
        guard [1, 2, 4].contains(c.scale) else {
            throw RealESRGANError.unsupportedConfiguration("RRDBNet scale must be 1, 2 or 4, got \(c.scale)")
        }
        guard c.numInCh > 0, c.numOutCh > 0, c.numFeat > 0, c.numBlock >= 0, c.numGrowCh > 0,
              c.numFeat <= 4096, c.numGrowCh <= 4096, c.numBlock <= 1000, c.numInCh <= 64, c.numOutCh <= 64 else {
            throw RealESRGANError.unsupportedConfiguration("RRDBNet \(c)")
        }
        guard c.numInCh == c.numOutCh else {
            throw RealESRGANError.unsupportedConfiguration("RRDBNet with num_in_ch \(c.numInCh) ≠ num_out_ch \(c.numOutCh)")
        }
        configuration = c
        self.backend = backend
        let nf = c.numFeat, gc = c.numGrowCh
        let firstIn = c.numInCh * (c.scale == 2 ? 4 : c.scale == 1 ? 16 : 1)
        var params = 0
        func conv(_ key: String, _ i: Int, _ o: Int) throws -> PreparedConv2d {
            params += o * i * 9 + o
            return try prepareConv3x3(backend, weights, key, inChannels: i, outChannels: o)
        }
        convFirst = try conv("conv_first", firstIn, nf)
        var blocks: [[RDB]] = []
        for b in 0..<c.numBlock {
            var rdbs: [RDB] = []
            for r in 1...3 {
                var convs: [PreparedConv2d] = []
                for k in 1...5 {
                    convs.append(try conv("body.\(b).rdb\(r).conv\(k)", nf + (k - 1) * gc, k == 5 ? nf : gc))
                }
                rdbs.append(RDB(convs: convs))
            }
            blocks.append(rdbs)
        }
        body = blocks
        convBody = try conv("conv_body", nf, nf)
        convUp1 = try conv("conv_up1", nf, nf)
        convUp2 = try conv("conv_up2", nf, nf)
        convHR = try conv("conv_hr", nf, nf)
        convLast = try conv("conv_last", nf, c.numOutCh)
        try weights.verifyAllUsed()
        parameterCount = params
    }

    /// 1 (conv_first) + 15 per RRDB + 1 (conv_body) LR convolutions, in LR pixels, plus the HR convolutions
    /// (2 LR px), converted to input pixels (×4 for ×1, ×2 for ×2).
    public var receptiveFieldRadius: Int {
        let lr = 1 + 15 * configuration.numBlock + 1 + 2
        return lr * (configuration.scale == 4 ? 1 : 4 / configuration.scale)
    }

    /// Peak activations: the dense buffer (nf + 4gc) plus ~4 nf-channel tensors at LR, or at the ×4 stage three
    /// nf-channel tensors at 16× the LR area; whichever is larger, in float32 bytes per input pixel.
    public var activationBytesPerInputPixel: Int {
        let nf = configuration.numFeat, gc = configuration.numGrowCh
        let lrPerInput = configuration.scale == 4 ? 1.0 : 1.0 / Double((4 / configuration.scale) * (4 / configuration.scale))
        let lr = Double(nf + 4 * gc + 4 * nf) * lrPerInput
        let hr = Double(3 * nf + configuration.numOutCh) * 16 * lrPerInput
        let x2 = Double(3 * nf) * 4 * lrPerInput
        return Int((max(lr, hr, x2) * 4).rounded(.up))
    }

    /// The LR part (the dense buffer plus ~4 nf-channel tensors) or the ×4 stage, whichever is larger; with the tail in
    /// row bands the ×4 stage holds one band's three nf-channel tensors (its rows plus halos) plus the whole output and
    /// the LR feature it reads, so its bytes stop growing with the image height.
    public func activationBytes(height: Int, width: Int, batch: Int) -> Int {
        let nf = configuration.numFeat, gc = configuration.numGrowCh, out = configuration.numOutCh
        let down = configuration.scale == 4 ? 1 : 4 / configuration.scale
        let lrH = max(1, height / down), lrW = max(1, width / down)
        let lrArea = Double(lrH * lrW * batch)
        let lr = Double(nf + 4 * gc + 4 * nf) * lrArea
        let band = tailBandRows(TensorShape(n: batch, c: nf, h: lrH, w: lrW))
        let tail: Double
        if band < lrH {
            let rows = Double(min(lrH, band + 2 * Self.tailHalo) * lrW * batch)
            tail = Double(3 * nf + out) * 16 * rows + Double(out * 16 + nf) * lrArea
        } else {
            tail = Double(3 * nf + out) * 16 * lrArea
        }
        return Int((max(lr, tail) * 4).rounded(.up))
    }

    public func forward(_ x: Tensor) throws -> Tensor {
        let s = x.shape
        guard s.c == configuration.numInCh else {
            throw RealESRGANError.invalidInput("RRDBNet expects \(configuration.numInCh) channels, got \(s)")
        }
        guard s.h % inputMultiple == 0, s.w % inputMultiple == 0 else {
            throw RealESRGANError.invalidInput("RRDBNet ×\(scale) needs H and W divisible by \(inputMultiple), got \(s.h)×\(s.w)")
        }
        let be = backend
        var feat: Tensor
        switch configuration.scale {
        case 2: feat = try be.pixelUnshuffle(x, factor: 2)
        case 1: feat = try be.pixelUnshuffle(x, factor: 4)
        default: feat = x
        }
        feat = try be.conv2d(feat, convFirst)
        var trunk = feat
        for rrdb in body { trunk = try runRRDB(trunk, rrdb) }
        feat = try be.conv2d(trunk, convBody, epilogue: Epilogue(residual: feat))
        trunk = feat
        let band = tailBandRows(feat.shape)
        guard band < feat.shape.h else { return try tail(feat) }
        // The tail in row bands: each band of LR rows with `tailHalo` rows either side (clipped at the image), whose
        // own rows are exact because every border effect of the slab stays inside its halo (below).
        let h = feat.shape.h
        let out = try be.empty(TensorShape(n: feat.shape.n, c: configuration.numOutCh, h: 4 * h, w: 4 * feat.shape.w))
        for first in stride(from: 0, to: h, by: band) {
            let end = min(h, first + band)
            let lo = max(0, first - Self.tailHalo), hi = min(h, end + Self.tailHalo)
            let y = try tail(be.sliceRows(feat, lo..<hi))
            try be.copyRows(y, (4 * (first - lo))..<(4 * (end - lo)), into: out, atRow: 4 * first)
        }
        return out
    }

    /// up1 → up2 → hr → last: the ×4 stage, on the whole LR tensor or a slab of its rows.
    private func tail(_ x: Tensor) throws -> Tensor {
        let be = backend
        var feat = try be.upsampleNearestConv2d(x, factor: 2, convUp1, epilogue: .activation(Self.lrelu))
        feat = try be.upsampleNearestConv2d(feat, factor: 2, convUp2, epilogue: .activation(Self.lrelu))
        feat = try be.conv2d(feat, convHR, epilogue: .activation(Self.lrelu))
        return try be.conv2d(feat, convLast)
    }

    /// LR rows a slab needs beyond its band. A slab edge that is not the image's is zero-padded like the image's, so
    /// rows near it go wrong: one ×2 row after up1's conv (½ LR row), then after the ×2 upsampling two ×4 rows plus
    /// one for each of up2, hr and last — five ×4 rows, 1¼ LR rows. Two rows keep every band row exact.
    static let tailHalo = 2

    /// Largest ×4-stage tensor of one band, in bytes: bands keep the tail's peak near this instead of three
    /// nf-channel tensors at 16× the LR area (RealESRGAN_x2plus at 512²: 256 MiB each). 0 = no bands.
    /// Default 24 MiB; `ENHANCE_TAIL_BAND_MIB` overrides it (0 runs the tail on the whole tensor, for A/B runs).
    public var tailBandBytes = RRDBNet.defaultTailBandBytes

    static let defaultTailBandBytes: Int = {
        guard let v = ProcessInfo.processInfo.environment["ENHANCE_TAIL_BAND_MIB"], let mib = Int(v), mib >= 0 else { return 24 << 20 }
        return mib << 20
    }()

    /// Below 8 rows the halos (4 rows) would cost more than half a band's work again (tests lower it).
    var tailMinimumBandRows = 8

    /// LR rows per band for an LR tensor of shape `s` (≥ s.h: one pass).
    func tailBandRows(_ s: TensorShape) -> Int {
        guard tailBandBytes > 0 else { return s.h }
        let bytesPerLRRow = s.n * configuration.numFeat * 16 * s.w * 4
        let rows = tailBandBytes / max(bytesPerLRRow, 1) - 2 * Self.tailHalo
        return max(rows, tailMinimumBandRows)
    }

    private func runRRDB(_ x: Tensor, _ rdbs: [RDB]) throws -> Tensor {
        let be = backend
        let a = try runRDB(x, rdbs[0], final: nil)
        let b = try runRDB(a, rdbs[1], final: nil)
        // out = x + 0.2·(b + 0.2·conv5) = 0.04·conv5 + (0.2·b + x)
        let r = try be.add(b, x, alpha: 0.2, beta: 1)
        return try runRDB(b, rdbs[2], final: r)
    }

    /// One residual dense block. With `final`, the output is `final + 0.04·conv5` (the RRDB residual folded in),
    /// otherwise `x + 0.2·conv5`.
    private func runRDB(_ x: Tensor, _ rdb: RDB, final: Tensor?) throws -> Tensor {
        let be = backend
        let nf = configuration.numFeat, gc = configuration.numGrowCh
        let lrelu = Epilogue.activation(Self.lrelu)
        let epilogue5 = final.map { Epilogue(outputScale: 0.04, residual: $0) } ?? Epilogue(outputScale: 0.2, residual: x)
        let s = x.shape
        let dense = try ChannelConcat(be, shape: TensorShape(n: s.n, c: nf + 4 * gc, h: s.h, w: s.w),
                                      partChannels: [nf, gc, gc, gc, gc], first: x)
        for k in 0..<4 {
            try dense.append { into in try be.conv2d(dense.current!, rdb.convs[k], epilogue: lrelu, into: into) }
        }
        return try be.conv2d(dense.current!, rdb.convs[4], epilogue: epilogue5)
    }
}
