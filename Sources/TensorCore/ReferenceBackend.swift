import Foundation

/// The plain-Swift backend: dense NCHW float32, straightforward loops. It is the test oracle for other backends
/// (correct, not fast). Thread-safe: it keeps no state besides the buffer pool.
public final class ReferenceBackend: Backend, @unchecked Sendable {
    /// The pool every tensor of this backend is allocated from.
    public let pool: BufferPool
    private let identity: ObjectIdentifier?

    /// Model constants (`uploadConstant`), kept apart like a backend's weights.
    let constants: BufferPool

    /// Creates a reference backend.
    public init() { pool = BufferPool(); constants = BufferPool(countsInScopes: false); identity = nil }

    /// A reference backend that allocates from another backend's pools and stamps tensors with that backend's
    /// identity, so the other backend can run reference kernels on its own plain NCHW tensors.
    package init(sharing pool: BufferPool, constants: BufferPool? = nil, identity: ObjectIdentifier) {
        self.pool = pool
        self.constants = constants ?? BufferPool(allocator: pool.allocator, countsInScopes: false)
        self.identity = identity
    }

    public var name: String { "reference" }
    public var channelViewAlignment: Int { 1 }
    public var memoryStats: MemoryStats {
        var s = pool.memoryStats
        s.weightBytes = constants.memoryStats.liveBytes
        return s
    }
    public func resetPeak() { pool.resetPeak() }

    public func trim() { pool.trim() }

    private var id: ObjectIdentifier { identity ?? ObjectIdentifier(self) }

    // MARK: plumbing

    /// A new dense NCHW tensor (zeroed) from `pool` (the activation pool unless given).
    func make(_ shape: TensorShape, op: String, pool: BufferPool? = nil) throws -> Tensor {
        guard shape.isValid else { throw TensorError.invalidShape(op: op, message: "output shape \(shape)") }
        let buffer = try (pool ?? self.pool).allocate(bytes: shape.count * 4, zeroed: true)
        return Tensor(shape: shape, layout: .nchw, buffer: buffer, backendID: id)
    }

    func check(_ t: Tensor, _ op: String) throws {
        guard t.backendID == id, t.layout == .nchw else { throw TensorError.foreignTensor(op: op) }
    }

    /// Pointer to plane (n, c) of an NCHW tensor (respecting views).
    @inline(__always) func plane(_ t: Tensor, _ n: Int, _ c: Int) -> UnsafeMutablePointer<Float> {
        t.basePointer + (n * t.storageChannels + c) * t.shape.h * t.shape.w
    }

    func requireSame(_ a: TensorShape, _ b: TensorShape, _ op: String) throws { try Validate.same(a, b, op) }

    /// Applies `f` to every element of x into a new tensor; f gets (value, n, c).
    func map(_ x: Tensor, _ op: String, _ f: (Float, Int, Int) -> Float) throws -> Tensor {
        try check(x, op)
        let out = try make(x.shape, op: op)
        let hw = x.shape.h * x.shape.w
        for n in 0..<x.shape.n { for c in 0..<x.shape.c {
            let s = plane(x, n, c), d = plane(out, n, c)
            for i in 0..<hw { d[i] = f(s[i], n, c) }
        } }
        return out
    }

    // MARK: memory

    public func upload(_ host: HostTensor) throws -> Tensor { try upload(host, pool: pool, op: "upload") }

    public func uploadConstant(_ host: HostTensor) throws -> Tensor { try upload(host, pool: constants, op: "uploadConstant") }

    private func upload(_ host: HostTensor, pool: BufferPool, op: String) throws -> Tensor {
        let t = try make(host.tensorShape(), op: op, pool: pool)
        host.data.withUnsafeBufferPointer { src in t.basePointer.update(from: src.baseAddress!, count: src.count) }
        return t
    }

    public func download(_ t: Tensor) throws -> HostTensor {
        try check(t, "download")
        let hw = t.shape.h * t.shape.w
        var data = [Float](repeating: 0, count: t.shape.count)
        data.withUnsafeMutableBufferPointer { d in
            for n in 0..<t.shape.n { for c in 0..<t.shape.c {
                (d.baseAddress! + (n * t.shape.c + c) * hw).update(from: plane(t, n, c), count: hw)
            } }
        }
        return try HostTensor(shape: t.shape.dims, data: data)
    }

    public func zeros(_ shape: TensorShape) throws -> Tensor { try make(shape, op: "zeros") }

    public func empty(_ shape: TensorShape) throws -> Tensor { try make(shape, op: "empty") }

