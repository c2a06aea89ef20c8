import CDNNL
import Foundation
import TensorCore

extension DNNLBackend {
    // MARK: transposed convolution

    public func prepareConvTranspose2d(weight: HostTensor, bias: HostTensor?, params p: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        try prepareTransposed(weight, oihw: false, bias: bias, p)
    }

    /// From OIHW weights: the phases are cut straight from them (no IOHW copy; each phase reads them in order).
    public func prepareConvTranspose2d(oihwWeight weight: HostTensor, bias: HostTensor?, params p: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        try prepareTransposed(weight, oihw: true, bias: bias, p)
    }

    /// A transposed convolution from PyTorch's IOHW weight [I, O/groups, k, k] or, with `oihw`, from OIHW [O, I, k, k]
    /// (groups 1).
    private func prepareTransposed(_ weight: HostTensor, oihw: Bool, bias: HostTensor?, _ p: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        try sync {
            let op = "prepareConvTranspose2d"
            try p.validate()
            if oihw, p.groups != 1 { throw TensorError.unsupported(op: op, message: "OIHW weights with groups \(p.groups)") }
            let expected = oihw ? [p.outChannels, p.inChannels, p.kernel, p.kernel] : p.weightShape
            try Validate.weights(weight, expected: expected, bias: bias, outChannels: p.outChannels, op: op)
            guard p.outputPadding <= p.padding else {
                throw TensorError.unsupported(op: op, message: "outputPadding \(p.outputPadding) > padding \(p.padding)")
            }
            let g = p.groups
            // oneDNN's deconvolution weights have (g)oihw dims: PyTorch's IOHW is read through the iohw / giohw tags,
            // OIHW is the plain oihw tag.
            let wmd = g == 1 ? MD.make([p.outChannels, p.inChannels, p.kernel, p.kernel], oihw ? dnnl_oihw : dnnl_iohw)
                : MD.make([g, p.outChannels / g, p.inChannels / g, p.kernel, p.kernel], dnnl_giohw)
            let state = ConvState(weight: weight.data, weightMD: wmd, bias: try uploadBias(bias, op: op))
            state.padding = (p.padding, p.padding - p.outputPadding)
            if let phases = try makeTransposedPhases(weight.data, oihw: oihw, bias: bias, p, padL: state.padding.0, padR: state.padding.1) {
                state.phases = phases
                state.weight = nil   // the phases hold the taps
            }
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
            let (padL, padR) = state.padding
            let oshape = try Validate.convolution(x.shape, inChannels: p.inChannels, outChannels: p.outChannels,
                                                  outputSize: ((x.shape.h - 1) * p.stride + p.kernel - padL - padR,
                                                               (x.shape.w - 1) * p.stride + p.kernel - padL - padR),
                                                  describing: p, op: op)
            try validateEpilogue(epilogue, out: oshape, op: op)
            if let phases = state.phases {
                return try runTransposedPhases(x, phases, stride: p.stride, epilogue: epilogue, oshape: oshape, op: op)
            }
            let src = try dense(x, blockedLayout, op: op)
            let out = try alloc(oshape, blockedLayout, op: op)
            let ekey = EpilogueKey(epilogue)
            let key = ConvKey(n: x.shape.n, h: x.shape.h, w: x.shape.w, srcStorage: src.storageChannels,
                              dstStorage: out.storageChannels, epilogue: ekey, fused: true)
            let opd = "\(op) \(p.inChannels)→\(p.outChannels) k\(p.kernel) s\(p.stride) on \(x.shape)"
            let plan = try fusedPlan(state, key, channels: p.outChannels, rank: 4, op: opd, dnnl_deconvolution_desc_t()) { desc in
                let g = p.groups
                var smd = md(src), dmd = md(out)
                var wmd = g == 1 ? MD.make([p.outChannels, p.inChannels, p.kernel, p.kernel], dnnl_format_tag_any)
                    : MD.make([g, p.outChannels / g, p.inChannels / g, p.kernel, p.kernel], dnnl_format_tag_any)
                try withOptionalMD(state.bias == nil ? nil : MD.make([p.outChannels], dnnl_x)) { bp in
                    try dnnlCheck(dnnl_deconvolution_forward_desc_init(&desc, dnnl_forward_inference, dnnl_deconvolution_direct,
                                                                        &smd, &wmd, bp, &dmd,
                                                                        [Int64(p.stride), Int64(p.stride)],
                                                                        [Int64(padL), Int64(padL)], [Int64(padR), Int64(padR)]), opd)
                }
            }
            try run(plan, src: mem(src, op: op), out: out, dst: mem(out, op: op), bias: state.bias, channels: p.outChannels, fused: true, epilogue: epilogue, rank: 4, op: op)
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
            let key = ConvKey(n: n, h: 1, w: 1, srcStorage: layer.inFeatures, dstStorage: o, epilogue: EpilogueKey(epilogue), fused: true)
            let plan = try fusedPlan(state, key, channels: o, rank: 2, op: op, dnnl_inner_product_desc_t()) { desc in
                var smd = MD.make([n, layer.inFeatures], dnnl_ab), dmd = MD.make([n, o], dnnl_ab)
                var wmd = MD.make([o, layer.inFeatures], dnnl_format_tag_any)
                try withOptionalMD(state.bias == nil ? nil : MD.make([o], dnnl_x)) { bp in
                    try dnnlCheck(dnnl_inner_product_forward_desc_init(&desc, dnnl_forward_inference, &smd, &wmd, bp, &dmd), op)
                }
            }
            try run(plan, src: Memory(MD.make([n, layer.inFeatures], dnnl_ab), src.buffer.pointer + src.byteOffset, engine: engine, op: op),
                    out: out, dst: Memory(MD.make([n, o], dnnl_ab), out.buffer.pointer, engine: engine, op: op),
                    bias: state.bias, channels: o, fused: true, epilogue: epilogue, rank: 2, op: op)
            return out
        }
    }

