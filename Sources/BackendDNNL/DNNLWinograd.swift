import CDNNL
import CWinograd
import Foundation
import TensorCore

// MARK: the project's own Winograd F(4×4, 3×3) (Sources/CWinograd) for 3×3 stride-1 convolutions on blocked layouts

extension DNNLBackend {
    /// Which Winograd implementation 3×3 stride-1 convolutions use when `Options.winograd` is on.
    public enum WinogradKernel: String, Sendable {
        /// Ours (CWinograd) wherever it applies, oneDNN's (AVX-512 only) or direct convolution elsewhere.
        case own
        /// oneDNN's only (the behaviour before the own kernel; for comparisons).
        case onednn
    }

    /// `ENHANCE_WINOGRAD=onednn` keeps oneDNN's Winograd only (A/B measurements); the default is `own`.
    static let winogradKernel = WinogradKernel(rawValue: ProcessInfo.processInfo.environment["ENHANCE_WINOGRAD"] ?? "own") ?? .own
    /// `ENHANCE_WINO_TILES`: tiles per task (tuning); 0 or unset lets the kernel choose.
    static let winogradTiles = Int32(ProcessInfo.processInfo.environment["ENHANCE_WINO_TILES"] ?? "") ?? 0
    /// Maps smaller than this many pixels stay with oneDNN: the weight transform is a fixed cost per call (36·in·out
    /// floats written; 512→512: 12 ms, while the convolution itself takes 28 ms at 64×64 and 8 ms at 32×32).
    static let winogradMinPixels = Int(ProcessInfo.processInfo.environment["ENHANCE_WINO_MIN_PIXELS"] ?? "")
    /// With AVX-512, oneDNN's own Winograd (which keeps 4× transformed weights) beats ours on wide layers at small
    /// maps: 512→512 at 64² 33 vs 28 + 12 ms, 1024→256 at 128² 88 vs 114 + 15 ms; ours wins at 512→256 and below.
    static let winogradWideLayer = Int(ProcessInfo.processInfo.environment["ENHANCE_WINO_WIDE"] ?? "") ?? 512 * 512

    /// The activation code, slope and gain of the own kernel's epilogue, or nil when it has no such activation.
    private func winogradActivation(_ a: Activation) -> (Int32, Float, Float)? {
        switch a {
        case .none: return (Int32(ENH_WINO_ACT_NONE), 0, 1)
        case .relu: return (Int32(ENH_WINO_ACT_RELU), 0, 1)
        case let .leakyReLU(s): return (Int32(ENH_WINO_ACT_LEAKY), s, 1)
        case let .scaledLeakyReLU(s, g): return (Int32(ENH_WINO_ACT_LEAKY), s, g)
        case .prelu: return (Int32(ENH_WINO_ACT_PRELU), 0, 1)
        case .sigmoid: return nil
        }
    }

    /// Below the own kernel's smallest map, 3×3 layers prepare direct-convolution weights besides the Winograd ones.
    public var algorithmSwitchPixels: Int {
        options.winograd && Self.winogradKernel == .own ? minPixels(blockedLayout.channelBlock) : 0
    }

    /// The smallest map the own kernel takes: 48² with AVX2 (oneDNN's direct AVX2 kernel runs at ≈ 200 GFLOP/s on two
    /// cores), 64² with AVX-512 (≈ 310).
    private func minPixels(_ block: Int) -> Int {
        options.winogradMinPixels ?? Self.winogradMinPixels ?? (block == 8 ? 48 * 48 : 64 * 64)
    }

