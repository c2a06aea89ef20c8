import CWinograd
import CDNNL
import Foundation
import TensorCore

extension DNNLBackend {
    /// A cached primitive keyed by a description string.
    func cached(_ key: String, _ make: () throws -> Primitive) throws -> Primitive {
        if let p = opCache[key] { return p }
        let p = try make()
        opCache[key] = p
        return p
    }

    func mdKey(_ t: Tensor) -> String { "\(t.shape)\(t.layout)\(t.storageChannels)" }

    func make(_ desc: inout some Any, attr: dnnl_primitive_attr_t? = nil, op: String) throws -> Primitive {
        guard let p = try withUnsafePointer(to: &desc, { try Primitive.make(UnsafeRawPointer($0), attr: attr, engine: engine, op: op) }) else {
            throw TensorError.unsupported(op: op, message: "oneDNN has no implementation")
        }
        return p
    }

    /// Runs eltwise passes (algorithm, alpha, beta) over a dense copy of x.
    func eltwise(_ x: Tensor, _ passes: [(dnnl_alg_kind_t, Float, Float)], op: String) throws -> Tensor {
        try check(x, op)
        let out = try alloc(x.shape, x.layout, op: op)
        var src = x
        for (alg, alpha, beta) in passes {
            let key = "eltwise \(alg.rawValue) \(alpha) \(beta) \(mdKey(src)) → \(mdKey(out))"
            if src.isView { try reorder(src, into: out, op: op); src = out }
            let prim = try cached(key) {
                var desc = dnnl_eltwise_desc_t()
                var m = md(src)
                try dnnlCheck(dnnl_eltwise_forward_desc_init(&desc, dnnl_forward_inference, alg, &m, alpha, beta), op)
                return try make(&desc, op: op)
            }
            try execute(prim, [(DNNL_ARG_SRC, mem(src, op: op)), (DNNL_ARG_DST, mem(out, op: op))], op: op)
            src = out
        }
        if passes.isEmpty { try reorder(x, into: out, op: op) }
        return out
    }

    public func activation(_ x: Tensor, _ a: Activation) throws -> Tensor {
        try sync {
            let op = "activation"
            switch a {
            case .none: return try eltwise(x, [], op: op)
            case .relu: return try eltwise(x, [(dnnl_eltwise_relu, 0, 0)], op: op)
            case let .leakyReLU(s): return try eltwise(x, [(dnnl_eltwise_relu, s, 0)], op: op)
            case let .scaledLeakyReLU(s, g): return try eltwise(x, [(dnnl_eltwise_relu, s, 0), (dnnl_eltwise_linear, g, 0)], op: op)
            case .sigmoid: return try eltwise(x, [(dnnl_eltwise_logistic, 0, 0)], op: op)
            case let .prelu(slopes): return try prelu(x, slopes)
            }
        }
    }

    public func prepareVector(_ values: [Float]) throws -> PreparedVector {
        try sync {
            guard !values.isEmpty else { throw TensorError.invalidShape(op: "prepareVector", message: "empty vector") }
            let shape = TensorShape(n: 1, c: values.count, h: 1, w: 1)
            let buffer = try weightPool.allocate(bytes: blockedLayout.paddedChannels(values.count) * 4, zeroed: true)
            values.withUnsafeBufferPointer { buffer.floats.update(from: $0.baseAddress!, count: $0.count) }
            let state = VectorState(plain: Tensor(shape: shape, layout: .nchw, buffer: buffer, backendID: id),
                                    blocked: Tensor(shape: shape, layout: blockedLayout, buffer: buffer, backendID: id))
            return PreparedVector(values: values, backendID: id, payload: state)
        }
    }

    func vectorState(_ v: PreparedVector, op: String) throws -> VectorState {
        guard v.backendID == id, let state = v.payload as? VectorState else { throw TensorError.foreignTensor(op: op) }
        return state
    }

