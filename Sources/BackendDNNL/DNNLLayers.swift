import CDNNL
import Foundation
import TensorCore

/// Hashable summary of an epilogue: everything baked into a primitive's attributes.
struct EpilogueKey: Hashable {
    enum Act: Hashable { case none, relu, leaky(Float), scaled(Float, Float), prelu, sigmoid }
    var scaleBatch: Int?      // N of the channelScale tensor, nil when absent
    var act: Act
    var outputScale: Float
    var residualScale: Float?  // nil when no residual

    init(_ e: Epilogue) {
        scaleBatch = e.channelScale?.shape.n
        switch e.activation {
        case .none: act = .none
        case .relu: act = .relu
        case let .leakyReLU(s): act = .leaky(s)
        case let .scaledLeakyReLU(s, g): act = .scaled(s, g)
        case .prelu: act = .prelu
        case .sigmoid: act = .sigmoid
        }
        outputScale = e.outputScale
        residualScale = e.residual == nil ? nil : e.residualScale
    }
}

/// Runtime arguments a set of post-ops needs.
enum PostOpArg { case channelScale(Int32), preluSlopes(Int32) }

extension DNNLBackend {
    /// Builds a primitive attribute with post-ops for `key`. `rank` is 4 (conv) or 2 (linear); `c` the output channels.
    func makeAttr(_ key: EpilogueKey, channels c: Int, rank: Int, op: String, outputScaleFolded: Bool = false) throws -> (dnnl_primitive_attr_t, [PostOpArg]) {
        var attr: dnnl_primitive_attr_t?
        try dnnlCheck(dnnl_primitive_attr_create(&attr), op + " attr")
        var po: dnnl_post_ops_t?
        try dnnlCheck(dnnl_post_ops_create(&po), op + " post-ops")
        defer { dnnl_post_ops_destroy(po) }
        var args: [PostOpArg] = []
        var index: Int32 = 0
        func argID(_ i: Int32, _ kind: Int32) -> Int32 { DNNL_ARG_ATTR_MULTIPLE_POST_OP_BASE * (i + 1) | kind }
        if let n = key.scaleBatch {
            var src1 = rank == 4 ? MD.make([n, c, 1, 1], dnnl_nchw) : MD.make([n, c], dnnl_ab)
            try dnnlCheck(dnnl_post_ops_append_binary(po, dnnl_binary_mul, &src1), op + " post-op binary")
            args.append(.channelScale(argID(index, DNNL_ARG_SRC_1))); index += 1
        }
        var pendingScale = outputScaleFolded ? 1 : key.outputScale
        if let rs = key.residualScale, key.act == .none, key.scaleBatch == nil, pendingScale != 0 {
            // y = s·acc + r·R = s·(acc + (r/s)·R): a leading sum keeps oneDNN's JIT kernels (they want sum first).
            try dnnlCheck(dnnl_post_ops_append_sum(po, rs / pendingScale), op + " post-op sum")
            if pendingScale != 1 {
                try dnnlCheck(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_linear, pendingScale, 0), op + " post-op scale")
            }
            try dnnlCheck(dnnl_primitive_attr_set_post_ops(attr, po), op + " set post-ops")
            return (attr!, args)
        }
        switch key.act {
        case .none: break
        case .relu:
            try dnnlCheck(dnnl_post_ops_append_eltwise(po, pendingScale, dnnl_eltwise_relu, 0, 0), op + " post-op relu")
            pendingScale = 1; index += 1
        case let .leaky(s):
            try dnnlCheck(dnnl_post_ops_append_eltwise(po, pendingScale, dnnl_eltwise_relu, s, 0), op + " post-op leaky relu")
            pendingScale = 1; index += 1
        case let .scaled(s, g):
            try dnnlCheck(dnnl_post_ops_append_eltwise(po, pendingScale * g, dnnl_eltwise_relu, s, 0), op + " post-op scaled leaky relu")
            pendingScale = 1; index += 1
        case .sigmoid:
            try dnnlCheck(dnnl_post_ops_append_eltwise(po, pendingScale, dnnl_eltwise_logistic, 0, 0), op + " post-op sigmoid")
            pendingScale = 1; index += 1
        case .prelu:
            try dnnlCheck(dnnl_post_ops_append_prelu(po, 1 << 1), op + " post-op prelu")
            args.append(.preluSlopes(argID(index, DNNL_ARG_WEIGHTS))); index += 1
        }
        if pendingScale != 1 {
            try dnnlCheck(dnnl_post_ops_append_eltwise(po, 1, dnnl_eltwise_linear, pendingScale, 0), op + " post-op scale")
            index += 1
        }
        if let rs = key.residualScale {
            try dnnlCheck(dnnl_post_ops_append_sum(po, rs), op + " post-op sum")
            index += 1
        }
        try dnnlCheck(dnnl_primitive_attr_set_post_ops(attr, po), op + " set post-ops")
        return (attr!, args)
    }

    /// Memory objects for the runtime post-op arguments.
    func postOpMemories(_ args: [PostOpArg], _ e: Epilogue, rank: Int, op: String) throws -> ([(Int32, Memory)], [DeviceBuffer]) {
        var out: [(Int32, Memory)] = []
        var keep: [DeviceBuffer] = []
        for a in args {
            switch a {
            case let .channelScale(arg):
                let s = e.channelScale!
                let plain = try dense(s, .nchw, op: op)
                let m = rank == 4 ? MD.make(plain.shape.dims, dnnl_nchw) : MD.make([plain.shape.n, plain.shape.c], dnnl_ab)
                out.append((arg, try Memory(m, plain.buffer.pointer + plain.byteOffset, engine: engine, op: op)))
                keep.append(plain.buffer)
            case let .preluSlopes(arg):
                guard case let .prelu(slopes) = e.activation else { continue }
                let buf = try pool.allocate(bytes: slopes.count * 4)
                slopes.withUnsafeBufferPointer { buf.floats.update(from: $0.baseAddress!, count: $0.count) }
                let m = rank == 4 ? MD.make([1, slopes.count, 1, 1], dnnl_nchw) : MD.make([1, slopes.count], dnnl_ab)
                out.append((arg, try Memory(m, buf.pointer, engine: engine, op: op)))
                keep.append(buf)
            }
        }
        return (out, keep)
    }

    func validateEpilogue(_ e: Epilogue, out: TensorShape, op: String) throws {
        if let s = e.channelScale {
            try check(s, op)
            let want = TensorShape(n: out.n, c: out.c, h: 1, w: 1)
            guard s.shape == want else { throw TensorError.shapeMismatch(op: op + " channelScale", expected: want.description, actual: s.shape.description) }
        }
        if let r = e.residual {
            try check(r, op)
            guard r.shape == out else { throw TensorError.shapeMismatch(op: op + " residual", expected: out.description, actual: r.shape.description) }
        }
        if case let .prelu(slopes) = e.activation, slopes.count != out.c {
            throw TensorError.shapeMismatch(op: op + " prelu", expected: "[\(out.c)]", actual: "[\(slopes.count)]")
        }
    }

    /// Applies an epilogue with separate primitives (used when the fused form is not implemented).
    func applyEpilogueUnfused(_ t: Tensor, _ e: Epilogue, op: String) throws -> Tensor {
        var y = t
        if let s = e.channelScale { y = try scaleChannels(y, by: s) }
        if e.activation != .none { y = try activation(y, e.activation) }
        if e.outputScale != 1 { y = try affine(y, scale: e.outputScale, shift: 0) }
        if let r = e.residual { y = try add(y, r, alpha: 1, beta: e.residualScale) }
        return y
    }
}