    /// Whether the own kernel can run this convolution at all: 3×3, stride 1, padding `pad` on every side, no groups,
    /// channel counts in whole blocks, a blocked input of at least `minPixels`, an activation it has.
    private func ownWinogradApplies(_ p: Conv2dParams, pad: Int, _ x: Tensor, _ epilogue: Epilogue, minPixels least: Int? = nil) -> Bool {
        let b = blockedLayout.channelBlock
        return options.winograd && Self.winogradKernel == .own
            && (options.precision == .fp32 || (options.precision == .bf16 && b == 16 && bf16WinogradMatmul))
            && p.kernelH == 3 && p.kernelW == 3 && p.strideH == 1 && p.strideW == 1 && p.groups == 1
            && p.padTop == pad && p.padBottom == pad && p.padLeft == pad && p.padRight == pad
            && p.inChannels % b == 0 && p.outChannels % b == 0
            && x.layout == blockedLayout && x.shape.h * x.shape.w >= (least ?? minPixels(b))
            && winogradActivation(epilogue.activation) != nil
            && enh_wino_supported(Int32(b)) != 0
    }

    /// Whether the own Winograd kernel runs this convolution.
    func usesOwnWinograd(_ p: Conv2dParams, _ x: Tensor, _ epilogue: Epilogue, state: ConvState, out: Tensor) throws -> Bool {
        let b = blockedLayout.channelBlock, pixels = x.shape.h * x.shape.w
        guard ownWinogradApplies(p, pad: 1, x, epilogue) else { return false }
        let wide = b == 16 && p.inChannels * p.outChannels >= Self.winogradWideLayer && pixels < 256 * 256
        guard wide, options.winogradMinPixels != 0 else { return true }
        // A wide layer on a small map: oneDNN's Winograd if oneDNN builds one for it, else ours (not oneDNN's direct).
        let key = ConvKey(srcLayout: blockedLayout, n: x.shape.n, h: x.shape.h, w: x.shape.w, srcStorage: x.storageChannels,
                          dstStorage: out.storageChannels, epilogue: EpilogueKey(epilogue), fused: true)
        if let known = state.oneDNNWinograd[key] { return !known }
        let plan = try? convPlan(state, p, n: key.n, h: key.h, w: key.w, srcStorage: key.srcStorage, dstStorage: key.dstStorage,
                                 epilogue: key.epilogue, fused: true, validating: true)
        let theirs = plan?.winograd ?? false
        state.oneDNNWinograd[key] = theirs
        return !theirs
    }

    /// Whether oneDNN multiplies bf16 × bf16 → f32 here (with `--precision bf16` the own kernel needs it: no sgemm).
    var bf16WinogradMatmul: Bool {
        if let known = bf16WinogradMatmulKnown { return known }
        let known = (try? winogradMatmul(tiles: 24, in: 64, out: 64, bf16: true, op: "bf16 winograd probe")) != nil
        bf16WinogradMatmulKnown = known
        return known
    }

    /// The oneDNN matmul of one task's 36 per-point products (cached per shape; nil: oneDNN has none, sgemm is used).
    /// `bf16`: bf16 operands, f32 products (`--precision bf16`).
    func winogradMatmul(tiles: Int, in ci: Int, out co: Int, bf16: Bool = false, op: String) throws -> Primitive? {
        let key = "wino-matmul \(tiles) \(ci) \(co)" + (bf16 ? " bf16" : "")
        if let p = opCache[key] { return p }
        let t = bf16 ? dnnl_bf16 : dnnl_f32
        var src = MD.make([36, tiles, ci], dnnl_abc, t), wei = MD.make([36, ci, co], dnnl_abc, t), dst = MD.make([36, tiles, co], dnnl_abc)
        var desc = dnnl_matmul_desc_t()
        try dnnlCheck(dnnl_matmul_desc_init(&desc, &src, &wei, nil, &dst), op + " winograd matmul")
        guard let p = try withUnsafePointer(to: &desc, { try Primitive.make(UnsafeRawPointer($0), attr: nil, engine: engine, op: op) }) else {
            return nil
        }
        opCache[key] = p
        return p
    }