    // MARK: plan, then run (convolution, transposed convolution, linear)

    /// The plan cached in `state` for `key`, or a new one: `describe` fills the operation descriptor, the epilogue
    /// becomes post-op attributes, and the weights are reordered into the layout the primitive asks for.
    func fusedPlan<Descriptor>(_ state: ConvState, _ key: ConvKey, channels: Int, rank: Int, op: String,
                               _ empty: Descriptor, describe: (inout Descriptor) throws -> Void) throws -> ConvPlan {
        if let plan = state.plans[key] { return plan }
        var desc = empty
        try describe(&desc)
        let (attr, postArgs) = try makeAttr(key.epilogue, channels: channels, rank: rank, op: op)
        defer { dnnl_primitive_attr_destroy(attr) }
        guard let prim = try withUnsafePointer(to: &desc, { try Primitive.make(UnsafeRawPointer($0), attr: attr, engine: engine, op: op) }) else {
            throw TensorError.unsupported(op: op, message: "oneDNN has no implementation")
        }
        let chosen = prim.md(dnnl_query_weights_md)
        let plan = ConvPlan(primitive: prim, weights: try weights(state, chosen, op: op), weightsMD: chosen, postArgs: postArgs, winograd: false)
        state.plans[key] = plan
        return plan
    }

    /// Runs a plan from `src` into `out` (described by `dst`) with `channels` output channels: with a fused epilogue
    /// the residual is copied into the output first (the sum post-op adds to it) and the runtime post-op arguments
    /// are passed.
    func run(_ plan: ConvPlan, src: Memory, out: Tensor, dst: Memory, bias: DeviceBuffer?, channels: Int, fused: Bool,
             epilogue: Epilogue, rank: Int, weights override: DeviceBuffer? = nil, op: String) throws {
        guard let weights = override ?? plan.weights else {
            throw TensorError.backendFailure(op: op, message: "internal: a validation plan was run")
        }
        if fused, let r = epilogue.residual { try copy(r, into: out) }
        var args: [(Int32, Memory)] = [
            (DNNL_ARG_SRC, src),
            (DNNL_ARG_WEIGHTS, try mem(plan.weightsMD, weights, op: op)),
            (DNNL_ARG_DST, dst),
        ]
        if let bias { args.append((DNNL_ARG_BIAS, try mem(MD.make([channels], dnnl_x), bias, op: op))) }
        var keep: [DeviceBuffer] = []
        if fused {
            let (extra, k) = try postOpMemories(plan.postArgs, epilogue, rank: rank, op: op)
            args += extra; keep = k
        }
        try execute(plan.primitive, args, op: op)
        withExtendedLifetime(keep) {}
    }
}