// MARK: convolution

/// Prepared state of a (transposed) convolution: host weights, bias, reordered weights per layout, primitives per shape.
/// The host copy is dropped once the first run has reordered the weights; a later layout is reordered from that copy.
final class ConvState: @unchecked Sendable {
    /// Host weights (in `weightMD`) until the first run's reordered copy exists.
    var weight: [Float]?
    let weightMD: dnnl_memory_desc_t      // the host layout (OIHW / GOIHW / IOHW ...)
    let bias: DeviceBuffer?
    let biasHost: [Float]?
    var prepared: [(md: dnnl_memory_desc_t, scale: Float, buffer: DeviceBuffer)] = []
    var scaledBias: [Float: DeviceBuffer] = [:]
    /// Transposed convolutions: (left/top, right/bottom) padding.
    var padding: (Int, Int) = (0, 0)
    var plans: [ConvKey: ConvPlan] = [:]
    /// Fallbacks already reported for this layer (each is said once).
    var notes: Set<String> = []
    /// Plans oneDNN has no implementation for (asked once, not on every call).
    var unavailable: Set<ConvKey> = []

    init(weight: [Float], weightMD: dnnl_memory_desc_t, bias: DeviceBuffer?, biasHost: [Float]? = nil) {
        self.weight = weight; self.weightMD = weightMD; self.bias = bias; self.biasHost = biasHost
    }
}