    /// The layer's OIHW weights in the weight pool, made once from the host copy (which is then released) or, when
    /// oneDNN already released that, reordered back from its blocked copy.
    func ownWinogradWeights(_ state: ConvState, op: String) throws -> DeviceBuffer {
        if let o = state.oihw { return o }
        let bytes = MD.size(state.weightMD)
        let buf = try weightPool.allocate(bytes: bytes)
        if let host = state.weight {
            host.withUnsafeBufferPointer { buf.floats.update(from: $0.baseAddress!, count: $0.count) }
        } else {
            guard let first = try reorderableCopy(state, op: op) else {
                throw TensorError.backendFailure(op: op + " weights", message: "no reorderable copy of the weights is left")
            }
            try reorder(first.md, first.buffer.pointer, state.weightMD, buf.pointer, op: op + " weights")
            if first.scale != 1 { for i in 0..<(bytes / 4) { buf.floats[i] /= first.scale } }
        }
        state.oihw = buf
        state.weight = nil
        return buf
    }

    /// ReflectionPad2d(1) + an unpadded 3×3 convolution as one own-Winograd convolution whose input transform reads the
    /// reflected border (ParseNet: every 3×3 stride-1 layer; the padded copy of the input is never made). Elsewhere the
    /// composition. Wide layers take ours here too (the alternative would be the padded copy and oneDNN's Winograd).
    public func reflectPadConv2d(_ x: Tensor, padding: Int, _ conv: PreparedConv2d, epilogue: Epilogue) throws -> Tensor {
        let fused: Tensor? = try sync {
            let op = "reflectPadConv2d"
            try check(x, op)
            // With AVX-512 down to 32²: the alternative there is the padded copy and oneDNN's Winograd, whose 4×
            // transformed weights stay (ParseNet: 156 → 86 MB of weights, first forward 1.60 → 1.43 s). With AVX2 the
            // alternative is oneDNN's direct kernel, faster at 32² (1.75 vs 1.86 s per ParseNet forward).
            let least = options.winogradMinPixels ?? Self.winogradMinPixels ?? (blockedLayout.channelBlock == 16 ? 32 * 32 : nil)
            guard padding == 1, conv.backendID == id, let state = conv.payload as? ConvState,
                  ownWinogradApplies(conv.params, pad: 0, x, epilogue, minPixels: least), x.shape.h >= 2, x.shape.w >= 2 else { return nil }
            let oshape = TensorShape(n: x.shape.n, c: conv.params.outChannels, h: x.shape.h, w: x.shape.w)
            try validateEpilogue(epilogue, out: oshape, op: op)
            let out = try alloc(oshape, blockedLayout, op: op)
            try ownWinogradConv(x, conv.params, state, epilogue: epilogue, out: out, reflect: true, op: op)
            return out
        }
        if let fused { return fused }
        return try conv2d(reflectPad(x, top: padding, bottom: padding, left: padding, right: padding), conv, epilogue: epilogue, into: nil)
    }

