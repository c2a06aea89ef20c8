import Checkpoint
import Foundation
import TensorCore

/// GPEN `FullGenerator` (yangxy/GPEN `face_model/gpen_model.py`) for inference on any backend: encoder, mapping
/// network, modulated/demodulated synthesis with the encoder features concatenated as "noise", ToRGB skips.
/// Input and output are N×3×S×S RGB tensors nominally in [-1, 1] (layout N, C, H, W). Weights are prepared once;
/// the per-sample style enters as an input-channel scaling and demodulation as an output-channel scaling.
public final class GPENGenerator: @unchecked Sendable {
    /// The hyper-parameters the network was built with.
    public let configuration: GPENConfiguration
    /// The backend the weights were prepared on.
    public let backend: any Backend
    /// Face side S (input and output are S×S).
    public var size: Int { configuration.size }

    static let gain = Float(2).squareRoot()
    static let act = Activation.scaledLeakyReLU(slope: 0.2, gain: gain)
    /// [1,3,3,1]/8: outer(taps, taps) is the normalised FIR kernel make_kernel([1,3,3,1]).
    static let firTaps: [Float] = [1, 3, 3, 1].map { $0 / 8 }
    /// The FIR taps times 2 (kernel × 4) used after upsampling.
    static let firTapsUp: [Float] = [1, 3, 3, 1].map { $0 / 4 }

    struct ModConv {
        let inChannels: Int, outChannels: Int
        let modulation: PreparedLinear
        let conv: PreparedConv2d?
        let convT: PreparedConvTranspose2d?
        let demod: PreparedLinear?
    }
    struct StyledConv { let conv: ModConv; let noiseWeight: Float; let bias: PreparedVector }
    struct ToRGB { let conv: ModConv; let upsample: Bool }

    let encoderFirst: PreparedConv2d
    let encoder: [PreparedConv2d]
    let finalLinear: PreparedLinear
    let mapping: [PreparedLinear]
    /// The learned constant input [1, C, 4, 4] and its copies for batches of n, uploaded once each (guarded by
    /// `constantLock`).
    let constant: HostTensor
    private var constantByBatch: [Int: Tensor] = [:]
    private let constantLock = NSLock()
    let conv1: StyledConv
    let toRGB1: ToRGB
    let convs: [StyledConv]
    let toRGBs: [ToRGB]

    /// The constant input repeated for a batch of `n`, uploaded on the first forward with that batch size and kept
    /// like the weights.
    func constantInput(batch n: Int) throws -> Tensor {
        try constantLock.withLock {
            if let t = constantByBatch[n] { return t }
            var data: [Float] = []
            data.reserveCapacity(constant.count * n)
            for _ in 0..<n { data += constant.data }
            let t = try backend.uploadConstant(HostTensor(shape: [n] + constant.shape.dropFirst(), data: data))
            constantByBatch[n] = t
            return t
        }
    }

    /// Channel count at resolution `r` (upstream's table: int(512·narrow) up to 32, int(16384/r·cm·narrow) above).
    public static func channels(_ c: GPENConfiguration, resolution r: Int) -> Int {
        if r <= 32 { return Int(512.0 * c.narrow) }
        return Int(Double(16384 / r) * Double(c.channelMultiplier) * c.narrow)
    }