struct ConvKey: Hashable {
    var srcLayout: TensorLayout = .nchw
    var n: Int, h: Int, w: Int
    var srcStorage: Int, dstStorage: Int
    var epilogue: EpilogueKey
    var fused: Bool
}

final class ConvPlan {
    let primitive: Primitive
    let weights: DeviceBuffer
    let weightsMD: dnnl_memory_desc_t
    let postArgs: [PostOpArg]
    let winograd: Bool
    /// Bias to pass (a pre-scaled copy when the output scale is folded into the weights).
    var bias: DeviceBuffer?
    init(primitive: Primitive, weights: DeviceBuffer, weightsMD: dnnl_memory_desc_t, postArgs: [PostOpArg], winograd: Bool,
         bias: DeviceBuffer? = nil) {
        self.primitive = primitive; self.weights = weights; self.weightsMD = weightsMD; self.postArgs = postArgs
        self.winograd = winograd; self.bias = bias
    }
}

extension DNNLBackend {
    func uploadWeights(_ data: [Float], _ md: dnnl_memory_desc_t, into target: dnnl_memory_desc_t, op: String) throws -> DeviceBuffer {
        let buf = try weightPool.allocate(bytes: MD.size(target), zeroed: true)
        try data.withUnsafeBufferPointer { p in
            try reorder(md, UnsafeMutableRawPointer(mutating: p.baseAddress!), target, buf.pointer, op: op + " weights")
        }
        return buf
    }

    func uploadBias(_ bias: HostTensor?, op: String) throws -> DeviceBuffer? {
        guard let bias else { return nil }
        let buf = try weightPool.allocate(bytes: bias.count * 4)
        bias.data.withUnsafeBufferPointer { buf.floats.update(from: $0.baseAddress!, count: $0.count) }
        return buf
    }

    /// The weights of `state` times `scale` in layout `md`, reordered once and cached. The first copy comes from the
    /// host weights, which are then released (a GPEN-512 restore held them twice: 370 MiB more RSS); later layouts
    /// or scales are reordered and rescaled from the first copy.
    func weights(_ state: ConvState, _ md: dnnl_memory_desc_t, scale: Float = 1, op: String) throws -> DeviceBuffer {
        if let hit = state.prepared.first(where: { $0.scale == scale && MD.equal($0.md, md) }) { return hit.buffer }
        let buf: DeviceBuffer
        if let host = state.weight {
            buf = try uploadWeights(scale == 1 ? host : host.map { $0 * scale }, state.weightMD, into: md, op: op)
        } else {
            // The host copy goes only once a copy exists that oneDNN can reorder from (see below).
            guard let first = state.prepared.first(where: { $0.scale != 0 && MD.isBlocked($0.md) }) else {
                throw TensorError.backendFailure(op: op + " weights", message: "no reorderable copy of the weights is left")
            }
            buf = try weightPool.allocate(bytes: MD.size(md), zeroed: true)
            try reorder(first.md, first.buffer.pointer, md, buf.pointer, op: op + " weights")
            if scale != first.scale {
                let f = scale / first.scale, v = buf.floats
                for i in 0..<(buf.byteCount / 4) { v[i] *= f }
            }
        }
        state.prepared.append((md, scale, buf))
        // oneDNN reorders out of plain and blocked formats only: a Winograd-format copy (format kind `wino`) cannot be
        // turned into any other layout, so the host copy stays until a blocked one exists (on AVX-512 CPUs a tile or
        // image size that picks direct convolution after a Winograd one needed it: "weights reorder … unimplemented").
        if scale != 0 && MD.isBlocked(md) { state.weight = nil }
        return buf
    }

    /// The bias times `scale` (cached).
    func bias(_ state: ConvState, scale: Float) throws -> DeviceBuffer? {
        guard scale != 1, let host = state.biasHost else { return state.bias }
        if let b = state.scaledBias[scale] { return b }
        let buf = try weightPool.allocate(bytes: host.count * 4)
        for (i, v) in host.enumerated() { buf.floats[i] = v * scale }
        state.scaledBias[scale] = buf
        return buf
    }