    public func channelView(_ t: Tensor, _ range: Range<Int>) throws -> Tensor {
        try check(t, "channelView")
        guard range.lowerBound >= 0, range.upperBound <= t.shape.c, !range.isEmpty else {
            throw TensorError.invalidShape(op: "channelView", message: "range \(range) outside C=\(t.shape.c)")
        }
        var s = t.shape; s.c = range.count
        return Tensor(shape: s, layout: .nchw, buffer: t.buffer,
                      byteOffset: t.byteOffset + range.lowerBound * t.shape.h * t.shape.w * 4,
                      storageChannels: t.storageChannels, backendID: id)
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        try check(source, "copy"); try check(destination, "copy")
        try requireSame(destination.shape, source.shape, "copy")
        let hw = source.shape.h * source.shape.w
        for n in 0..<source.shape.n { for c in 0..<source.shape.c {
            plane(destination, n, c).update(from: plane(source, n, c), count: hw)
        } }
    }

    public func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, atRow: Int) throws {
        try check(source, "copyRows"); try check(destination, "copyRows")
        try Validate.rowCopy(source.shape, rows, destination.shape, atRow)
        let w = source.shape.w
        for n in 0..<source.shape.n { for c in 0..<source.shape.c {
            (plane(destination, n, c) + atRow * w).update(from: plane(source, n, c) + rows.lowerBound * w, count: rows.count * w)
        } }
    }

    // MARK: convolution

    final class ConvPayload {
        let weight: [Float]
        let bias: [Float]?
        init(weight: [Float], bias: [Float]?) { self.weight = weight; self.bias = bias }
    }

    public func prepareConv2d(weight: HostTensor, bias: HostTensor?, params: Conv2dParams) throws -> PreparedConv2d {
        try params.validate()
        try Validate.weights(weight, expected: params.weightShape, bias: bias, outChannels: params.outChannels, op: "prepareConv2d")
        return PreparedConv2d(params: params, hasBias: bias != nil, backendID: id,
                              payload: ConvPayload(weight: weight.data, bias: bias?.data))
    }

    /// Applies the epilogue to output plane (n, c) in place.
    func applyEpilogue(_ e: Epilogue, plane d: UnsafeMutablePointer<Float>, count: Int, n: Int, c: Int, op: String) {
        let cs: Float = e.channelScale.map { plane($0, n, c)[0] } ?? 1
        let r = e.residual.map { plane($0, n, c) }
        for i in 0..<count {
            var v = d[i] * cs
            v = e.activation.apply(v, channel: c) * e.outputScale
            if let r { v += e.residualScale * r[i] }
            d[i] = v
        }
    }

    func checkEpilogue(_ e: Epilogue, out: TensorShape, op: String) throws {
        try Validate.epilogue(e, out: out, op: op) { t, op in try check(t, op) }
    }

    func output(_ shape: TensorShape, into: Tensor?, op: String) throws -> Tensor {
        guard let into else { return try make(shape, op: op) }
        try check(into, op)
        try requireSame(shape, into.shape, op + " destination")
        return into
    }

    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        let op = "conv2d"
        try check(x, op)
        guard conv.backendID == id, let pl = conv.payload as? ConvPayload else { throw TensorError.foreignTensor(op: op) }
        let p = conv.params
        let oshape = try Validate.conv2d(x.shape, p, op: op)
        let (oh, ow) = (oshape.h, oshape.w)
        try checkEpilogue(epilogue, out: oshape, op: op)
        let out = try output(oshape, into: into, op: op)
        let icg = p.inChannels / p.groups, ocg = p.outChannels / p.groups
        let ih = x.shape.h, iw = x.shape.w
        var acc = [Float](repeating: 0, count: oh * ow)
        pl.weight.withUnsafeBufferPointer { wp in
            for n in 0..<x.shape.n {
                for oc in 0..<p.outChannels {
                    let g = oc / ocg
                    let b = pl.bias?[oc] ?? 0
                    for i in 0..<acc.count { acc[i] = b }
                    acc.withUnsafeMutableBufferPointer { a in
                        for icl in 0..<icg {
                            let src = plane(x, n, g * icg + icl)
                            for ky in 0..<p.kernelH { for kx in 0..<p.kernelW {
                                let wv = wp[((oc * icg + icl) * p.kernelH + ky) * p.kernelW + kx]
                                for oy in 0..<oh {
                                    let iy = oy * p.strideH - p.padTop + ky
                                    if iy < 0 || iy >= ih { continue }
                                    let row = src + iy * iw
                                    let arow = a.baseAddress! + oy * ow
                                    for ox in 0..<ow {
                                        let ix = ox * p.strideW - p.padLeft + kx
                                        if ix >= 0 && ix < iw { arow[ox] += wv * row[ix] }
                                    }
                                }
                            } }
                        }
                        let d = plane(out, n, oc)
                        d.update(from: a.baseAddress!, count: a.count)
                        applyEpilogue(epilogue, plane: d, count: a.count, n: n, c: oc, op: op)
                    }
                }
            }
        }
        return out
    }

    public func prepareConvTranspose2d(weight: HostTensor, bias: HostTensor?, params: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        try params.validate()
        try Validate.weights(weight, expected: params.weightShape, bias: bias, outChannels: params.outChannels, op: "prepareConvTranspose2d")
        return PreparedConvTranspose2d(params: params, hasBias: bias != nil, backendID: id,
                                       payload: ConvPayload(weight: weight.data, bias: bias?.data))
    }

    public func convTranspose2d(_ x: Tensor, _ conv: PreparedConvTranspose2d, epilogue: Epilogue) throws -> Tensor {
        let op = "convTranspose2d"
        try check(x, op)
        guard conv.backendID == id, let pl = conv.payload as? ConvPayload else { throw TensorError.foreignTensor(op: op) }
        let p = conv.params
        let (th, tw) = p.outputSize(h: x.shape.h, w: x.shape.w)
        let oshape = try Validate.convolution(x.shape, inChannels: p.inChannels, outChannels: p.outChannels, outputSize: (th, tw), describing: p, op: op)
        let (oh, ow) = (oshape.h, oshape.w)
        try checkEpilogue(epilogue, out: oshape, op: op)
        let out = try make(oshape, op: op)
        let icg = p.inChannels / p.groups, ocg = p.outChannels / p.groups
        let ih = x.shape.h, iw = x.shape.w, k = p.kernel
        for n in 0..<x.shape.n {
            for oc in 0..<p.outChannels {
                let g = oc / ocg, ocl = oc % ocg
                let d = plane(out, n, oc)
                let b = pl.bias?[oc] ?? 0
                for i in 0..<(oh * ow) { d[i] = b }
                for icl in 0..<icg {
                    let ic = g * icg + icl
                    let src = plane(x, n, ic)
                    for ky in 0..<k { for kx in 0..<k {
                        let wv = pl.weight[((ic * ocg + ocl) * k + ky) * k + kx]
                        for iy in 0..<ih {
                            let oy = iy * p.stride - p.padding + ky
                            if oy < 0 || oy >= oh { continue }
                            for ix in 0..<iw {
                                let ox = ix * p.stride - p.padding + kx
                                if ox >= 0 && ox < ow { d[oy * ow + ox] += wv * src[iy * iw + ix] }
                            }
                        }
                    } }
                }
                applyEpilogue(epilogue, plane: d, count: oh * ow, n: n, c: oc, op: op)
            }
        }
        return out
    }

    public func prepareLinear(weight: HostTensor, bias: HostTensor?) throws -> PreparedLinear {
        guard weight.shape.count == 2, weight.shape[0] > 0, weight.shape[1] > 0 else {
            throw TensorError.invalidShape(op: "prepareLinear", message: "weight must be [out, in], got \(weight.shape)")
        }
        if let bias, bias.count != weight.shape[0] {
            throw TensorError.shapeMismatch(op: "prepareLinear bias", expected: "[\(weight.shape[0])]", actual: "\(bias.shape)")
        }
        return PreparedLinear(inFeatures: weight.shape[1], outFeatures: weight.shape[0], hasBias: bias != nil,
                              backendID: id, payload: ConvPayload(weight: weight.data, bias: bias?.data))
    }

    public func linear(_ x: Tensor, _ layer: PreparedLinear, epilogue: Epilogue) throws -> Tensor {
        let op = "linear"
        try check(x, op)
        guard layer.backendID == id, let pl = layer.payload as? ConvPayload else { throw TensorError.foreignTensor(op: op) }
        let hw = x.shape.h * x.shape.w
        guard x.shape.c * hw == layer.inFeatures else {
            throw TensorError.shapeMismatch(op: op, expected: "C·H·W=\(layer.inFeatures)", actual: x.shape.description)
        }
        let oshape = TensorShape(n: x.shape.n, c: layer.outFeatures, h: 1, w: 1)
        try checkEpilogue(epilogue, out: oshape, op: op)
        let out = try make(oshape, op: op)
        for n in 0..<x.shape.n {
            for o in 0..<layer.outFeatures {
                var s: Float = pl.bias?[o] ?? 0
                for c in 0..<x.shape.c {
                    let src = plane(x, n, c)
                    let wrow = o * layer.inFeatures + c * hw
                    for i in 0..<hw { s += pl.weight[wrow + i] * src[i] }
                }
                let d = plane(out, n, o)
                d[0] = s
                applyEpilogue(epilogue, plane: d, count: 1, n: n, c: o, op: op)
            }
        }
        return out
    }

    // MARK: element-wise

    public func activation(_ x: Tensor, _ a: Activation) throws -> Tensor {
        try Validate.activation(a, channels: x.shape.c, op: "activation")
        return try map(x, "activation") { v, _, c in a.apply(v, channel: c) }
    }

    /// The vector keeps only its values (any backend's vector can be read here: the reference backend runs other
    /// backends' unsupported ops).
    public func prepareVector(_ values: [Float]) throws -> PreparedVector { PreparedVector(values: values, backendID: id) }

    public func biasActivation(_ x: Tensor, bias: PreparedVector?, activation a: Activation) throws -> Tensor {
        if let bias { try Validate.vector(bias, channels: x.shape.c, op: "biasActivation bias") }
        try Validate.activation(a, channels: x.shape.c, op: "biasActivation")
        let b = bias?.values
        return try map(x, "biasActivation") { v, _, c in a.apply(v + (b?[c] ?? 0), channel: c) }
    }

    public func unary(_ x: Tensor, _ u: UnaryOp) throws -> Tensor {
        try map(x, "unary") { v, _, _ in u.apply(v) }
    }

    func zip(_ x: Tensor, _ y: Tensor, _ op: String, _ f: (Float, Float) -> Float) throws -> Tensor {
        try check(x, op); try check(y, op)
        try requireSame(x.shape, y.shape, op)
        let out = try make(x.shape, op: op)
        let hw = x.shape.h * x.shape.w
        for n in 0..<x.shape.n { for c in 0..<x.shape.c {
            let a = plane(x, n, c), b = plane(y, n, c), d = plane(out, n, c)
            for i in 0..<hw { d[i] = f(a[i], b[i]) }
        } }
        return out
    }

    public func add(_ x: Tensor, _ y: Tensor, alpha: Float, beta: Float) throws -> Tensor {
        try zip(x, y, "add") { alpha * $0 + beta * $1 }
    }

    public func multiply(_ x: Tensor, _ y: Tensor) throws -> Tensor { try zip(x, y, "multiply") { $0 * $1 } }

    public func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try map(x, "affine") { v, _, _ in scale * v + shift }
    }

    public func scaleChannels(_ x: Tensor, by s: Tensor) throws -> Tensor {
        try check(s, "scaleChannels")
        try requireSame(TensorShape(n: x.shape.n, c: x.shape.c, h: 1, w: 1), s.shape, "scaleChannels")
        return try map(x, "scaleChannels") { v, n, c in v * self.plane(s, n, c)[0] }
    }

    // MARK: shape ops

    public func concat(_ xs: [Tensor]) throws -> Tensor {
        let out = try make(Validate.concat(xs) { t, op in try check(t, op) }, op: "concat")
        var c0 = 0
        for x in xs {
            try copy(x, into: channelView(out, c0..<(c0 + x.shape.c)))
            c0 += x.shape.c
        }
        return out
    }

    public func sliceChannels(_ x: Tensor, _ range: Range<Int>) throws -> Tensor {
        let v = try channelView(x, range)
        let out = try make(v.shape, op: "sliceChannels")
        try copy(v, into: out)
        return out
    }

    /// General gather: out[n, c, y, x] = in[n, src(c, y, x)] where src returns (channel, y, x).
    func gather(_ x: Tensor, _ shape: TensorShape, _ op: String,
                _ src: (Int, Int, Int) -> (Int, Int, Int)) throws -> Tensor {
        try check(x, op)
        let out = try make(shape, op: op)
        for n in 0..<shape.n { for c in 0..<shape.c {
            let d = plane(out, n, c)
            for y in 0..<shape.h { for xx in 0..<shape.w {
                let (sc, sy, sx) = src(c, y, xx)
                d[y * shape.w + xx] = plane(x, n, sc)[sy * x.shape.w + sx]
            } }
        } }
        return out
    }

    public func pixelShuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        guard r > 0, x.shape.c % (r * r) == 0 else {
            throw TensorError.invalidShape(op: "pixelShuffle", message: "C=\(x.shape.c) not divisible by \(r)²")
        }
        let s = TensorShape(n: x.shape.n, c: x.shape.c / (r * r), h: x.shape.h * r, w: x.shape.w * r)
        return try gather(x, s, "pixelShuffle") { c, y, xx in (c * r * r + (y % r) * r + xx % r, y / r, xx / r) }
    }

    public func pixelUnshuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        guard r > 0, x.shape.h % r == 0, x.shape.w % r == 0 else {
            throw TensorError.invalidShape(op: "pixelUnshuffle", message: "H×W \(x.shape.h)×\(x.shape.w) not divisible by \(r)")
        }
        let s = TensorShape(n: x.shape.n, c: x.shape.c * r * r, h: x.shape.h / r, w: x.shape.w / r)
        return try gather(x, s, "pixelUnshuffle") { c, y, xx in
            let i = (c % (r * r)) / r, j = c % r
            return (c / (r * r), y * r + i, xx * r + j)
        }
    }

    public func upsampleNearest(_ x: Tensor, factor s: Int) throws -> Tensor {
        guard s > 0 else { throw TensorError.invalidShape(op: "upsampleNearest", message: "factor \(s)") }
        let shape = TensorShape(n: x.shape.n, c: x.shape.c, h: x.shape.h * s, w: x.shape.w * s)
        return try gather(x, shape, "upsampleNearest") { c, y, xx in (c, y / s, xx / s) }
    }

    public func resizeNearest(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        let shape = TensorShape(n: x.shape.n, c: x.shape.c, h: height, w: width)
        guard shape.isValid else { throw TensorError.invalidShape(op: "resizeNearest", message: "size \(height)×\(width)") }
        let sy = Float(x.shape.h) / Float(height), sx = Float(x.shape.w) / Float(width)
        let ih = x.shape.h, iw = x.shape.w
        return try gather(x, shape, "resizeNearest") { c, y, xx in
            (c, min(Int((Float(y) * sy).rounded(.down)), ih - 1), min(Int((Float(xx) * sx).rounded(.down)), iw - 1))
        }
    }

    public func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int) throws -> Tensor {
        let op = "upfirdn2d"
        try check(x, op)
        let k = taps.count
        guard k > 0, up > 0, down > 0 else { throw TensorError.invalidShape(op: op, message: "taps \(k), up \(up), down \(down)") }
        func outLen(_ l: Int) -> Int { (l * up + pad0 + pad1 - k) / down + 1 }
        let oh = outLen(x.shape.h), ow = outLen(x.shape.w)
        guard x.shape.h * up + pad0 + pad1 - k >= 0, x.shape.w * up + pad0 + pad1 - k >= 0, oh > 0, ow > 0 else {
            throw TensorError.invalidShape(op: op, message: "input \(x.shape) too small for taps \(k), pads (\(pad0),\(pad1))")
        }
        let out = try make(TensorShape(n: x.shape.n, c: x.shape.c, h: oh, w: ow), op: op)
        let ih = x.shape.h, iw = x.shape.w
        // value of the upsampled+padded signal at position p along an axis of input length l, or nil for zero
        @inline(__always) func src(_ p: Int, _ l: Int) -> Int? {
            let u = p - pad0
            guard u >= 0, u < l * up, u % up == 0 else { return nil }
            return u / up
        }
        for n in 0..<x.shape.n { for c in 0..<x.shape.c {
            let s = plane(x, n, c), d = plane(out, n, c)
            for oy in 0..<oh { for ox in 0..<ow {
                var acc: Float = 0
                for ty in 0..<k {
                    guard let iy = src(oy * down + ty, ih) else { continue }
                    let wy = taps[k - 1 - ty]
                    for tx in 0..<k {
                        guard let ix = src(ox * down + tx, iw) else { continue }
                        acc += wy * taps[k - 1 - tx] * s[iy * iw + ix]
                    }
                }
                d[oy * ow + ox] = acc
            } }
        } }
        return out
    }

    public func maxPool2d(_ x: Tensor, kernel k: Int, stride s: Int, padding p: Int) throws -> Tensor {
        let op = "maxPool2d"
        try check(x, op)
        let oh = (x.shape.h + 2 * p - k) / s + 1, ow = (x.shape.w + 2 * p - k) / s + 1
        guard k > 0, s > 0, p >= 0, 2 * p <= k, oh > 0, ow > 0 else {
            throw TensorError.invalidShape(op: op, message: "kernel \(k) stride \(s) padding \(p) for \(x.shape)")
        }
        let out = try make(TensorShape(n: x.shape.n, c: x.shape.c, h: oh, w: ow), op: op)
        for n in 0..<x.shape.n { for c in 0..<x.shape.c {
            let src = plane(x, n, c), d = plane(out, n, c)
            for oy in 0..<oh { for ox in 0..<ow {
                var m = -Float.infinity
                for ky in 0..<k { for kx in 0..<k {
                    let iy = oy * s - p + ky, ix = ox * s - p + kx
                    if iy >= 0, iy < x.shape.h, ix >= 0, ix < x.shape.w { m = max(m, src[iy * x.shape.w + ix]) }
                } }
                d[oy * ow + ox] = m
            } }
        } }
        return out
    }

    public func reflectPad(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int) throws -> Tensor {
        let h = x.shape.h, w = x.shape.w
        guard top >= 0, bottom >= 0, left >= 0, right >= 0, top < h, bottom < h, left < w, right < w else {
            throw TensorError.invalidShape(op: "reflectPad", message: "pads (\(top),\(bottom),\(left),\(right)) for \(x.shape)")
        }
        let shape = TensorShape(n: x.shape.n, c: x.shape.c, h: h + top + bottom, w: w + left + right)
        @inline(__always) func reflect(_ i: Int, _ l: Int) -> Int { i < 0 ? -i : (i >= l ? 2 * (l - 1) - i : i) }
        return try gather(x, shape, "reflectPad") { c, y, xx in (c, reflect(y - top, h), reflect(xx - left, w)) }
    }

    // MARK: reductions

    public func softmax(_ x: Tensor, axis: Int) throws -> Tensor {
        let op = "softmax"
        try check(x, op)
        guard (1...3).contains(axis) else { throw TensorError.invalidShape(op: op, message: "axis \(axis) (use 1, 2 or 3)") }
        let out = try make(x.shape, op: op)
        let s = x.shape
        let len = axis == 1 ? s.c : (axis == 2 ? s.h : s.w)
        // iterate over all positions with the axis index fixed to 0
        for n in 0..<s.n { for c in 0..<(axis == 1 ? 1 : s.c) { for y in 0..<(axis == 2 ? 1 : s.h) { for xx in 0..<(axis == 3 ? 1 : s.w) {
            func at(_ t: Tensor, _ i: Int) -> UnsafeMutablePointer<Float> {
                switch axis {
                case 1: return plane(t, n, i) + y * s.w + xx
                case 2: return plane(t, n, c) + i * s.w + xx
                default: return plane(t, n, c) + y * s.w + i
                }
            }
            var m = -Float.infinity
            for i in 0..<len { m = max(m, at(x, i).pointee) }
            var sum: Float = 0
            for i in 0..<len { let e = _exp(at(x, i).pointee - m); at(out, i).pointee = e; sum += e }
            for i in 0..<len { at(out, i).pointee /= sum }
        } } } }
        return out
    }

    public func pixelNorm(_ x: Tensor, eps: Float) throws -> Tensor {
        let mean = try meanOverChannels(unary(x, .square))
        return try map(x, "pixelNorm") { _, _, _ in 0 }.withValues { out in
            let hw = x.shape.h * x.shape.w
            for n in 0..<x.shape.n {
                let m = self.plane(mean, n, 0)
                for c in 0..<x.shape.c {
                    let s = self.plane(x, n, c), d = self.plane(out, n, c)
                    for i in 0..<hw { d[i] = s[i] / (m[i] + eps).squareRoot() }
                }
            }
        }
    }

    public func meanOverChannels(_ x: Tensor) throws -> Tensor {
        try check(x, "meanOverChannels")
        let out = try make(TensorShape(n: x.shape.n, c: 1, h: x.shape.h, w: x.shape.w), op: "meanOverChannels")
        let hw = x.shape.h * x.shape.w
        for n in 0..<x.shape.n {
            let d = plane(out, n, 0)
            for c in 0..<x.shape.c { let s = plane(x, n, c); for i in 0..<hw { d[i] += s[i] } }
            for i in 0..<hw { d[i] /= Float(x.shape.c) }
        }
        return out
    }
}

extension Tensor {
    /// Runs `body` with self and returns self (helper for in-place fills by backends).
    func withValues(_ body: (Tensor) -> Void) -> Tensor { body(self); return self }
}