    /// Loads a GPEN state dict strictly (every key used, every shape checked; a mismatch names the dotted key and
    /// both shapes). The configuration is detected from the weights unless given.
    public init(stateDict dict: StateDict, configuration given: GPENConfiguration? = nil, backend: any Backend) throws {
        let cfg: GPENConfiguration
        if let given { cfg = given } else {
            switch ArchitectureDetector.detect(dict) {
            case let .gpen(c): cfg = c
            case let other: throw FaceModelError.wrongArchitecture(model: "GPEN", found: other.name)
            }
        }
        let size = cfg.size
        guard size >= 8, size <= 4096, size & (size - 1) == 0 else {
            throw FaceModelError.invalidConfiguration(model: "GPEN", reason: "size \(size) is not a power of two in 8...4096")
        }
        guard cfg.styleDim > 0, cfg.styleDim <= 8192, cfg.nMLP >= 0, cfg.nMLP <= 64, cfg.channelMultiplier > 0,
              cfg.narrow > 0, Self.channels(cfg, resolution: size) > 0 else {
            throw FaceModelError.invalidConfiguration(model: "GPEN", reason: "\(cfg)")
        }
        dict.resetUsage()
        self.configuration = cfg
        self.backend = backend
        let be = backend
        let r = WeightReader(dict)
        let L = Int(log2(Double(size)).rounded())
        let sd = cfg.styleDim
        func ch(_ res: Int) -> Int { Self.channels(cfg, resolution: res) }

        func checkKernel(_ key: String, scale: Float) throws {
            let k = try r.floats(key, [4, 4])
            let t: [Float] = [1, 3, 3, 1]
            for y in 0..<4 { for x in 0..<4 {
                let want = t[y] * t[x] / 64 * scale
                if abs(k[y * 4 + x] - want) > 1e-6 {
                    throw FaceModelError.unexpectedBuffer(key: key, reason: "expected the [1,3,3,1] FIR kernel ×\(scale), found \(k)")
                }
            } }
        }

        // Encoder.
        let c0 = ch(size)
        let w0 = try r.host("ecd0.0.0.weight", [c0, 3, 1, 1], scale: 1 / Float(3).squareRoot())
        encoderFirst = try be.prepareConv2d(weight: w0, bias: r.host("ecd0.0.1.bias", [c0]),
                                            params: Conv2dParams(inChannels: 3, outChannels: c0, kernel: 1))
        var enc: [PreparedConv2d] = []
        var res = size
        for k in 1...(L - 2) {
            let ci = ch(res), co = ch(res / 2)
            try checkKernel("ecd\(k).0.0.kernel", scale: 1)
            let w = try r.host("ecd\(k).0.1.weight", [co, ci, 3, 3], scale: 1 / Float(ci * 9).squareRoot())
            enc.append(try be.prepareConv2d(weight: w, bias: r.host("ecd\(k).0.2.bias", [co]),
                                            params: Conv2dParams(inChannels: ci, outChannels: co, kernel: 3, stride: 2)))
            res /= 2
        }
        encoder = enc
        let c4 = ch(4)
        let fw = try r.host("final_linear.0.weight", [sd, c4 * 16], scale: 1 / Float(c4 * 16).squareRoot())
        finalLinear = try be.prepareLinear(weight: fw, bias: r.host("final_linear.0.bias", [sd]))

        // Mapping network (style.0 is PixelNorm).
        var maps: [PreparedLinear] = []
        for i in 0..<cfg.nMLP {
            let w = try r.host("generator.style.\(i + 1).weight", [sd, sd], scale: 0.01 / Float(sd).squareRoot())
            let b = try r.host("generator.style.\(i + 1).bias", [sd], scale: 0.01)
            maps.append(try be.prepareLinear(weight: w, bias: b))
        }
        mapping = maps
        constant = try r.host("generator.input.input", [1, c4, 4, 4])

        func modConv(_ p: String, inC: Int, outC: Int, k: Int, demodulate: Bool, upsample: Bool, bias: HostTensor?) throws -> ModConv {
            let mw = try r.host(p + ".modulation.weight", [inC, sd], scale: 1 / Float(sd).squareRoot())
            let mb = try r.host(p + ".modulation.bias", [inC])
            let modulation = try be.prepareLinear(weight: mw, bias: mb)
            let w = try r.host(p + ".weight", [1, outC, inC, k, k], reshapedTo: [outC, inC, k, k],
                              scale: 1 / Float(inC * k * k).squareRoot())
            var demod: PreparedLinear?
            let kk = k * k
            if demodulate {
                // Σ over the taps of w², per (out, in): the demodulation's linear layer
                let sq = [Float](unsafeUninitializedCapacity: outC * inC) { out, count in
                    w.data.withUnsafeBufferPointer { src in
                        for j in 0..<(outC * inC) {
                            var acc: Float = 0
                            for t in 0..<kk { let v = src[j * kk + t]; acc += v * v }
                            out[j] = acc
                        }
                    }
                    count = outC * inC
                }
                demod = try be.prepareLinear(weight: HostTensor(shape: [outC, inC], data: sq), bias: nil)
            }
            if upsample {
                try checkKernel(p + ".blur.kernel", scale: 4)
                // conv_transpose2d reads this OIHW weight transposed (IOHW); the backend takes it as it is
                let ct = try be.prepareConvTranspose2d(oihwWeight: w, bias: bias,
                                                       params: ConvTranspose2dParams(inChannels: inC, outChannels: outC, kernel: k, stride: 2))
                return ModConv(inChannels: inC, outChannels: outC, modulation: modulation, conv: nil, convT: ct, demod: demod)
            }
            let c = try be.prepareConv2d(weight: w, bias: bias,
                                         params: Conv2dParams(inChannels: inC, outChannels: outC, kernel: k, padding: k / 2))
            return ModConv(inChannels: inC, outChannels: outC, modulation: modulation, conv: c, convT: nil, demod: demod)
        }
        func styled(_ p: String, inC: Int, outC: Int, upsample: Bool) throws -> StyledConv {
            let mc = try modConv(p + ".conv", inC: inC, outC: outC, k: 3, demodulate: true, upsample: upsample, bias: nil)
            let nw = try r.floats(p + ".noise.weight", [1])[0]
            let b = try be.prepareVector(r.host(p + ".activate.bias", [2 * outC]).data)
            return StyledConv(conv: mc, noiseWeight: nw, bias: b)
        }
        func toRGB(_ p: String, inC: Int, upsample: Bool) throws -> ToRGB {
            let b = try r.host(p + ".bias", [1, 3, 1, 1], reshapedTo: [3])
            if upsample { try checkKernel(p + ".upsample.kernel", scale: 4) }
            let mc = try modConv(p + ".conv", inC: inC, outC: 3, k: 1, demodulate: false, upsample: false, bias: b)
            return ToRGB(conv: mc, upsample: upsample)
        }

        conv1 = try styled("generator.conv1", inC: c4, outC: c4, upsample: false)
        toRGB1 = try toRGB("generator.to_rgb1", inC: 2 * c4, upsample: false)
        var cs: [StyledConv] = [], rgbs: [ToRGB] = []
        var prev = c4
        for j in 0..<(L - 2) {
            let cr = ch(8 << j)
            cs.append(try styled("generator.convs.\(2 * j)", inC: 2 * prev, outC: cr, upsample: true))
            cs.append(try styled("generator.convs.\(2 * j + 1)", inC: 2 * cr, outC: cr, upsample: false))
            rgbs.append(try toRGB("generator.to_rgbs.\(j)", inC: 2 * cr, upsample: true))
            prev = cr
        }
        convs = cs
        toRGBs = rgbs
        try dict.verifyAllUsed()
        replay = ReplayedForward(backend: backend, label: "GPEN-\(size)", serial: true) { [unowned self] x in [try self.forward(x)] }
    }

