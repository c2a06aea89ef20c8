import CDNNL
import Foundation
import TensorCore

// MARK: convolution: algorithm and layout choice per layer and input shape, with per-candidate fallback

struct ConvKey: Hashable {
    var srcLayout: TensorLayout = .nchw
    var n: Int, h: Int, w: Int
    var srcStorage: Int, dstStorage: Int
    var epilogue: EpilogueKey
    var fused: Bool
}

extension DNNLBackend {
    public func prepareConv2d(weight: HostTensor, bias: HostTensor?, params p: Conv2dParams) throws -> PreparedConv2d {
        try sync {
            try p.validate()
            try Validate.weights(weight, expected: p.weightShape, bias: bias, outChannels: p.outChannels, op: "prepareConv2d")
            let wmd = p.groups == 1 ? MD.make(p.weightShape, dnnl_oihw)
                : MD.make([p.groups, p.outChannels / p.groups, p.inChannels / p.groups, p.kernelH, p.kernelW], dnnl_goihw)
            let state = ConvState(weight: weight.data, weightMD: wmd, bias: try uploadBias(bias, op: "prepareConv2d"), biasHost: bias?.data)
            let prepared = PreparedConv2d(params: p, hasBias: bias != nil, backendID: id, payload: state)
            // Validate now: oneDNN must accept this convolution for a nominal input size. The weights themselves are
            // reordered once, on the first run, into the layout (and scale, see `convPlan`) that run's primitive wants,
            // so no unused copy stays in memory.
            let nominal = max(p.kernelH, p.kernelW, 32)
            let host = state.weight   // the throw-away plan below releases it
            guard try convPlan(state, p, n: 1, h: nominal, w: nominal, srcStorage: p.inChannels, dstStorage: p.outChannels,
                               epilogue: EpilogueKey(.identity), fused: true, validating: true) != nil else {
                throw TensorError.unsupported(op: "prepareConv2d", message: "oneDNN has no implementation for \(p)")
            }
            state.plans.removeAll()
            state.prepared.removeAll()
            state.weight = host
            return prepared
        }
    }

    func convWeightsAnyMD(_ p: Conv2dParams, _ type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
        p.groups == 1 ? MD.make(p.weightShape, dnnl_format_tag_any, type)
            : MD.make([p.groups, p.outChannels / p.groups, p.inChannels / p.groups, p.kernelH, p.kernelW], dnnl_format_tag_any, type)
    }

    func blockedMD(_ s: TensorShape, storage: Int, layout: TensorLayout? = nil, type: dnnl_data_type_t = dnnl_f32) -> dnnl_memory_desc_t {
        let layout = layout ?? blockedLayout
        let b = layout.channelBlock
        var m = MD.make(s.dims, b == 16 ? dnnl_nChw16c : dnnl_nChw8c, type)
        MD.setStrides(&m, [layout.paddedChannels(storage) * s.h * s.w, b * s.h * s.w, b * s.w, b])
        return m
    }