    /// PReLU as a pass of our own over the dense (plain or blocked) buffer: oneDNN 2.6 only has a reference PReLU
    /// for blocked layouts.
    /// `inPlace`: into x itself (a fresh convolution output nobody else holds yet).
    func prelu(_ x: Tensor, _ slopes: PreparedVector, inPlace: Bool = false) throws -> Tensor {
        let op = "prelu"
        try check(x, op)
        try Validate.vector(slopes, channels: x.shape.c, op: "activation prelu")
        let vector = try vectorState(slopes, op: op)
        let src = x.isView ? try dense(x, x.layout, op: op) : x
        let out = inPlace && src === x ? x : try alloc(x.shape, src.layout, op: op)
        let b = src.layout.channelBlock, cp = src.layout.paddedChannels(x.shape.c), hw = x.shape.h * x.shape.w
        // The prepared slopes are zero-padded to the backend's block, so `cp` of them can be read.
        let s = src.basePointer, d = out.basePointer, slope = vector.plain.basePointer
        // in C on OpenMP's threads (CWinograd/loops.c): the Swift loop this was ran element by element at 1.3 GB/s
        // (13 ms for realesr-animevideov3's first 64-channel map at 256²)
        timed(op, "C loop") {
            withExtendedLifetime(vector) {
                enh_prelu_planes(s, d, slope, x.shape.n, cp / b, hw, Int32(b), cp * hw, ompThreads)
            }
        }
        return out
    }

    /// Binary op x ∘ y (y may broadcast over H, W) with optional eltwise post-op (alg, alpha, scale).
    func binary(_ alg: dnnl_alg_kind_t, _ x: Tensor, _ yIn: Tensor, post: (dnnl_alg_kind_t, Float, Float)?, inPlace: Bool = false, op: String) throws -> Tensor {
        try check(x, op); try check(yIn, op)
        var y = yIn
        if y.shape.h * y.shape.w == 1 && x.layout.channelBlock > 1 && y.layout != x.layout {
            // oneDNN's JIT binary wants the broadcast operand in the same blocked layout (zero-padded); it is tiny.
            let padded = try alloc(y.shape, x.layout, op: op)
            try reorder(y, into: padded, op: op)
            y = padded
        }
        let out = inPlace ? x : try alloc(x.shape, x.layout, op: op)
        let key = "binary \(alg.rawValue) \(mdKey(x)) \(mdKey(y)) \(String(describing: post))"
        var attr: dnnl_primitive_attr_t?
        let prim = try cached(key) {
            var desc = dnnl_binary_desc_t()
            var a = md(x), b = md(y), d = md(out)
            try dnnlCheck(dnnl_binary_desc_init(&desc, alg, &a, &b, &d), op)
            if let (palg, alpha, scale) = post {
                try dnnlCheck(dnnl_primitive_attr_create(&attr), op)
                var po: dnnl_post_ops_t?
                try dnnlCheck(dnnl_post_ops_create(&po), op)
                try dnnlCheck(dnnl_post_ops_append_eltwise(po, scale, palg, alpha, 0), op)
                try dnnlCheck(dnnl_primitive_attr_set_post_ops(attr, po), op)
                dnnl_post_ops_destroy(po)
            }
            defer { if let attr { dnnl_primitive_attr_destroy(attr) } }
            return try make(&desc, attr: attr, op: op)
        }
        try execute(prim, [(DNNL_ARG_SRC_0, mem(x, op: op)), (DNNL_ARG_SRC_1, mem(y, op: op)), (DNNL_ARG_DST, mem(out, op: op))], op: op)
        return out
    }

    public func biasActivation(_ x: Tensor, bias: PreparedVector?, activation a: Activation) throws -> Tensor {
        try biasActivation(x, bias: bias, activation: a, inPlace: false)
    }

    /// In place on a dense tensor (one oneDNN binary with dst = src0); a view gets a new tensor.
    public func biasActivationReusing(_ x: Tensor, bias: PreparedVector?, activation a: Activation) throws -> Tensor {
        try biasActivation(x, bias: bias, activation: a, inPlace: !x.isView)
    }