    /// Loads a GPEN checkpoint file (plain state dict, or wrapped, e.g. `g_ema`) strictly.
    public convenience init(contentsOf url: URL, configuration: GPENConfiguration? = nil, backend: any Backend) throws {
        let ck = try CheckpointLoader.load(url)
        try self.init(stateDict: ck.stateDict, configuration: configuration, backend: backend)
    }

    /// A modulated convolution; with `into`, the result is written there (a channel view) and returned.
    func run(_ m: ModConv, _ h: Tensor, style w: Tensor, epilogue base: Epilogue = .identity, into: Tensor? = nil) throws -> Tensor {
        var slot: Tensor? = h
        return try run(m, taking: &slot, style: w, epilogue: base, into: into)
    }

    /// The same, taking its input out of `slot` and letting go of it as early as it can, when the caller holds no other
    /// reference: an upsampling conv once x·s exists, any other conv once it has run (GPEN-512 at 512²: 64 MiB less at
    /// the generator's peak each).
    func run(_ m: ModConv, taking slot: inout Tensor?, style w: Tensor, epilogue base: Epilogue = .identity, into: Tensor? = nil) throws -> Tensor {
        let be = backend
        let s = try be.linear(w, m.modulation)
        var e = base
        if let dm = m.demod {
            let d = try be.linear(be.unary(s, .square), dm)
            e.channelScale = try be.unary(d, .rsqrt(eps: 1e-8))
        }
        if let ct = m.convT {
            // x·s lives only until the transposed conv has read it; the blur writes straight into `into`
            let t = try { () throws -> Tensor in
                let xs = try be.scaleChannels(slot!, by: s)
                slot = nil
                return try be.convTranspose2d(xs, ct, epilogue: e)
            }()
            guard let into else { return try be.upfirdn2d(t, taps: Self.firTapsUp, up: 1, down: 1, pad0: 1, pad1: 1) }
            try be.upfirdn2d(t, taps: Self.firTapsUp, up: 1, down: 1, pad0: 1, pad1: 1, into: into)
            return into
        }
        // x·s then the conv, which the backend may fold into the conv's weights; the input goes once it has been read
        let y = try be.conv2d(slot!, m.conv!, inputScale: s, epilogue: e, into: into)
        slot = nil
        return y
    }

