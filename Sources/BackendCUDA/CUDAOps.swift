import CCUDA
import Foundation
import TensorCore

// Element-wise, shape and reduction ops: one launch of a kernels.cu entry point each (gather kinds and op codes as
// kernels.cu documents them). Results are new dense tensors; inputs may be channel views.
extension CUDABackend {
    // MARK: element-wise

    public func activation(_ x: Tensor, _ a: Activation) throws -> Tensor {
        try Validate.activation(a, channels: x.shape.c, op: "activation")
        return try sync {
            try own(x, "activation")
            let y = try make(x.shape, op: "activation")
            try epilogue(from: x, into: y, bias: nil, Epilogue(activation: a), op: "activation")
            return y
        }
    }

    public func biasActivation(_ x: Tensor, bias: PreparedVector?, activation a: Activation) throws -> Tensor {
        if let bias { try Validate.vector(bias, channels: x.shape.c, op: "biasActivation bias") }
        try Validate.activation(a, channels: x.shape.c, op: "biasActivation")
        return try sync {
            try own(x, "biasActivation")
            let y = try make(x.shape, op: "biasActivation")
            let b = try bias.map { try vectorAddress($0, op: "biasActivation bias") }
            try epilogue(from: x, into: y, bias: b, Epilogue(activation: a), op: "biasActivation")
            return y
        }
    }

    private func unaryCode(_ u: UnaryOp) -> (Int, Float, Float) {
        switch u {
        case .square: (0, 0, 0)
        case .sqrt: (1, 0, 0)
        case let .rsqrt(eps): (2, eps, 0)
        case .exp: (3, 0, 0)
        case .abs: (4, 0, 0)
        case .tanh: (5, 0, 0)
        case let .clamp(lo, hi): (6, lo, hi)
        }
    }

    private func unary(_ x: Tensor, code: (Int, Float, Float), op: String) throws -> Tensor {
        try sync {
            try own(x, op)
            let y = try make(x.shape, op: op)
            try launch("enh_unary", count: x.shape.count, arg(y) + arg(x) + extents(x.shape) + [.i32(code.0), .f32(code.1), .f32(code.2)])
            return y
        }
    }

    public func unary(_ x: Tensor, _ op: UnaryOp) throws -> Tensor { try unary(x, code: unaryCode(op), op: "unary") }

    public func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor { try unary(x, code: (7, scale, shift), op: "affine") }

    private func binary(_ x: Tensor, _ z: Tensor, code: Int, alpha: Float, beta: Float, op: String) throws -> Tensor {
        try sync {
            try own(x, op); try own(z, op)
            try Validate.same(x.shape, z.shape, op)
            let y = try make(x.shape, op: op)
            try launch("enh_binary", count: x.shape.count, arg(y) + arg(x) + arg(z) + extents(x.shape) + [.i32(code), .f32(alpha), .f32(beta)])
            return y
        }
    }

    public func add(_ x: Tensor, _ y: Tensor, alpha: Float, beta: Float) throws -> Tensor {
        try binary(x, y, code: 0, alpha: alpha, beta: beta, op: "add")
    }

    public func multiply(_ x: Tensor, _ y: Tensor) throws -> Tensor { try binary(x, y, code: 1, alpha: 1, beta: 1, op: "multiply") }

    public func scaleChannels(_ x: Tensor, by s: Tensor) throws -> Tensor {
        try sync {
            try own(x, "scaleChannels"); try own(s, "scaleChannels")
            try Validate.same(TensorShape(n: x.shape.n, c: x.shape.c, h: 1, w: 1), s.shape, "scaleChannels")
            let y = try make(x.shape, op: "scaleChannels")
            try epilogue(from: x, into: y, bias: nil, Epilogue(channelScale: s), op: "scaleChannels")
            return y
        }
    }

    // MARK: shape ops