    public func prepareConv2d(weight: HostTensor, bias: HostTensor?, params p: Conv2dParams) throws -> PreparedConv2d {
        try sync {
            try p.validate()
            guard weight.shape == p.weightShape else {
                throw TensorError.shapeMismatch(op: "prepareConv2d weight", expected: "\(p.weightShape)", actual: "\(weight.shape)")
            }
            if let bias, bias.count != p.outChannels {
                throw TensorError.shapeMismatch(op: "prepareConv2d bias", expected: "[\(p.outChannels)]", actual: "\(bias.shape)")
            }
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
                               epilogue: EpilogueKey(.identity), fused: true) != nil else {
                throw TensorError.unsupported(op: "prepareConv2d", message: "oneDNN has no implementation for \(p)")
            }
            state.plans.removeAll()
            state.prepared.removeAll()
            state.weight = host
            return prepared
        }
    }

    func convWeightsAnyMD(_ p: Conv2dParams) -> dnnl_memory_desc_t {
        p.groups == 1 ? MD.make(p.weightShape, dnnl_format_tag_any)
            : MD.make([p.groups, p.outChannels / p.groups, p.inChannels / p.groups, p.kernelH, p.kernelW], dnnl_format_tag_any)
    }

    func blockedMD(_ s: TensorShape, storage: Int, layout: TensorLayout? = nil) -> dnnl_memory_desc_t {
        let layout = layout ?? blockedLayout
        let b = layout.channelBlock
        var m = MD.make(s.dims, b == 16 ? dnnl_nChw16c : dnnl_nChw8c)
        MD.setStrides(&m, [layout.paddedChannels(storage) * s.h * s.w, b * s.h * s.w, b * s.w, b])
        return m
    }

    func convPlan(_ state: ConvState, _ p: Conv2dParams, n: Int, h: Int, w: Int, srcStorage: Int, dstStorage: Int,
                  epilogue: EpilogueKey, fused: Bool, srcLayout: TensorLayout? = nil) throws -> ConvPlan? {
        let srcLayout = srcLayout ?? blockedLayout
        let key = ConvKey(srcLayout: srcLayout, n: n, h: h, w: w, srcStorage: srcStorage, dstStorage: dstStorage, epilogue: epilogue, fused: fused)
        if let plan = state.plans[key] { return plan }
        if state.unavailable.contains(key) { return nil }
        let op = "conv2d \(p.inChannels)→\(p.outChannels) k\(p.kernelH)×\(p.kernelW) s\(p.strideH) g\(p.groups) on [\(n),\(p.inChannels),\(h),\(w)]"
        let (oh, ow) = p.outputSize(h: h, w: w)
        let srcShape = TensorShape(n: n, c: p.inChannels, h: h, w: w)
        var src: dnnl_memory_desc_t
        if srcLayout == .nchw {
            src = MD.make(srcShape.dims, dnnl_nchw)
        } else {
            src = blockedMD(srcShape, storage: n == 1 ? p.inChannels : srcStorage)
        }
        var dst = blockedMD(TensorShape(n: n, c: p.outChannels, h: oh, w: ow), storage: n == 1 ? p.outChannels : dstStorage)
        let bmd = MD.make([p.outChannels], dnnl_x)
        let eligible = options.winograd && p.kernelH == 3 && p.kernelW == 3 && p.strideH == 1 && p.strideW == 1 && p.groups == 1
        var algs = [dnnl_convolution_direct]
        if eligible { algs.insert(dnnl_convolution_winograd, at: 0) }
        var failure: (any Error)?
        for (i, alg) in algs.enumerated() {
            let name = alg == dnnl_convolution_winograd ? "winograd" : "direct"
            do {
                if let fault = injectedFault, fault(name) {
                    throw TensorError.backendFailure(op: op, message: "injected failure of \(name) (test)")
                }
                var wmd = convWeightsAnyMD(p)
                var desc = dnnl_convolution_desc_t()
                try withOptionalMD(state.bias == nil ? nil : bmd) { bp in
                    try dnnlCheck(dnnl_convolution_forward_desc_init(&desc, dnnl_forward_inference, alg, &src, &wmd, bp, &dst,
                                                                      [Int64(p.strideH), Int64(p.strideW)],
                                                                      [Int64(p.padTop), Int64(p.padLeft)],
                                                                      [Int64(p.padBottom), Int64(p.padRight)]), op)
                }
                // Without activation or channel scale, s·(W∗x + b) + r·R is computed as (sW)∗x + sb + r·R: the scale
                // goes into a scaled copy of the weights, leaving a single sum post-op that the JIT kernels accept.
                let fold = fused && epilogue.act == .none && epilogue.scaleBatch == nil && epilogue.outputScale != 1
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
        try sync {
            let op = "conv2d"
            try check(x, op)
            guard conv.backendID == id, let state = conv.payload as? ConvState else { throw TensorError.foreignTensor(op: op) }
            let p = conv.params
            guard x.shape.c == p.inChannels else {
                throw TensorError.shapeMismatch(op: op, expected: "C=\(p.inChannels)", actual: x.shape.description)
            }
            let (oh, ow) = p.outputSize(h: x.shape.h, w: x.shape.w)
            guard oh > 0, ow > 0 else { throw TensorError.invalidShape(op: op, message: "input \(x.shape) too small for \(p)") }
            let oshape = TensorShape(n: x.shape.n, c: p.outChannels, h: oh, w: ow)
            try validateEpilogue(epilogue, out: oshape, op: op)
            if let into {
                try check(into, op)
                guard into.shape == oshape else { throw TensorError.shapeMismatch(op: op + " destination", expected: oshape.description, actual: into.shape.description) }
            }
            let directOut = into.map { $0.layout == blockedLayout } ?? true
            let out: Tensor
            if directOut, let into { out = into } else { out = try alloc(oshape, blockedLayout, op: op) }
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
            let usable = x.layout == srcLayout && (srcLayout != .nchw || !x.isView || x.shape.n == 1)
            let src = usable ? x : try dense(x, srcLayout, op: op)
            if fused, let r = epilogue.residual { try copy(r, into: out) }
            var args: [(Int32, Memory)] = [
                (DNNL_ARG_SRC, try mem(src, op: op)),
                (DNNL_ARG_WEIGHTS, try mem(plan.weightsMD, plan.weights, op: op)),
                (DNNL_ARG_DST, try mem(out, op: op)),
            ]
            if let b = plan.bias { args.append((DNNL_ARG_BIAS, try mem(MD.make([p.outChannels], dnnl_x), b, op: op))) }
            var keep: [DeviceBuffer] = []
            if fused {
                let (extra, k) = try postOpMemories(plan.postArgs, epilogue, rank: 4, op: op)
                args += extra; keep = k
            }
            try execute(plan.primitive, args, op: op)
            withExtendedLifetime(keep) {}
            var result = out
            if !fused { result = try applyEpilogueUnfused(out, epilogue, op: op) }
            if let into, result !== into {
                try copy(result, into: into)
                return into
            }
            return result
        }
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

    // MARK: transposed convolution

    public func prepareConvTranspose2d(weight: HostTensor, bias: HostTensor?, params p: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        try sync {
            try p.validate()
            guard weight.shape == p.weightShape else {
                throw TensorError.shapeMismatch(op: "prepareConvTranspose2d weight", expected: "\(p.weightShape)", actual: "\(weight.shape)")
            }
            if let bias, bias.count != p.outChannels {
                throw TensorError.shapeMismatch(op: "prepareConvTranspose2d bias", expected: "[\(p.outChannels)]", actual: "\(bias.shape)")
            }
            guard p.outputPadding <= p.padding else {
                throw TensorError.unsupported(op: "prepareConvTranspose2d", message: "outputPadding \(p.outputPadding) > padding \(p.padding)")
            }
            let g = p.groups
            // PyTorch IOHW [I, O/g, k, k] read as oneDNN (g)oihw dims via the iohw / giohw tags.
            let wmd = g == 1 ? MD.make([p.outChannels, p.inChannels, p.kernel, p.kernel], dnnl_iohw)
                : MD.make([g, p.outChannels / g, p.inChannels / g, p.kernel, p.kernel], dnnl_giohw)
            let state = ConvState(weight: weight.data, weightMD: wmd, bias: try uploadBias(bias, op: "prepareConvTranspose2d"))
            state.padding = (p.padding, p.padding - p.outputPadding)
            return PreparedConvTranspose2d(params: p, hasBias: bias != nil, backendID: id, payload: state)
        }
    }

    /// A depthwise transposed convolution with explicit left/right padding (the FIR upsampler of upfirdn2d).
    /// Weight layout [C, k, k] (one kernel per channel, scatter form, no flip).
    func prepareDepthwiseUpsample(weight: [Float], channels c: Int, kernel k: Int, stride: Int, padL: Int, padR: Int) throws -> PreparedConvTranspose2d {
        let p = ConvTranspose2dParams(inChannels: c, outChannels: c, kernel: k, stride: stride, padding: 0, groups: c)
        let state = ConvState(weight: weight, weightMD: MD.make([c, 1, 1, k, k], dnnl_giohw), bias: nil)
        state.padding = (padL, padR)
        return PreparedConvTranspose2d(params: p, hasBias: false, backendID: id, payload: state)
    }

    public func convTranspose2d(_ x: Tensor, _ conv: PreparedConvTranspose2d, epilogue: Epilogue) throws -> Tensor {
        try sync {
            let op = "convTranspose2d"
            try check(x, op)
            guard conv.backendID == id, let state = conv.payload as? ConvState else { throw TensorError.foreignTensor(op: op) }
            let p = conv.params
            guard x.shape.c == p.inChannels else {
                throw TensorError.shapeMismatch(op: op, expected: "C=\(p.inChannels)", actual: x.shape.description)
            }
            let (padL, padR) = state.padding
            let oh = (x.shape.h - 1) * p.stride + p.kernel - padL - padR, ow = (x.shape.w - 1) * p.stride + p.kernel - padL - padR
            guard oh > 0, ow > 0 else { throw TensorError.invalidShape(op: op, message: "input \(x.shape) too small for \(p)") }
            let oshape = TensorShape(n: x.shape.n, c: p.outChannels, h: oh, w: ow)
            try validateEpilogue(epilogue, out: oshape, op: op)
            let src = try dense(x, blockedLayout, op: op)
            let out = try alloc(oshape, blockedLayout, op: op)
            let ekey = EpilogueKey(epilogue)
            let key = ConvKey(n: x.shape.n, h: x.shape.h, w: x.shape.w, srcStorage: src.storageChannels,
                              dstStorage: out.storageChannels, epilogue: ekey, fused: true)
            var plan = state.plans[key]
            if plan == nil {
                let g = p.groups
                var smd = md(src), dmd = md(out)
                var wmd = g == 1 ? MD.make([p.outChannels, p.inChannels, p.kernel, p.kernel], dnnl_format_tag_any)
                    : MD.make([g, p.outChannels / g, p.inChannels / g, p.kernel, p.kernel], dnnl_format_tag_any)
                let bmd = MD.make([p.outChannels], dnnl_x)
                var desc = dnnl_deconvolution_desc_t()
                let opd = "\(op) \(p.inChannels)→\(p.outChannels) k\(p.kernel) s\(p.stride) on \(x.shape)"
                try withOptionalMD(state.bias == nil ? nil : bmd) { bp in
                    try dnnlCheck(dnnl_deconvolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_deconvolution_direct,
                                                                        &smd, &wmd, bp, &dmd,
                                                                        [Int64(p.stride), Int64(p.stride)],
                                                                        [Int64(padL), Int64(padL)], [Int64(padR), Int64(padR)]), opd)
                }
                let (attr, postArgs) = try makeAttr(ekey, channels: p.outChannels, rank: 4, op: opd)
                defer { dnnl_primitive_attr_destroy(attr) }
                guard let prim = try withUnsafePointer(to: &desc, { try Primitive.make(UnsafeRawPointer($0), attr: attr, engine: engine, op: opd) }) else {
                    throw TensorError.unsupported(op: opd, message: "oneDNN has no implementation")
                }
                let chosen = prim.md(dnnl_query_weights_md)
                plan = ConvPlan(primitive: prim, weights: try weights(state, chosen, op: opd), weightsMD: chosen, postArgs: postArgs, winograd: false)
                state.plans[key] = plan
            }
            let pl = plan!
            if let r = epilogue.residual { try copy(r, into: out) }
            var args: [(Int32, Memory)] = [
                (DNNL_ARG_SRC, try mem(src, op: op)),
                (DNNL_ARG_WEIGHTS, try mem(pl.weightsMD, pl.weights, op: op)),
                (DNNL_ARG_DST, try mem(out, op: op)),
            ]
            if let b = state.bias { args.append((DNNL_ARG_BIAS, try mem(MD.make([p.outChannels], dnnl_x), b, op: op))) }
            let (extra, keep) = try postOpMemories(pl.postArgs, epilogue, rank: 4, op: op)
            try execute(pl.primitive, args + extra, op: op)
            withExtendedLifetime(keep) {}
            return out
        }
    }

    // MARK: linear

    public func prepareLinear(weight: HostTensor, bias: HostTensor?) throws -> PreparedLinear {
        try sync {
            guard weight.shape.count == 2, weight.shape[0] > 0, weight.shape[1] > 0 else {
                throw TensorError.invalidShape(op: "prepareLinear", message: "weight must be [out, in], got \(weight.shape)")
            }
            if let bias, bias.count != weight.shape[0] {
                throw TensorError.shapeMismatch(op: "prepareLinear bias", expected: "[\(weight.shape[0])]", actual: "\(bias.shape)")
            }
            let state = ConvState(weight: weight.data, weightMD: MD.make(weight.shape, dnnl_ab), bias: try uploadBias(bias, op: "prepareLinear"))
            return PreparedLinear(inFeatures: weight.shape[1], outFeatures: weight.shape[0], hasBias: bias != nil, backendID: id, payload: state)
        }
    }

    public func linear(_ x: Tensor, _ layer: PreparedLinear, epilogue: Epilogue) throws -> Tensor {
        try sync {
            let op = "linear \(layer.inFeatures)→\(layer.outFeatures)"
            try check(x, op)
            guard layer.backendID == id, let state = layer.payload as? ConvState else { throw TensorError.foreignTensor(op: op) }
            guard x.shape.c * x.shape.h * x.shape.w == layer.inFeatures else {
                throw TensorError.shapeMismatch(op: op, expected: "C·H·W=\(layer.inFeatures)", actual: x.shape.description)
            }
            let n = x.shape.n, o = layer.outFeatures
            let oshape = TensorShape(n: n, c: o, h: 1, w: 1)
            try validateEpilogue(epilogue, out: oshape, op: op)
            let src = try dense(x, .nchw, op: op)   // (c, h, w) flattening order
            let out = try alloc(oshape, .nchw, op: op)
            let ekey = EpilogueKey(epilogue)
            let key = ConvKey(n: n, h: 1, w: 1, srcStorage: layer.inFeatures, dstStorage: o, epilogue: ekey, fused: true)
            var plan = state.plans[key]
            if plan == nil {
                var smd = MD.make([n, layer.inFeatures], dnnl_ab), dmd = MD.make([n, o], dnnl_ab)
                var wmd = MD.make([o, layer.inFeatures], dnnl_format_tag_any)
                let bmd = MD.make([o], dnnl_x)
                var desc = dnnl_inner_product_desc_t()
                try withOptionalMD(state.bias == nil ? nil : bmd) { bp in
                    try dnnlCheck(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &smd, &wmd, bp, &dmd), op)
                }
                let (attr, postArgs) = try makeAttr(ekey, channels: o, rank: 2, op: op)
                defer { dnnl_primitive_attr_destroy(attr) }
                guard let prim = try withUnsafePointer(to: &desc, { try Primitive.make(UnsafeRawPointer($0), attr: attr, engine: engine, op: op) }) else {
                    throw TensorError.unsupported(op: op, message: "oneDNN has no implementation")
                }
                let chosen = prim.md(dnnl_query_weights_md)
                plan = ConvPlan(primitive: prim, weights: try weights(state, chosen, op: op), weightsMD: chosen, postArgs: postArgs, winograd: false)
                state.plans[key] = plan
            }
            let pl = plan!
            if let r = epilogue.residual { try copy(r, into: out) }
            var args: [(Int32, Memory)] = [
                (DNNL_ARG_SRC, try Memory(MD.make([n, layer.inFeatures], dnnl_ab), src.buffer.pointer + src.byteOffset, engine: engine, op: op)),
                (DNNL_ARG_WEIGHTS, try mem(pl.weightsMD, pl.weights, op: op)),
                (DNNL_ARG_DST, try Memory(MD.make([n, o], dnnl_ab), out.buffer.pointer, engine: engine, op: op)),
            ]
            if let b = state.bias { args.append((DNNL_ARG_BIAS, try mem(MD.make([o], dnnl_x), b, op: op))) }
            let (extra, keep) = try postOpMemories(pl.postArgs, epilogue, rank: 2, op: op)
            try execute(pl.primitive, args + extra, op: op)
            withExtendedLifetime(keep) {}
            return out
        }
    }
}