    /// Modulated conv, noise injection as extra channels (GPEN's isconcat), bias and FusedLeakyReLU. The conv output
    /// and the scaled noise are written straight into their halves of one buffer where the backend's channel views
    /// allow (`ChannelConcat`), instead of being made apart and concatenated: at 512² that is 128 MiB less at the peak.
    func run(_ sc: StyledConv, _ h: Tensor, style w: Tensor, noise: Tensor) throws -> Tensor {
        var slot: Tensor? = h
        return try run(sc, taking: &slot, style: w, noise: noise)
    }

    /// The same, taking the noise out of `noiseSlot` too, for its last use: where channel views allow, the scaled noise
    /// goes into its half first and the noise is let go before the conv runs (GPEN-512: the 512² encoder feature,
    /// 64 MiB, was alive beside both 128-channel concatenations of the last styled conv, the generator's peak).
    func run(_ sc: StyledConv, taking slot: inout Tensor?, style w: Tensor, takingNoise noiseSlot: inout Tensor?) throws -> Tensor {
        let be = backend
        let co = sc.conv.outChannels, nc = noiseSlot!.shape.c, a = max(1, be.channelViewAlignment)
        guard co % a == 0, nc % a == 0 else { return try run(sc, taking: &slot, style: w, noise: noiseSlot!) }
        var shape = noiseSlot!.shape
        shape.c = co + nc
        let cat = try be.empty(shape)
        try be.affine(noiseSlot!, scale: sc.noiseWeight, into: be.channelView(cat, co..<(co + nc)))
        noiseSlot = nil
        _ = try run(sc.conv, taking: &slot, style: w, into: be.channelView(cat, 0..<co))
        return try be.biasActivationReusing(cat, bias: sc.bias, activation: Self.act)   // the buffer is ours alone
    }

    func run(_ sc: StyledConv, taking slot: inout Tensor?, style w: Tensor, noise: Tensor) throws -> Tensor {
        let be = backend
        var shape = noise.shape
        shape.c = sc.conv.outChannels + noise.shape.c
        let cat = try ChannelConcat(be, shape: shape, partChannels: [sc.conv.outChannels, noise.shape.c])
        try cat.append { into in try run(sc.conv, taking: &slot, style: w, into: into) }
        try cat.append { into in
            guard let into else { return try be.affine(noise, scale: sc.noiseWeight, shift: 0) }
            try be.affine(noise, scale: sc.noiseWeight, into: into)   // straight into its half, no temporary
            return into
        }
        return try be.biasActivationReusing(cat.current!, bias: sc.bias, activation: Self.act)   // the buffer is ours alone
    }

    func run(_ t: ToRGB, _ h: Tensor, style w: Tensor, skip: Tensor?) throws -> Tensor {
        var e = Epilogue.identity
        if let skip, t.upsample {
            e.residual = try backend.upfirdn2d(skip, taps: Self.firTapsUp, up: 2, down: 1, pad0: 2, pad1: 1)
        }
        return try run(t.conv, h, style: w, epilogue: e)
    }