    public func concat(_ xs: [Tensor]) throws -> Tensor {
        try sync {
            let out = try make(Validate.concat(xs) { t, op in try own(t, op) }, op: "concat")
            var c0 = 0
            for x in xs {
                try copyStrided(x, into: view(out, c0..<(c0 + x.shape.c)))
                c0 += x.shape.c
            }
            return out
        }
    }

    public func sliceChannels(_ x: Tensor, _ range: Range<Int>) throws -> Tensor {
        try sync { try copyDense(view(x, range)) }
    }

    /// out = gather(x) with the kernel's `kind`.
    private func gather(_ x: Tensor, _ out: TensorShape, kind: Int, p0: Int = 0, p1: Int = 0, fy: Float = 0, fx: Float = 0, op: String) throws -> Tensor {
        try sync {
            try own(x, op)
            let y = try make(out, op: op)
            try launch("enh_gather", count: out.count, arg(y) + arg(x) + [.i32(out.n), .i32(out.c), .i32(out.h), .i32(out.w), .i32(x.shape.h),
                                                                        .i32(x.shape.w), channelsLastFlag, .i32(kind), .i32(p0), .i32(p1), .f32(fy), .f32(fx)])
            return y
        }
    }

    public func pixelShuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        guard r > 0, x.shape.c % (r * r) == 0 else {
            throw TensorError.invalidShape(op: "pixelShuffle", message: "C=\(x.shape.c) not divisible by \(r)²")
        }
        return try gather(x, TensorShape(n: x.shape.n, c: x.shape.c / (r * r), h: x.shape.h * r, w: x.shape.w * r), kind: 0, p0: r, op: "pixelShuffle")
    }

    public func pixelUnshuffle(_ x: Tensor, factor r: Int) throws -> Tensor {
        guard r > 0, x.shape.h % r == 0, x.shape.w % r == 0 else {
            throw TensorError.invalidShape(op: "pixelUnshuffle", message: "H×W \(x.shape.h)×\(x.shape.w) not divisible by \(r)")
        }
        return try gather(x, TensorShape(n: x.shape.n, c: x.shape.c * r * r, h: x.shape.h / r, w: x.shape.w / r), kind: 1, p0: r, op: "pixelUnshuffle")
    }

    public func upsampleNearest(_ x: Tensor, factor s: Int) throws -> Tensor {
        guard s > 0 else { throw TensorError.invalidShape(op: "upsampleNearest", message: "factor \(s)") }
        return try gather(x, TensorShape(n: x.shape.n, c: x.shape.c, h: x.shape.h * s, w: x.shape.w * s), kind: 2, p0: s, op: "upsampleNearest")
    }

    public func resizeNearest(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        let shape = TensorShape(n: x.shape.n, c: x.shape.c, h: height, w: width)
        guard shape.isValid else { throw TensorError.invalidShape(op: "resizeNearest", message: "size \(height)×\(width)") }
        return try gather(x, shape, kind: 3, fy: Float(x.shape.h) / Float(height), fx: Float(x.shape.w) / Float(width), op: "resizeNearest")
    }

    public func reflectPad(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int) throws -> Tensor {
        let h = x.shape.h, w = x.shape.w
        guard top >= 0, bottom >= 0, left >= 0, right >= 0, top < h, bottom < h, left < w, right < w else {
            throw TensorError.invalidShape(op: "reflectPad", message: "pads (\(top),\(bottom),\(left),\(right)) for \(x.shape)")
        }
        return try gather(x, TensorShape(n: x.shape.n, c: x.shape.c, h: h + top + bottom, w: w + left + right), kind: 4, p0: top, p1: left, op: "reflectPad")
    }

    public func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int) throws -> Tensor {
        let op = "upfirdn2d"
        let k = taps.count
        guard k > 0, up > 0, down > 0 else { throw TensorError.invalidShape(op: op, message: "taps \(k), up \(up), down \(down)") }
        func outLen(_ l: Int) -> Int { (l * up + pad0 + pad1 - k) / down + 1 }
        let oh = outLen(x.shape.h), ow = outLen(x.shape.w)
        guard x.shape.h * up + pad0 + pad1 - k >= 0, x.shape.w * up + pad0 + pad1 - k >= 0, oh > 0, ow > 0 else {
            throw TensorError.invalidShape(op: op, message: "input \(x.shape) too small for taps \(k), pads (\(pad0),\(pad1))")
        }
        guard k <= 8 else {
            return try fallback.run([x], on: self) { r, t in try r.upfirdn2d(t[0], taps: taps, up: up, down: down, pad0: pad0, pad1: pad1) }
        }
        return try sync {
            try own(x, op)
            let out = TensorShape(n: x.shape.n, c: x.shape.c, h: oh, w: ow)
            let y = try make(out, op: op)
            let t = taps + [Float](repeating: 0, count: 8 - k)
            try launch("enh_upfirdn", count: out.count, arg(y) + arg(x) + [.i32(out.n), .i32(out.c), .i32(oh), .i32(ow), .i32(x.shape.h),
                                                                         .i32(x.shape.w), channelsLastFlag, .i32(up), .i32(down), .i32(pad0), .i32(k)]
                                                         + t.map { .f32($0) })
            return y
        }
    }

    public func maxPool2d(_ x: Tensor, kernel k: Int, stride s: Int, padding p: Int) throws -> Tensor {
        let op = "maxPool2d"
        let oh = (x.shape.h + 2 * p - k) / s + 1, ow = (x.shape.w + 2 * p - k) / s + 1
        guard k > 0, s > 0, p >= 0, 2 * p <= k, oh > 0, ow > 0 else {
            throw TensorError.invalidShape(op: op, message: "kernel \(k) stride \(s) padding \(p) for \(x.shape)")
        }
        return try sync {
            try own(x, op)
            let out = TensorShape(n: x.shape.n, c: x.shape.c, h: oh, w: ow)
            let y = try make(out, op: op)
            try launch("enh_maxpool", count: out.count, arg(y) + arg(x) + [.i32(out.n), .i32(out.c), .i32(oh), .i32(ow), .i32(x.shape.h),
                                                                         .i32(x.shape.w), channelsLastFlag, .i32(k), .i32(s), .i32(p)])
            return y
        }
    }

    // MARK: reductions

    public func softmax(_ x: Tensor, axis: Int) throws -> Tensor {
        let op = "softmax"
        guard (1...3).contains(axis) else { throw TensorError.invalidShape(op: op, message: "axis \(axis) (use 1, 2 or 3)") }
        return try sync {
            try own(x, op)
            let s = x.shape
            let y = try make(s, op: op)
            let lines = s.n * (axis == 1 ? s.h * s.w : axis == 2 ? s.c * s.w : s.c * s.h)
            try launch("enh_softmax", count: lines, arg(y) + arg(x) + [.i32(s.n), .i32(s.c), .i32(s.h), .i32(s.w), .i32(axis)])
            return y
        }
    }

    private func channelReduce(_ x: Tensor, mode: Int, eps: Float, op: String) throws -> Tensor {
        try sync {
            try own(x, op)
            let s = x.shape
            let y = try make(TensorShape(n: s.n, c: mode == 0 ? 1 : s.c, h: s.h, w: s.w), op: op)
            try launch("enh_channel_reduce", count: s.n * s.h * s.w, arg(y) + arg(x) + [.i32(s.n), .i32(s.c), .i32(s.h * s.w), .i32(mode), .f32(eps)])
            return y
        }
    }

    public func pixelNorm(_ x: Tensor, eps: Float) throws -> Tensor { try channelReduce(x, mode: 1, eps: eps, op: "pixelNorm") }

    public func meanOverChannels(_ x: Tensor) throws -> Tensor { try channelReduce(x, mode: 0, eps: 0, op: "meanOverChannels") }
}
