/// Argument checks every backend makes, written once so that each backend rejects the same calls with the same
/// message. A backend still checks that tensors are its own (`check`); these check shapes and sizes.
public enum Validate {
    /// The output shape of `p` on an input of shape `x`: the input's channels must be the layer's, and the output
    /// must not be empty.
    public static func convolution(_ x: TensorShape, inChannels: Int, outChannels: Int, outputSize: (h: Int, w: Int),
                                   describing p: Any, op: String) throws -> TensorShape {
        guard x.c == inChannels else {
            throw TensorError.shapeMismatch(op: op, expected: "C=\(inChannels)", actual: x.description)
        }
        guard outputSize.h > 0, outputSize.w > 0 else { throw TensorError.invalidShape(op: op, message: "input \(x) too small for \(p)") }
        return TensorShape(n: x.n, c: outChannels, h: outputSize.h, w: outputSize.w)
    }

    /// The output shape of a 2-D convolution with `p` on `x`.
    public static func conv2d(_ x: TensorShape, _ p: Conv2dParams, op: String = "conv2d") throws -> TensorShape {
        let (oh, ow) = p.outputSize(h: x.h, w: x.w)
        return try convolution(x, inChannels: p.inChannels, outChannels: p.outChannels, outputSize: (oh, ow), describing: p, op: op)
    }

    /// The epilogue's tensors against the output shape: channel scale N×C×1×1, residual equal to the output, one
    /// PReLU slope per output channel. `owned` is the backend's own check that a tensor is its.
    public static func epilogue(_ e: Epilogue, out: TensorShape, op: String, owned: (Tensor, String) throws -> Void) throws {
        if let s = e.channelScale {
            try owned(s, op)
            try same(TensorShape(n: out.n, c: out.c, h: 1, w: 1), s.shape, op + " channelScale")
        }
        if let r = e.residual {
            try owned(r, op)
            try same(out, r.shape, op + " residual")
        }
        try activation(e.activation, channels: out.c, op: op)
    }

    /// A prepared vector with one value per channel.
    public static func vector(_ v: PreparedVector, channels: Int, op: String) throws {
        guard v.count == channels else { throw TensorError.shapeMismatch(op: op, expected: "[\(channels)]", actual: "[\(v.count)]") }
    }

    /// An activation for `channels` channels (PReLU: one slope per channel).
    public static func activation(_ a: Activation, channels: Int, op: String) throws {
        if case let .prelu(slopes) = a { try vector(slopes, channels: channels, op: op + " prelu") }
    }

    /// Weights of the expected shape and, when given, one bias per output channel (`op` names the layer kind:
    /// "prepareConv2d").
    public static func weights(_ weight: HostTensor, expected: [Int], bias: HostTensor?, outChannels: Int, op: String) throws {
        guard weight.shape == expected else {
            throw TensorError.shapeMismatch(op: op + " weight", expected: "\(expected)", actual: "\(weight.shape)")
        }
        if let bias, bias.count != outChannels {
            throw TensorError.shapeMismatch(op: op + " bias", expected: "[\(outChannels)]", actual: "\(bias.shape)")
        }
    }

    /// The shape of the channel concatenation of `xs` (same N, H, W; at least one input), each checked by `owned`.
    public static func concat(_ xs: [Tensor], owned: (Tensor, String) throws -> Void) throws -> TensorShape {
        guard let first = xs.first else { throw TensorError.invalidShape(op: "concat", message: "no inputs") }
        var total = 0
        for x in xs {
            try owned(x, "concat")
            guard x.shape.n == first.shape.n, x.shape.h == first.shape.h, x.shape.w == first.shape.w else {
                throw TensorError.shapeMismatch(op: "concat", expected: "N,H,W of \(first.shape)", actual: x.shape.description)
            }
            total += x.shape.c
        }
        var s = first.shape
        s.c = total
        return s
    }

    /// `copyRows`: N, C and W equal, `rows` inside the source, the destination rows from `atRow` inside the destination.
    public static func rowCopy(_ source: TensorShape, _ rows: Range<Int>, _ destination: TensorShape, _ atRow: Int) throws {
        guard source.n == destination.n, source.c == destination.c, source.w == destination.w else {
            throw TensorError.shapeMismatch(op: "copyRows", expected: "N, C, W of \(destination)", actual: source.description)
        }
        guard rows.lowerBound >= 0, rows.upperBound <= source.h, atRow >= 0, atRow + rows.count <= destination.h else {
            throw TensorError.invalidShape(op: "copyRows", message: "rows \(rows) of \(source) to row \(atRow) of \(destination)")
        }
    }

    /// `actual` must be `expected`.
    public static func same(_ expected: TensorShape, _ actual: TensorShape, _ op: String) throws {
        guard expected == actual else { throw TensorError.shapeMismatch(op: op, expected: expected.description, actual: actual.description) }
    }
}

/// Row copies between dense NCHW arrays (the host default of `copyRows`).
enum RowCopy {
    static func copy(_ src: [Float], _ ss: TensorShape, _ rows: Range<Int>, into dst: inout [Float], _ ds: TensorShape, atRow: Int) {
        let w = ss.w, count = rows.count * w
        guard count > 0 else { return }
        src.withUnsafeBufferPointer { s in
            dst.withUnsafeMutableBufferPointer { d in
                for n in 0..<ss.n {
                    for c in 0..<ss.c {
                        let from = ((n * ss.c + c) * ss.h + rows.lowerBound) * w
                        let to = ((n * ds.c + c) * ds.h + atRow) * w
                        (d.baseAddress! + to).update(from: s.baseAddress! + from, count: count)
                    }
                }
            }
        }
    }
}