    /// The raw generator output for an N×3×S×S RGB input in [-1, 1]: N×3×S×S RGB, nominally [-1, 1], unclamped.
    public func forward(_ x: Tensor) throws -> Tensor {
        let S = size
        guard x.shape.c == 3, x.shape.h == S, x.shape.w == S else {
            throw FaceModelError.invalidInput(model: "GPEN", reason: "expected N×3×\(S)×\(S), got \(x.shape)")
        }
        let be = backend
        let n = x.shape.n
        var feats: [Tensor] = []
        var e = try be.conv2d(x, encoderFirst, epilogue: .activation(Self.act))
        feats.append(e)
        for c in encoder {
            let b = try be.upfirdn2d(e, taps: Self.firTaps, up: 1, down: 1, pad0: 2, pad1: 2)
            e = try be.conv2d(b, c, epilogue: .activation(Self.act))
            feats.append(e)
        }
        let z = try be.linear(e, finalLinear, epilogue: .activation(Self.act))
        var w = try be.pixelNorm(z, eps: 1e-8)
        for m in mapping { w = try be.linear(w, m, epilogue: .activation(Self.act)) }

        let k = feats.count - 1
        // `h` and the encoder features are held only here, so that each conv can let go of its input early and each
        // feature's last use can let go of it before its conv runs (run(_:taking:…))
        var noises: [Tensor?] = feats
        feats.removeAll()
        var constant: Tensor? = try constantInput(batch: n)
        var h: Tensor? = try run(conv1, taking: &constant, style: w, takingNoise: &noises[k])
        var skip = try run(toRGB1, h!, style: w, skip: nil)
        for j in 0..<toRGBs.count {
            // the upsampled tensor goes as soon as the next conv has read it
            var up: Tensor? = try run(convs[2 * j], taking: &h, style: w, noise: noises[k - 1 - j]!)
            h = try run(convs[2 * j + 1], taking: &up, style: w, takingNoise: &noises[k - 1 - j])
            skip = try run(toRGBs[j], h!, style: w, skip: skip)
        }
        return skip
    }

    // MARK: FaceGAN pre/post-processing

    /// FaceGAN `img2tensor`: uint8 BGR pixels (layout H·W·C, C = 3) → 1×3×H×W RGB host tensor, (x/255 − 0.5)/0.5.
    public static func inputTensor(bgr: [UInt8], width: Int, height: Int) throws -> HostTensor {
        guard width > 0, height > 0, bgr.count == width * height * 3 else {
            throw FaceModelError.invalidInput(model: "GPEN", reason: "\(bgr.count) bytes for a \(width)x\(height) BGR image")
        }
        let plane = width * height
        var d = [Float](repeating: 0, count: 3 * plane)
        for p in 0..<plane {
            for c in 0..<3 {
                let v = Float(bgr[p * 3 + (2 - c)]) / 255
                d[c * plane + p] = (v - 0.5) / 0.5
            }
        }
        return try HostTensor(shape: [1, 3, height, width], data: d)
    }

    /// FaceGAN `tensor2img`: a 1×3×H×W RGB output → uint8 BGR (layout H·W·C) = uint8(clip(y·0.5 + 0.5, 0, 1)·255),
    /// truncated like NumPy's `astype(uint8)`. `batch` picks the sample of an N×3×H×W tensor.
    public static func outputBGR(_ t: HostTensor, batch: Int = 0) throws -> [UInt8] {
        guard t.shape.count == 4, t.shape[1] == 3, batch >= 0, batch < t.shape[0] else {
            throw FaceModelError.invalidInput(model: "GPEN", reason: "expected N×3×H×W output, got \(t.shape)")
        }
        let plane = t.shape[2] * t.shape[3]
        var out = [UInt8](repeating: 0, count: plane * 3)
        let base = batch * 3 * plane
        for p in 0..<plane {
            for c in 0..<3 {
                let y = t.data[base + c * plane + p]
                var v = y * 0.5
                v = v + 0.5
                v = min(max(v, 0), 1) * 255
                out[p * 3 + (2 - c)] = v.isNaN ? 0 : UInt8(v)
            }
        }
        return out
    }

    /// Host in, host out, one forward at a time: eager, or a replayed CUDA graph per batch size once
    /// `replay.enableCapture()` was called; concurrent photos' faces share a forward with `replay.mergeLimit` > 1.
    /// (Set as init's last step, before anyone else sees the generator.)
    public private(set) var replay: ReplayedForward!

    /// FaceGAN `process` on an S×S BGR crop (layout H·W·C): normalise, run the generator, convert back (truncated).
    public func restore(bgr: [UInt8]) throws -> [UInt8] {
        try restore(batch: [bgr])[0]
    }

    /// FaceGAN `process` on several S×S BGR crops in one N×3×S×S forward pass (one-by-one results up to float rounding; the
    /// low-resolution layers read their large weights once for all faces).
    public func restore(batch crops: [[UInt8]]) throws -> [[UInt8]] {
        guard !crops.isEmpty else { return [] }
        var data: [Float] = []
        data.reserveCapacity(crops.count * 3 * size * size)
        for c in crops { data += try Self.inputTensor(bgr: c, width: size, height: size).data }
        let y = try replay.run(HostTensor(shape: [crops.count, 3, size, size], data: data))[0]
        return try (0..<crops.count).map { try Self.outputBGR(y, batch: $0) }
    }
}