    private func biasActivation(_ x: Tensor, bias: PreparedVector?, activation a: Activation, inPlace: Bool) throws -> Tensor {
        try sync {
            let op = "biasActivation"
            try check(x, op)
            guard let bias else { return try activation(x, a) }
            try Validate.vector(bias, channels: x.shape.c, op: "biasActivation bias")
            let vector = try vectorState(bias, op: op)
            let b = x.layout == blockedLayout ? vector.blocked : vector.plain
            switch a {
            case .relu: return try binary(dnnl_binary_add, x, b, post: (dnnl_eltwise_relu, 0, 1), inPlace: inPlace, op: op)
            case let .leakyReLU(s): return try binary(dnnl_binary_add, x, b, post: (dnnl_eltwise_relu, s, 1), inPlace: inPlace, op: op)
            case let .scaledLeakyReLU(s, g): return try binary(dnnl_binary_add, x, b, post: (dnnl_eltwise_relu, s, g), inPlace: inPlace, op: op)
            case .sigmoid: return try binary(dnnl_binary_add, x, b, post: (dnnl_eltwise_logistic, 0, 1), inPlace: inPlace, op: op)
            case .none: return try binary(dnnl_binary_add, x, b, post: nil, inPlace: inPlace, op: op)
            case .prelu: return try activation(binary(dnnl_binary_add, x, b, post: nil, inPlace: inPlace, op: op), a)
            }
        }
    }

    public func unary(_ x: Tensor, _ u: UnaryOp) throws -> Tensor {
        try sync {
            let op = "unary"
            switch u {
            case .square: return try eltwise(x, [(dnnl_eltwise_square, 0, 0)], op: op)
            case .sqrt: return try eltwise(x, [(dnnl_eltwise_sqrt, 0, 0)], op: op)
            case let .rsqrt(eps): return try eltwise(x, [(dnnl_eltwise_linear, 1, eps), (dnnl_eltwise_pow, 1, -0.5)], op: op)
            case .exp: return try eltwise(x, [(dnnl_eltwise_exp, 0, 0)], op: op)
            case .abs: return try eltwise(x, [(dnnl_eltwise_abs, 0, 0)], op: op)
            case .tanh: return try eltwise(x, [(dnnl_eltwise_tanh, 0, 0)], op: op)
            case let .clamp(lo, hi): return try eltwise(x, [(dnnl_eltwise_clip, lo, hi)], op: op)
            }
        }
    }