    func convPlan(_ state: ConvState, _ p: Conv2dParams, n: Int, h: Int, w: Int, srcStorage: Int, dstStorage: Int,
                  epilogue: EpilogueKey, fused: Bool, srcLayout: TensorLayout? = nil, validating: Bool = false) throws -> ConvPlan? {
        let srcLayout = srcLayout ?? blockedLayout
        let key = ConvKey(srcLayout: srcLayout, n: n, h: h, w: w, srcStorage: srcStorage, dstStorage: dstStorage, epilogue: epilogue, fused: fused)
        if let plan = state.plans[key] { return plan }
        if state.unavailable.contains(key) { return nil }
        let op = "conv2d \(p.inChannels)→\(p.outChannels) k\(p.kernelH)×\(p.kernelW) s\(p.strideH) g\(p.groups) on [\(n),\(p.inChannels),\(h),\(w)]"
        let (oh, ow) = p.outputSize(h: h, w: w)
        let srcShape = TensorShape(n: n, c: p.inChannels, h: h, w: w)
        // bf16: the convolution reads a dense bf16 copy of its input (made per call by `convolve`) and bf16 weights,
        // accumulates in f32 and writes f32 with the epilogue fused, so every other op keeps its f32 activations.
        let bf16 = options.precision == .bf16
        var src: dnnl_memory_desc_t
        if srcLayout == .nchw {
            src = MD.make(srcShape.dims, dnnl_nchw, bf16 ? dnnl_bf16 : dnnl_f32)
        } else {
            src = blockedMD(srcShape, storage: n == 1 || bf16 ? p.inChannels : srcStorage, type: bf16 ? dnnl_bf16 : dnnl_f32)
        }
        var dst = blockedMD(TensorShape(n: n, c: p.outChannels, h: oh, w: ow), storage: n == 1 ? p.outChannels : dstStorage)
        let bmd = MD.make([p.outChannels], dnnl_x)
        // Fewer input channels than a block (an RGB image's first layer): the direct kernel reads them plain, while
        // Winograd pads them to a block and transforms it (realesr-animevideov3's 3→64 at 256², AVX-512: 10.3 ms
        // as oneDNN's Winograd, 0.6 ms direct).
        let eligible = options.winograd && !bf16 && p.kernelH == 3 && p.kernelW == 3 && p.strideH == 1 && p.strideW == 1 && p.groups == 1
            && p.inChannels >= blockedLayout.channelBlock
        var algs = [dnnl_convolution_direct]
        if eligible { algs.insert(dnnl_convolution_winograd, at: 0) }
        var failure: (any Error)?
        for (i, alg) in algs.enumerated() {
            let name = alg == dnnl_convolution_winograd ? "winograd" : "direct"
            do {
                if let fault = injectedFault, fault(name) {
                    throw TensorError.backendFailure(op: op, message: "injected failure of \(name) (test)")
                }
                var wmd = convWeightsAnyMD(p, bf16 ? dnnl_bf16 : dnnl_f32)
                var desc = dnnl_convolution_desc_t()
                try withOptionalMD(state.bias == nil ? nil : bmd) { bp in
                    try dnnlCheck(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, &wmd, bp, &dst,
                                                                      [Int64(p.strideH), Int64(p.strideW)],
                                                                      [Int64(p.padTop), Int64(p.padLeft)],
                                                                      [Int64(p.padBottom), Int64(p.padRight)]), op)
                }
                // Without activation or channel scale, s·(W∗x + b) + r·R is computed as (sW)∗x + sb + r·R: the scale
                // goes into a scaled copy of the weights, leaving a single sum post-op that the JIT kernels accept.
                let fold = fused && !bf16 && epilogue.act == .none && epilogue.scaleBatch == nil && epilogue.outputScale != 1
                let (attr, postArgs) = fused ? try makeAttr(epilogue, channels: p.outChannels, rank: 4, op: op, outputScaleFolded: fold) : (nil, [])
                defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
                guard let prim = try withUnsafePointer(to: &desc, { try Primitive.make(UnsafeRawPointer($0), attr: attr, engine: engine, op: op) }) else { continue }
                if Self.debugPlans {
                    // stderr, never stdout (which carries --json output)
                    FileHandle.standardError.write(Data("[dnnl] \(op) alg \(name) fused \(fused) → \(prim.implementation)\n".utf8))
                }
                // A reference Winograd is far slower than the direct JIT kernel: never use it.
                if alg == dnnl_convolution_winograd && prim.implementation.hasPrefix("ref") { continue }
                let chosen = prim.md(dnnl_query_weights_md)
                // Validation (prepareConv2d) stops at the primitive: reordering the weights for a nominal size that is
                // then thrown away cost GPEN-512 a Winograd-format copy of every layer at load (AVX-512); the first
                // real run reorders them, falling back like any other failure here.
                if validating { return ConvPlan(primitive: prim, weights: nil, weightsMD: chosen, postArgs: postArgs, winograd: alg == dnnl_convolution_winograd) }
                let scale: Float = fold ? epilogue.outputScale : 1
                let plan = ConvPlan(primitive: prim, weights: try weights(state, chosen, scale: scale, op: op), weightsMD: chosen,
                                    postArgs: postArgs, winograd: alg == dnnl_convolution_winograd, bias: try bias(state, scale: scale))
                state.plans[key] = plan
                return plan
            } catch {
                // Any part of a candidate (descriptor, primitive and its scratchpad, weights reorder) that oneDNN cannot
                // build sends this layer to the next algorithm; the caller tries its next layout after the last one.
                failure = error
                let next = i + 1 < algs.count ? "trying direct" : "trying the next layout"
                note(state, key: "\(name) \(fused)", "\(op): \(name)\(fused ? " with fused epilogue" : "") failed (\(error)); \(next)")
            }
        }
        if let failure { throw failure }
        state.unavailable.insert(key)
        return nil
    }

    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        try convolve(x, conv, inputScale: nil, epilogue: epilogue, into: into)
    }

    /// A convolution of x scaled per input channel: on the own Winograd kernel with one image the scale goes into the
    /// weights it transforms on every call anyway (GPEN's modulated convs: no scaled copy of x); elsewhere x·s first.
    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, inputScale: Tensor, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        try convolve(x, conv, inputScale: inputScale, epilogue: epilogue, into: into)
    }

    private func convolve(_ input: Tensor, _ conv: PreparedConv2d, inputScale: Tensor?, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        try sync {
            let op = "conv2d"
            var x = input
            try check(x, op)
            if let s = inputScale { try check(s, op) }
            // The scale the own kernel may fold into its weights: one image's N×C×1×1 vector; anything else is applied first.
            var fold = inputScale
            if let s = inputScale, !(x.shape.n == 1 && s.shape == TensorShape(n: 1, c: x.shape.c, h: 1, w: 1)) {
                x = try scaleChannels(x, by: s)
                fold = nil
            }
            guard conv.backendID == id, let state = conv.payload as? ConvState else { throw TensorError.foreignTensor(op: op) }
            let p = conv.params
            let oshape = try Validate.conv2d(x.shape, p, op: op)
            try validateEpilogue(epilogue, out: oshape, op: op)
            if let into {
                try check(into, op)
                guard into.shape == oshape else { throw TensorError.shapeMismatch(op: op + " destination", expected: oshape.description, actual: into.shape.description) }
            }
            let directOut = into.map { $0.layout == blockedLayout } ?? true
            let out: Tensor
            if directOut, let into { out = into } else { out = try alloc(oshape, blockedLayout, op: op) }
            if try usesOwnWinograd(p, x, epilogue, state: state, out: out) {
                try ownWinogradConv(x, p, state, epilogue: epilogue, out: out, inputScale: fold.map { try dense($0, .nchw, op: op) }, op: op)
                if let into, out !== into {
                    try copy(out, into: into)
                    return into
                }
                return out
            }
            // A 1×1 layer takes the scale into a per-call copy of its (small) weights instead of a scaled copy of x
            // (GPEN's ToRGB at 512²: x·s was a 128 MiB copy beside its input, the generator's tensor peak).
            let scaleWeights = fold != nil && p.kernelH == 1 && p.kernelW == 1 && p.groups == 1 && options.precision == .fp32
                && epilogue.outputScale == 1
            if let s = fold, !scaleWeights { x = try scaleChannels(x, by: s) }
            let ekey = EpilogueKey(epilogue)
            // Candidates in order of preference; the first with a JIT (non-reference) implementation wins.
            // PReLU is never fused (oneDNN 2.6 JIT convs reject the prelu post-op): it runs as a separate pass.
            let canFuse = ekey.act != .prelu
            var candidates: [(TensorLayout, Bool)] = []
            if canFuse { candidates.append((blockedLayout, true)) }
            if p.inChannels % blockedLayout.channelBlock != 0 && canFuse { candidates.append((.nchw, true)) }
            candidates.append((blockedLayout, false))
            if p.inChannels % blockedLayout.channelBlock != 0 { candidates.append((.nchw, false)) }
            var chosen: (ConvPlan, TensorLayout, Bool)?
            var failure: (any Error)?
            for (layout, fusedCandidate) in candidates {
                let srcStorage = layout == x.layout ? x.storageChannels : p.inChannels
                let candidate: ConvPlan?
                do {
                    candidate = try convPlan(state, p, n: x.shape.n, h: x.shape.h, w: x.shape.w, srcStorage: srcStorage,
                                             dstStorage: out.storageChannels, epilogue: fusedCandidate ? ekey : EpilogueKey(.identity),
                                             fused: fusedCandidate, srcLayout: layout)
                } catch {
                    failure = error   // noted by convPlan; the next candidate may still work
                    continue
                }
                guard let plan = candidate else { continue }
                if chosen == nil { chosen = (plan, layout, fusedCandidate) }
                if !plan.primitive.implementation.hasPrefix("ref") { chosen = (plan, layout, fusedCandidate); break }
            }
            guard let (plan, srcLayout, fused) = chosen else {
                if let failure { throw failure }
                throw TensorError.unsupported(op: op, message: "oneDNN has no implementation for \(p) on \(x.shape)")
            }
            var callWeights: DeviceBuffer?
            if scaleWeights, let s = fold { callWeights = try scaledWeights(state, p, by: dense(s, .nchw, op: op), into: plan.weightsMD, op: op) }
            let srcMemory: Memory
            var converted: DeviceBuffer?, source: Tensor?
            if options.precision == .bf16 {
                // f32 activation (any layout, views included) → the dense bf16 input the primitive was built for
                let want = plan.primitive.md(dnnl_query_src_md)
                let buffer = try pool.allocate(bytes: MD.size(want))
                try reorder(md(x), x.buffer.pointer + x.byteOffset, want, buffer.pointer, op: op + " bf16 input")
                srcMemory = try mem(want, buffer, op: op)
                converted = buffer
            } else {
                let usable = x.layout == srcLayout && (srcLayout != .nchw || !x.isView || x.shape.n == 1)
                source = usable ? x : try dense(x, srcLayout, op: op)
                srcMemory = try mem(source!, op: op)
            }
            try run(plan, src: srcMemory, out: out, dst: mem(out, op: op), bias: plan.bias, channels: p.outChannels,
                    fused: fused, epilogue: epilogue, rank: 4, weights: callWeights, op: op)
            withExtendedLifetime((converted, source, callWeights)) {}
            var result = out
            if !fused { result = try applyEpilogueUnfused(out, epilogue, op: op) }
            if let into, result !== into {
                try copy(result, into: into)
                return into
            }
            return result
        }
    }

    /// The layer's weights with input channel i times s[i] (s: plain 1×C×1×1), in `md`, in a buffer of the activation
    /// pool that lives for one call.
    private func scaledWeights(_ state: ConvState, _ p: Conv2dParams, by s: Tensor, into md: dnnl_memory_desc_t, op: String) throws -> DeviceBuffer {
        let oihw = try ownWinogradWeights(state, op: op)
        let kk = p.kernelH * p.kernelW, ci = p.inChannels, count = p.outChannels * ci * kk
        let scaled = try pool.allocate(bytes: count * 4)
        let w = oihw.floats, f = s.basePointer, out = scaled.floats
        for o in 0..<p.outChannels {
            for i in 0..<ci {
                let base = (o * ci + i) * kk
                for t in 0..<kk { out[base + t] = w[base + t] * f[i] }
            }
        }
        let target = try pool.allocate(bytes: MD.size(md), zeroed: true)
        try reorder(state.weightMD, scaled.pointer, md, target.pointer, op: op + " scaled weights")
        return target
    }

    /// Which implementation oneDNN picked for this conv on an input of the given size (diagnostics, benchmarks).
    public func convImplementation(_ conv: PreparedConv2d, n: Int = 1, h: Int, w: Int) throws -> String {
        try sync {
            guard let state = conv.payload as? ConvState else { throw TensorError.foreignTensor(op: "convImplementation") }
            let plan = try convPlan(state, conv.params, n: n, h: h, w: w, srcStorage: conv.params.inChannels,
                                    dstStorage: conv.params.outChannels, epilogue: EpilogueKey(.identity), fused: true)
            return plan?.primitive.implementation ?? "none"
        }
    }
}