    /// Runs the convolution with the own Winograd kernel into `out` (blocked, the output shape); `reflect`: the input's
    /// border is reflected instead of zero (padding 1 either way); `inputScale` (plain, 1×C×1×1) multiplies the weights
    /// of each input channel.
    func ownWinogradConv(_ x: Tensor, _ p: Conv2dParams, _ state: ConvState, epilogue e: Epilogue, out: Tensor, reflect: Bool = false,
                         inputScale: Tensor? = nil, op: String) throws {
        let b = blockedLayout.channelBlock
        let s = x.shape
        let weights = try ownWinogradWeights(state, op: op)
        // bf16: the transformed weights and tiles are rounded to bf16, the products accumulate in f32 (oneDNN's matmul).
        let bf16 = options.precision == .bf16
        let (act, alpha, gain) = winogradActivation(e.activation)!
        if Self.debugPlans, !state.notes.contains("own winograd") {
            state.notes.insert("own winograd")
            FileHandle.standardError.write(Data("[dnnl] \(op) \(p.inChannels)→\(p.outChannels) on [\(s.n),\(s.c),\(s.h),\(s.w)] → enhance wino_4x3 (block \(b)\(bf16 ? ", bf16" : ""))\n".utf8))
        }
        // Epilogue operands in the kernel's forms: residual blocked like the output, channel scale plain N×C.
        let residual = try e.residual.map { $0.layout == blockedLayout ? $0 : try dense($0, blockedLayout, op: op) }
        let scale = try e.channelScale.map { try dense($0, .nchw, op: op) }
        let slopes: VectorState?
        if case let .prelu(v) = e.activation { slopes = try vectorState(v, op: op) } else { slopes = nil }
        let wbytes = enh_wino_weights_bytes(Int32(p.inChannels), Int32(p.outChannels))
        let u = try pool.allocate(bytes: bf16 ? wbytes / 2 : wbytes)
        let inScale = inputScale.map { UnsafePointer($0.basePointer) }
        // Every call (36·in·out floats written; GPEN's style scales them): timed as a row of its own.
        timed(op, "own winograd weight transform\(bf16 ? " bf16" : "") \(p.inChannels)→\(p.outChannels)", kind: .convolution) {
            if bf16 {
                enh_wino_transform_weights_bf16(weights.floats, inScale, Int32(p.inChannels), Int32(p.outChannels),
                                                u.pointer.assumingMemoryBound(to: UInt16.self), ompThreads)
            } else {
                enh_wino_transform_weights(weights.floats, inScale, Int32(p.inChannels), Int32(p.outChannels), u.floats, ompThreads)
            }
        }
        func batchStride(_ t: Tensor) -> Int { blockedLayout.paddedChannels(t.storageChannels) * t.shape.h * t.shape.w }
        var a = enh_wino_args()
        a.batch = Int32(s.n); a.in_channels = Int32(p.inChannels); a.out_channels = Int32(p.outChannels)
        a.height = Int32(s.h); a.width = Int32(s.w); a.block = Int32(b); a.reflect = reflect ? 1 : 0
        a.src = UnsafePointer(x.basePointer); a.src_batch_stride = batchStride(x)
        a.dst = out.basePointer; a.dst_batch_stride = batchStride(out)
        a.weights = UnsafePointer(u.floats)
        a.bias = state.bias.map { UnsafePointer($0.floats) }
        if let scale {
            a.channel_scale = UnsafePointer(scale.basePointer)
            a.channel_scale_batch_stride = scale.shape.n == 1 ? 0 : scale.shape.c
        }
        a.activation = act; a.alpha = alpha; a.gain = gain
        a.slopes = slopes.map { UnsafePointer($0.plain.basePointer) }
        a.output_scale = e.outputScale
        if let residual {
            a.residual = UnsafePointer(residual.basePointer); a.residual_batch_stride = batchStride(residual)
            a.residual_scale = e.residualScale
        }
        a.threads = ompThreads
        a.tiles_per_task = Self.winogradTiles > 0 ? Self.winogradTiles : enh_wino_default_tiles(a.in_channels, a.out_channels)
        a.bf16 = bf16 ? 1 : 0
        let matmul = try winogradMatmul(tiles: Int(a.tiles_per_task), in: p.inChannels, out: p.outChannels, bf16: bf16, op: op)
        a.engine = UnsafeMutableRawPointer(engine)
        a.matmul = matmul.map { UnsafeMutableRawPointer($0.primitive) }
        a.matmul_scratchpad_bytes = matmul?.scratchpadBytes ?? 0
        let scratch = try pool.allocate(bytes: enh_wino_scratch_bytes(&a))
        a.scratch = scratch.floats
        let callerMode = enhance_get_mxcsr()
        flushDenormalsOnThisThread()
        enhance_set_mxcsr(callerMode | 0x8040)
        let status = timed(op, "own winograd F(4,3)\(bf16 ? " bf16" : "") \(p.inChannels)→\(p.outChannels)", kind: .convolution) {
            enh_wino_conv3x3(&a)
        }
        enhance_set_mxcsr(callerMode)
        ownWinogradRuns += 1
        withExtendedLifetime((u, scratch, residual, scale, slopes, x, out, matmul, inputScale)) {}
        guard status == 0 else {
            throw TensorError.backendFailure(op: op, message: "Winograd convolution failed (status \(status))")
        }
    }
}