    public func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try sync { try eltwise(x, [(dnnl_eltwise_linear, scale, shift)], op: "affine") }
    }

    /// One reorder with an output scale: no temporary the size of x. (oneDNN takes its generic `simple:any` reorder
    /// for GPEN's scaled noise into its half of a concatenation, 15 calls, 14–19 ms of GPEN-512's 0.65 s; a C loop
    /// on OpenMP's threads took 19–21 ms, so the reorder stays.)
    public func affine(_ x: Tensor, scale: Float, into destination: Tensor) throws {
        try sync {
            let op = "affine"
            try check(x, op); try check(destination, op)
            guard x.shape == destination.shape else {
                throw TensorError.shapeMismatch(op: op, expected: x.shape.description, actual: destination.shape.description)
            }
            let prim = try cached("scaled reorder \(scale) \(mdKey(x)) → \(mdKey(destination))") {
                var attr: dnnl_primitive_attr_t?
                try dnnlCheck(dnnl_primitive_attr_create(&attr), op)
                defer { dnnl_primitive_attr_destroy(attr) }
                var s = scale
                try dnnlCheck(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &s), op)
                var src = md(x), dst = md(destination)
                var pd: dnnl_primitive_desc_t?
                try dnnlCheck(dnnl_reorder_primitive_desc_create(&pd, &src, engine, &dst, engine, attr), op + " reorder")
                return try Primitive(pd: pd!, op: op)
            }
            try execute(prim, [(DNNL_ARG_FROM, mem(x, op: op)), (DNNL_ARG_TO, mem(destination, op: op))], op: op)
        }
    }

    public func add(_ x: Tensor, _ y: Tensor, alpha: Float, beta: Float) throws -> Tensor {
        try sync {
            let op = "add"
            try check(x, op); try check(y, op)
            guard x.shape == y.shape else { throw TensorError.shapeMismatch(op: op, expected: x.shape.description, actual: y.shape.description) }
            let out = try alloc(x.shape, x.layout == .nchw && y.layout == .nchw ? .nchw : preferredLayout(x.shape), op: op)
            let prim = try cached("sum \(alpha) \(beta) \(mdKey(x)) \(mdKey(y)) \(mdKey(out))") {
                var mds = [md(x), md(y)]
                var d = md(out)
                var pd: dnnl_primitive_desc_t?
                try dnnlCheck(dnnl_sum_primitive_desc_create(&pd, &d, 2, [alpha, beta], &mds, nil, engine), op)
                return try Primitive(pd: pd!, op: op)
            }
            try execute(prim, [(DNNL_ARG_MULTIPLE_SRC, mem(x, op: op)), (DNNL_ARG_MULTIPLE_SRC + 1, mem(y, op: op)),
                               (DNNL_ARG_DST, mem(out, op: op))], op: op)
            return out
        }
    }

    public func multiply(_ x: Tensor, _ y: Tensor) throws -> Tensor {
        try sync {
            guard x.shape == y.shape else { throw TensorError.shapeMismatch(op: "multiply", expected: x.shape.description, actual: y.shape.description) }
            return try binary(dnnl_binary_mul, x, y, post: nil, op: "multiply")
        }
    }

    public func scaleChannels(_ x: Tensor, by s: Tensor) throws -> Tensor {
        try sync {
            let want = TensorShape(n: x.shape.n, c: x.shape.c, h: 1, w: 1)
            guard s.shape == want else { throw TensorError.shapeMismatch(op: "scaleChannels", expected: want.description, actual: s.shape.description) }
            return try binary(dnnl_binary_mul, x, s, post: nil, op: "scaleChannels")
        }
    }

    // MARK: shape ops

    public func concat(_ xs: [Tensor]) throws -> Tensor {
        try sync {
            let op = "concat"
            let out = try alloc(Validate.concat(xs) { t, o in try check(t, o) }, op: op)
            let b = out.layout.channelBlock
            var offsets: [Int] = []
            var c0 = 0
            for x in xs { offsets.append(c0); c0 += x.shape.c }
            if offsets.allSatisfy({ $0 % b == 0 }) {
                // Aligned: each input is reordered straight into its channel view (JIT reorders, no reference concat).
                for (x, o) in zip(xs, offsets) { try reorder(x, into: channelView(out, o..<(o + x.shape.c)), op: op) }
                return out
            }
            let prim = try cached("concat \(xs.map(mdKey)) \(mdKey(out))") {
                var mds = xs.map(md)
                var d = md(out)
                var pd: dnnl_primitive_desc_t?
                try dnnlCheck(dnnl_concat_primitive_desc_create(&pd, &d, Int32(xs.count), 1, &mds, nil, engine), op)
                return try Primitive(pd: pd!, op: op)
            }
            var args: [(Int32, Memory)] = [(DNNL_ARG_DST, try mem(out, op: op))]
            for (i, x) in xs.enumerated() { args.append((DNNL_ARG_MULTIPLE_SRC + Int32(i), try mem(x, op: op))) }
            try execute(prim, args, op: op)
            return out
        }
    }

    public func sliceChannels(_ x: Tensor, _ range: Range<Int>) throws -> Tensor {
        try sync {
            try check(x, "sliceChannels")
            guard range.lowerBound >= 0, range.upperBound <= x.shape.c, !range.isEmpty else {
                throw TensorError.invalidShape(op: "sliceChannels", message: "range \(range) outside C=\(x.shape.c)")
            }
            let b = x.layout.channelBlock
            let src = range.lowerBound % b != 0 ? try dense(x, .nchw, op: "sliceChannels") : x
            let view: Tensor
            if !(range.upperBound % src.layout.channelBlock == 0 || range.upperBound == src.shape.c) {
                view = try channelView(dense(src, .nchw, op: "sliceChannels"), range)
            } else {
                view = try channelView(src, range)
            }
            let out = try alloc(view.shape, op: "sliceChannels")
            try reorder(view, into: out, op: "sliceChannels")
            return out
        }
    }

    /// Runs a reference kernel (`body`, ops without a oneDNN primitive) on a plain NCHW copy of x; the result goes
    /// back to the layout its shape prefers.
    func viaPlain(_ x: Tensor, op: String, _ body: (ReferenceBackend, Tensor) throws -> Tensor) throws -> Tensor {
        try check(x, op)
        let plain = try dense(x, .nchw, op: op)
        let y = try timed(op, "reference loop (plain Swift)") { try body(host, plain) }
        return preferredLayout(y.shape) == .nchw ? y : try dense(y, preferredLayout(y.shape), op: op)
    }

    /// Pixel (un)shuffle as one oneDNN reorder between two strided 6-D views, N × C × r × r × H × W, of plain NCHW
    /// input and output (`srcStrides`, `dstStrides` per view dimension). The result stays plain when it has fewer
    /// channels than a block, as uploads of such tensors do: SRVGGNetCompact's shuffled image (3 channels at output
    /// size) was padded to a whole block (16 channels with AVX-512: 5.3× the bytes), and its residual add with the
    /// plain upsampled input then fell to oneDNN's reference sum. realesr-animevideov3 x4 at 256², 2 threads: the
    /// reference Swift shuffle 10.6 ms, the sum 16 ms.
    func shuffle(_ x: Tensor, to shape: TensorShape, view dims: [Int], srcStrides: [Int], dstStrides: [Int], op: String) throws -> Tensor {
        try check(x, op)
        let plain = try dense(x, .nchw, op: op)
        let out = try alloc(shape, .nchw, op: op)
        var src = dnnl_memory_desc_t(), dst = dnnl_memory_desc_t()
        try dnnlCheck(dnnl_memory_desc_init_by_strides(&src, 6, dims.map(Int64.init), dnnl_f32, srcStrides.map(Int64.init)), op + " view")
        try dnnlCheck(dnnl_memory_desc_init_by_strides(&dst, 6, dims.map(Int64.init), dnnl_f32, dstStrides.map(Int64.init)), op + " view")
        try reorder(src, plain.buffer.pointer + plain.byteOffset, dst, out.buffer.pointer, op: op)
        return shape.c < blockedLayout.channelBlock || preferredLayout(shape) == .nchw ? out : try dense(out, preferredLayout(shape), op: op)
    }

    public func pixelShuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        try sync {
            let (n, c, h, w) = (x.shape.n, x.shape.c, x.shape.h, x.shape.w)
            guard r > 0, c % (r * r) == 0 else { throw TensorError.invalidShape(op: "pixelShuffle", message: "C=\(c) not divisible by \(r)²") }
            let co = c / (r * r)
            // y[n, k, h·r + i, w·r + j] = x[n, k·r² + i·r + j, h, w]
            return try shuffle(x, to: TensorShape(n: n, c: co, h: h * r, w: w * r), view: [n, co, r, r, h, w],
                               srcStrides: [c * h * w, r * r * h * w, r * h * w, h * w, w, 1],
                               dstStrides: [c * h * w, r * r * h * w, w * r, 1, r * w * r, r], op: "pixelShuffle")
        }
    }

    public func pixelUnshuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        try sync {
            let (n, c, h, w) = (x.shape.n, x.shape.c, x.shape.h, x.shape.w)
            guard r > 0, h % r == 0, w % r == 0 else {
                throw TensorError.invalidShape(op: "pixelUnshuffle", message: "H×W \(h)×\(w) not divisible by \(r)")
            }
            let (ho, wo) = (h / r, w / r)
            // y[n, k·r² + i·r + j, h, w] = x[n, k, h·r + i, w·r + j]
            return try shuffle(x, to: TensorShape(n: n, c: c * r * r, h: ho, w: wo), view: [n, c, r, r, ho, wo],
                               srcStrides: [c * h * w, h * w, w, 1, r * w, r],
                               dstStrides: [c * h * w, r * r * ho * wo, r * ho * wo, ho * wo, wo, 1], op: "pixelUnshuffle")
        }
    }

    public func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor {
        try sync {
            let op = "upsampleNearest"
            try check(x, op)
            guard factor > 0 else { throw TensorError.invalidShape(op: op, message: "factor \(factor)") }
            let src = x.isView ? try dense(x, x.layout, op: op) : x
            let out = try alloc(TensorShape(n: x.shape.n, c: x.shape.c, h: x.shape.h * factor, w: x.shape.w * factor), src.layout, op: op)
            let prim = try cached("resample nearest \(mdKey(src)) \(mdKey(out))") {
                var desc = dnnl_resampling_desc_t()
                var s = md(src), d = md(out)
                try dnnlCheck(dnnl_resampling_forward_desc_init(&desc, dnnl_forward_inference, dnnl_resampling_nearest, nil, &s, &d), op)
                return try make(&desc, op: op)
            }
            try execute(prim, [(DNNL_ARG_SRC, mem(src, op: op)), (DNNL_ARG_DST, mem(out, op: op))], op: op)
            return out
        }
    }

    public func resizeNearest(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        try sync { try viaPlain(x, op: "resizeNearest") { try $0.resizeNearest($1, height: height, width: width) } }
    }

    /// upfirdn2d as a oneDNN depthwise convolution (up = 1; flipped separable kernel, asymmetric zero padding,
    /// stride = down) or a depthwise transposed convolution (down = 1; stride = up, padding k−1−pad0 / k−up−pad1).
    /// Other combinations (negative pads, up and down together) run the reference kernel on a plain copy.
    public func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int) throws -> Tensor {
        try upfirdn2d(x, taps: taps, up: up, down: down, pad0: pad0, pad1: pad1, destination: nil)
    }

    /// A FIR without upsampling is a depthwise convolution, which writes straight into `destination` (no copy).
    public func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int, into destination: Tensor) throws {
        let y = try upfirdn2d(x, taps: taps, up: up, down: down, pad0: pad0, pad1: pad1, destination: destination)
        if y !== destination { try copy(y, into: destination) }
    }

    private func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int, destination: Tensor?) throws -> Tensor {
        try sync {
            let op = "upfirdn2d"
            try check(x, op)
            let k = taps.count, c = x.shape.c
            let lenH = x.shape.h * up + pad0 + pad1 - k, lenW = x.shape.w * up + pad0 + pad1 - k
            let fast = k > 0 && up >= 1 && down >= 1 && (up == 1 || down == 1) && pad0 >= 0 && pad1 >= 0 && lenH >= 0 && lenW >= 0
                && (up == 1 || (k - 1 - pad0 >= 0 && k - up - pad1 >= 0))
            guard fast else {
                return try viaPlain(x, op: op) { try $0.upfirdn2d($1, taps: taps, up: up, down: down, pad0: pad0, pad1: pad1) }
            }
            let key = "fir \(c) \(taps) \(up) \(down) \(pad0) \(pad1)"
            if up == 1 {
                let conv: PreparedConv2d
                if let hit = firCache[key] as? PreparedConv2d { conv = hit } else {
                    var w = [Float](repeating: 0, count: c * k * k)
                    for ch in 0..<c { for i in 0..<k { for j in 0..<k { w[(ch * k + i) * k + j] = taps[k - 1 - i] * taps[k - 1 - j] } } }
                    conv = try prepareConv2d(weight: HostTensor(shape: [c, 1, k, k], data: w), bias: nil,
                                             params: Conv2dParams(inChannels: c, outChannels: c, kernelH: k, kernelW: k, strideH: down, strideW: down,
                                                                  padTop: pad0, padBottom: pad1, padLeft: pad0, padRight: pad1, groups: c))
                    firCache[key] = conv
                }
                return try conv2d(x, conv, epilogue: .identity, into: destination)
            }
            let deconv: PreparedConvTranspose2d
            if let hit = firCache[key] as? PreparedConvTranspose2d { deconv = hit } else {
                var w = [Float](repeating: 0, count: c * k * k)
                for ch in 0..<c { for i in 0..<k { for j in 0..<k { w[(ch * k + i) * k + j] = taps[i] * taps[j] } } }
                deconv = try prepareDepthwiseUpsample(weight: w, channels: c, kernel: k, stride: up,
                                                      padL: k - 1 - pad0, padR: k - up - pad1)
                firCache[key] = deconv
            }
            return try convTranspose2d(x, deconv, epilogue: .identity)
        }
    }

    /// Reflection padding done with row copies in the tensor's own (plain or blocked) layout.
    public func reflectPad(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int) throws -> Tensor {
        try sync {
            let op = "reflectPad"
            try check(x, op)
            let h = x.shape.h, w = x.shape.w
            guard top >= 0, bottom >= 0, left >= 0, right >= 0, top < h, bottom < h, left < w, right < w else {
                throw TensorError.invalidShape(op: op, message: "pads (\(top),\(bottom),\(left),\(right)) for \(x.shape)")
            }
            let src = x.isView ? try dense(x, x.layout, op: op) : x
            let oh = h + top + bottom, ow = w + left + right
            let out = try alloc(TensorShape(n: x.shape.n, c: x.shape.c, h: oh, w: ow), src.layout, op: op)
            let b = src.layout.channelBlock
            let planes = x.shape.n * src.layout.paddedChannels(x.shape.c) / b
            let s = src.basePointer, d = out.basePointer
            // C rows on OpenMP's threads: a Swift loop on Dispatch threads took 40.7 ms for ParseNet-512's 9 pads
            timed(op, "C rows") {
                enh_reflect_pad_planes(s, d, planes, h, w, Int32(b), top, bottom, left, right, ompThreads)
            }
            return out
        }
    }

    public func maxPool2d(_ x: Tensor, kernel k: Int, stride s: Int, padding p: Int) throws -> Tensor {
        try sync {
            let op = "maxPool2d"
            try check(x, op)
            let oh = (x.shape.h + 2 * p - k) / s + 1, ow = (x.shape.w + 2 * p - k) / s + 1
            guard k > 0, s > 0, p >= 0, 2 * p <= k, oh > 0, ow > 0 else {
                throw TensorError.invalidShape(op: op, message: "kernel \(k) stride \(s) padding \(p) for \(x.shape)")
            }
            let src = x.isView ? try dense(x, x.layout, op: op) : x
            let out = try alloc(TensorShape(n: x.shape.n, c: x.shape.c, h: oh, w: ow), src.layout, op: op)
            let prim = try cached("maxpool \(k) \(s) \(p) \(mdKey(src)) \(mdKey(out))") {
                var desc = dnnl_pooling_v2_desc_t()
                var sm = md(src), dm = md(out)
                let pad = [Int64(p), Int64(p)]
                try dnnlCheck(dnnl_pooling_v2_forward_desc_init(&desc, dnnl_forward_inference, dnnl_pooling_max, &sm, &dm,
                                                                [Int64(s), Int64(s)], [Int64(k), Int64(k)], [0, 0], pad, pad), op)
                return try make(&desc, op: op)
            }
            try execute(prim, [(DNNL_ARG_SRC, mem(src, op: op)), (DNNL_ARG_DST, mem(out, op: op))], op: op)
            return out
        }
    }

    // MARK: reductions

    public func softmax(_ x: Tensor, axis: Int) throws -> Tensor {
        try sync {
            let op = "softmax"
            try check(x, op)
            guard (1...3).contains(axis) else { throw TensorError.invalidShape(op: op, message: "axis \(axis) (use 1, 2 or 3)") }
            let src = try dense(x, .nchw, op: op)
            let out = try alloc(x.shape, .nchw, op: op)
            let prim = try cached("softmax \(axis) \(mdKey(src))") {
                var desc = dnnl_softmax_desc_t()
                var m = md(src)
                try dnnlCheck(dnnl_softmax_forward_desc_init(&desc, dnnl_forward_inference, &m, Int32(axis)), op)
                return try make(&desc, op: op)
            }
            try execute(prim, [(DNNL_ARG_SRC, mem(src, op: op)), (DNNL_ARG_DST, mem(out, op: op))], op: op)
            return out
        }
    }

    public func pixelNorm(_ x: Tensor, eps: Float) throws -> Tensor {
        try sync { try viaPlain(x, op: "pixelNorm") { try $0.pixelNorm($1, eps: eps) } }
    }

    public func meanOverChannels(_ x: Tensor) throws -> Tensor {
        try sync { try viaPlain(x, op: "meanOverChannels") { try $0.meanOverChannels($1) } }
    }
}
