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
                let plain = try vectorState(slopes, op: op).plain
                let m = rank == 4 ? MD.make([1, slopes.count, 1, 1], dnnl_nchw) : MD.make([1, slopes.count], dnnl_ab)
                out.append((arg, try Memory(m, plain.buffer.pointer, engine: engine, op: op)))
                keep.append(plain.buffer)
            }
        }
        return (out, keep)
    }

    func validateEpilogue(_ e: Epilogue, out: TensorShape, op: String) throws {
        try Validate.epilogue(e, out: out, op: op) { t, op in try check(t, op) }
    }

    /// Applies an epilogue with separate primitives (used when the fused form is not implemented).
    func applyEpilogueUnfused(_ t: Tensor, _ e: Epilogue, op: String) throws -> Tensor {
        var y = t
        if let s = e.channelScale { y = try scaleChannels(y, by: s) }
        if case let .prelu(slopes) = e.activation {
            y = try prelu(y, slopes, inPlace: true)   // y: this convolution's own output
        } else if e.activation != .none {
            y = try activation(y, e.activation)
        }
        if e.outputScale != 1 { y = try affine(y, scale: e.outputScale, shift: 0) }
        if let r = e.residual { y = try add(y, r, alpha: 1, beta: e.residualScale) }
        return y
    }
}
