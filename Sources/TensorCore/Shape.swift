/// Logical shape of an activation: N (batch), C (channels), H (height), W (width). Linear outputs are N×C×1×1.
public struct TensorShape: Hashable, Sendable, CustomStringConvertible {
    public var n: Int
    public var c: Int
    public var h: Int
    public var w: Int

    /// Creates a shape from N, C, H, W.
    public init(n: Int = 1, c: Int, h: Int, w: Int) {
        self.n = n; self.c = c; self.h = h; self.w = w
    }

    /// Creates a shape from a 4-element [N, C, H, W] array (2-element [N, C] means N×C×1×1).
    public init(_ dims: [Int]) throws {
        switch dims.count {
        case 4: self.init(n: dims[0], c: dims[1], h: dims[2], w: dims[3])
        case 2: self.init(n: dims[0], c: dims[1], h: 1, w: 1)
        default: throw TensorError.invalidShape(op: "TensorShape", message: "expected [N,C,H,W] or [N,C], got \(dims)")
        }
        guard isValid else { throw TensorError.invalidShape(op: "TensorShape", message: "non-positive or huge dimension in \(dims)") }
    }

    /// [N, C, H, W].
    public var dims: [Int] { [n, c, h, w] }
    /// Number of elements N·C·H·W.
    public var count: Int { n * c * h * w }
    /// True when every dimension is positive and the element count stays below 2^40.
    public var isValid: Bool {
        n > 0 && c > 0 && h > 0 && w > 0 && n <= 1 << 20 && c <= 1 << 24 && h <= 1 << 24 && w <= 1 << 24
            && Double(n) * Double(c) * Double(h) * Double(w) < Double(1 << 40)
    }
    public var description: String { "[\(n),\(c),\(h),\(w)]" }
}

/// A host-side dense float32 tensor: shape plus contiguous row-major data (NCHW for activations, OIHW for
/// convolution weights, [out, in] for linear weights, [C] for vectors).
public struct HostTensor: Sendable, Equatable {
    public var shape: [Int]
    public var data: [Float]

    /// Throws `TensorError.nonFinite` naming `op` when a value is NaN or infinite (clamping would hide it as black).
    public func requireFinite(_ op: String) throws {
        var bad = 0
        data.withUnsafeBufferPointer { for v in $0 where !v.isFinite { bad += 1 } }
        if bad > 0 { throw TensorError.nonFinite(op: op, count: bad, total: data.count) }
    }

    /// Creates a host tensor; throws when `data.count` is not the product of `shape`.
    public init(shape: [Int], data: [Float]) throws {
        let count = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), count == data.count else {
            throw TensorError.invalidShape(op: "HostTensor", message: "shape \(shape) has \(shape.reduce(1, *)) elements, data has \(data.count)")
        }
        self.shape = shape
        self.data = data
    }

    /// A zero-filled host tensor of the given shape.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Number of elements.
    public var count: Int { data.count }

    /// The 4-D logical shape (N, C, H, W) of this tensor; [N, C] is read as N×C×1×1.
    public func tensorShape() throws -> TensorShape { try TensorShape(shape) }
}

/// Physical layout of a backend tensor's memory, chosen by the backend (logical indexing is always NCHW). TensorCore
/// knows only what model-independent code needs: how many channels one block holds, whether channels are innermost,
/// and how many channels the storage reserves; each backend names and describes its own layouts (oneDNN's `nChw16c`
/// is `channelBlocked(16)`; the CUDA backend's channels_last is `nhwc`).
public struct TensorLayout: Hashable, Sendable, CustomStringConvertible {
    /// Channels per block, innermost (1: plain N, C, H, W with W fastest).
    public let channelBlock: Int
    /// N, H, W, C: all channels of a pixel together (PyTorch's `channels_last`).
    public let channelsLast: Bool

    /// Plain N, C, H, W (W fastest).
    public static let nchw = TensorLayout(channelBlock: 1, channelsLast: false)

    /// N, H, W, C (C fastest): PyTorch's `channels_last`, cuDNN's `CUDNN_TENSOR_NHWC`.
    public static let nhwc = TensorLayout(channelBlock: 1, channelsLast: true)

    /// N, C/b, H, W, b (b channels innermost), the channel count padded with zeros to a multiple of b.
    public static func channelBlocked(_ b: Int) -> TensorLayout {
        precondition(b > 0, "channel block must be positive")
        return TensorLayout(channelBlock: b, channelsLast: false)
    }

    private init(channelBlock: Int, channelsLast: Bool) { self.channelBlock = channelBlock; self.channelsLast = channelsLast }

    /// Channel count the storage reserves for `c` channels (padding for blocked layouts).
    public func paddedChannels(_ c: Int) -> Int {
        let b = channelBlock
        return (c + b - 1) / b * b
    }

    public var description: String { channelsLast ? "nhwc" : channelBlock == 1 ? "nchw" : "nChw\(channelBlock)c" }
}
