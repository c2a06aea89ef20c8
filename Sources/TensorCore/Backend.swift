/// Element-wise unary functions (besides activations).
public enum UnaryOp: Hashable, Sendable {
    /// x².
    case square
    /// √x.
    case sqrt
    /// 1/√(x + eps).
    case rsqrt(eps: Float)
    /// eˣ.
    case exp
    /// |x|.
    case abs
    /// tanh x.
    case tanh
    /// min(max(x, lo), hi).
    case clamp(lo: Float, hi: Float)

    /// Reference semantics for one value.
    public func apply(_ x: Float) -> Float {
        switch self {
        case .square: return x * x
        case .sqrt: return x.squareRoot()
        case let .rsqrt(eps): return 1 / (x + eps).squareRoot()
        case .exp: return _exp(x)
        case .abs: return Swift.abs(x)
        case .tanh: return _tanh(x)
        case let .clamp(lo, hi): return Swift.min(Swift.max(x, lo), hi)
        }
    }
}

/// The compute backend seen by model code. All activations are `Tensor`s created by the backend (logical NCHW;
/// the backend picks the physical layout); weights arrive as `HostTensor`s and are prepared once.
/// Unless an op says otherwise, inputs must come from this backend and the result is a new tensor.
public protocol Backend: AnyObject, Sendable {
    /// Human-readable name, e.g. "reference" or "oneDNN 2.6.3 (2 threads, winograd)".
    var name: String { get }
    /// Channel offsets of `channelView` must be multiples of this (1 for the reference backend, 16 for oneDNN).
    var channelViewAlignment: Int { get }
    /// Whether the backend implements `op` itself (false: a `PartialBackend` runs it through the reference fallback).
    func supports(_ op: BackendOp) -> Bool
    /// Convolution maps smaller than this many pixels may take another algorithm, whose prepared weights then come on
    /// top of those already prepared (oneDNN: below the own Winograd kernel's threshold layers run direct
    /// convolutions); 0 when map size never changes what is prepared. Whoever picks sizes under a memory cap keeps
    /// maps at least this large: smaller ones cost more memory, not less.
    var algorithmSwitchPixels: Int { get }

    // MARK: memory
    /// Copies a host tensor ([N,C,H,W] or [N,C]) into a new backend tensor.
    func upload(_ host: HostTensor) throws -> Tensor
    /// Copies a model constant (GPEN's learned input) into a tensor kept like weights: it lives as long as the model
    /// and counts in `MemoryStats.weightBytes`, not in the activation statistics or a `MemoryScope`.
    func uploadConstant(_ host: HostTensor) throws -> Tensor
    /// Copies a backend tensor to the host as dense NCHW [N, C, H, W].
    func download(_ tensor: Tensor) throws -> HostTensor
    /// A new zero-filled tensor.
    func zeros(_ shape: TensorShape) throws -> Tensor
    /// A new tensor with undefined contents (for buffers that are fully overwritten, e.g. concatenation buffers).
    func empty(_ shape: TensorShape) throws -> Tensor
    /// A view of channels `range` of `tensor` sharing its memory (writes through `into:` land in the parent).
    func channelView(_ tensor: Tensor, _ range: Range<Int>) throws -> Tensor
    /// Copies `source` into `destination` (same shape; destination may be a view).
    func copy(_ source: Tensor, into destination: Tensor) throws
    /// Copies rows `rows` of `source` into `destination`'s rows from `atRow` on (N, C and W must match; either may be a
    /// channel view). Lets a model compute a tall tensor in row bands (RRDBNet's upsampling tail).
    func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, atRow: Int) throws
    /// Allocation statistics.
    var memoryStats: MemoryStats { get }
    /// Sets the peaks to the current values.
    func resetPeak()
    /// Returns to the system what the backend holds beyond live tensors and prepared layers — cached free buffers,
    /// cached primitives — for a long-running process to call when idle.
    func trim()

    // MARK: prepared layers
    /// Prepares a convolution from an OIHW weight [O, I/groups, kH, kW] and optional bias [O].
    func prepareConv2d(weight: HostTensor, bias: HostTensor?, params: Conv2dParams) throws -> PreparedConv2d
    /// Runs a prepared convolution with a fused epilogue. With `into`, writes into that tensor (may be a channel
    /// view of a larger buffer) and returns it.
    func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue, into: Tensor?) throws -> Tensor
    /// `conv2d(scaleChannels(x, by: inputScale), conv, epilogue, into)` — a convolution of x scaled per input channel
    /// (GPEN's modulation; `inputScale` N×C×1×1), which a backend may fold into the weights instead of making the scaled
    /// copy of x (the default does exactly that composition).
    func conv2d(_ x: Tensor, _ conv: PreparedConv2d, inputScale: Tensor, epilogue: Epilogue, into: Tensor?) throws -> Tensor
    /// Prepares a transposed convolution from an IOHW weight [I, O/groups, k, k] and optional bias [O].
    func prepareConvTranspose2d(weight: HostTensor, bias: HostTensor?, params: ConvTranspose2dParams) throws -> PreparedConvTranspose2d
    /// The same from the weight laid out as an ordinary convolution's, OIHW [O, I, k, k] (groups 1): GPEN's modulated
    /// conv keeps it so and hands `weight.transpose(0, 1)` to conv_transpose2d. The default makes the IOHW copy.
    func prepareConvTranspose2d(oihwWeight: HostTensor, bias: HostTensor?, params: ConvTranspose2dParams) throws -> PreparedConvTranspose2d
    /// Runs a prepared transposed convolution with a fused epilogue.
    func convTranspose2d(_ x: Tensor, _ conv: PreparedConvTranspose2d, epilogue: Epilogue) throws -> Tensor
    /// Prepares a per-channel vector (a bias for `biasActivation`, PReLU slopes) once, like weights.
    func prepareVector(_ values: [Float]) throws -> PreparedVector
    /// Prepares a linear layer from a weight [out, in] and optional bias [out].
    func prepareLinear(weight: HostTensor, bias: HostTensor?) throws -> PreparedLinear
    /// Runs a linear layer on x (N×C×H×W flattened in c,h,w order) giving N×out×1×1; epilogue channelScale and
    /// residual must be N×out×1×1.
    func linear(_ x: Tensor, _ layer: PreparedLinear, epilogue: Epilogue) throws -> Tensor

    // MARK: element-wise
    /// activation(x).
    func activation(_ x: Tensor, _ activation: Activation) throws -> Tensor
    /// activation(x + bias[c]); bias has C elements (GPEN FusedLeakyReLU with `.scaledLeakyReLU(0.2, √2)`).
    func biasActivation(_ x: Tensor, bias: PreparedVector?, activation: Activation) throws -> Tensor
    /// `biasActivation` that may overwrite x (the caller's last use of it) and return it: GPEN's styled conv output
    /// (128 MiB at 512²) then has no second copy. The default returns a new tensor.
    func biasActivationReusing(_ x: Tensor, bias: PreparedVector?, activation: Activation) throws -> Tensor
    /// f(x) element-wise.
    func unary(_ x: Tensor, _ op: UnaryOp) throws -> Tensor
    /// a·x + b·y (same shapes).
    func add(_ x: Tensor, _ y: Tensor, alpha: Float, beta: Float) throws -> Tensor
    /// x · y element-wise (same shapes).
    func multiply(_ x: Tensor, _ y: Tensor) throws -> Tensor
    /// scale·x + shift.
    func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor
    /// scale·x written into `destination` (x's shape; may be a channel view): GPEN's scaled noise straight into its half
    /// of a concatenation. The default is `affine` and `copy`.
    func affine(_ x: Tensor, scale: Float, into destination: Tensor) throws
    /// x[n,c,h,w] · s[n,c]; s has shape N×C×1×1 (runtime per-channel scaling, e.g. GPEN style modulation).
    func scaleChannels(_ x: Tensor, by s: Tensor) throws -> Tensor

    // MARK: shape ops
    /// Concatenation along channels, in order.
    func concat(_ xs: [Tensor]) throws -> Tensor
    /// Copy of channels `range`.
    func sliceChannels(_ x: Tensor, _ range: Range<Int>) throws -> Tensor
    /// Pixel shuffle: in[c·r²+i·r+j, y, x] → out[c, y·r+i, x·r+j].
    func pixelShuffle(_ x: Tensor, factor: Int) throws -> Tensor
    /// Pixel unshuffle: out[c·r²+i·r+j, y, x] = in[c, y·r+i, x·r+j] (H, W divisible by r).
    func pixelUnshuffle(_ x: Tensor, factor: Int) throws -> Tensor
    /// Nearest upsampling by an integer factor: out[y, x] = in[y/s, x/s].
    func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor
    /// `conv2d(upsampleNearest(x, factor), conv, epilogue)`, which a backend may compute without the upsampled tensor
    /// (the default does exactly that composition).
    func upsampleNearestConv2d(_ x: Tensor, factor: Int, _ conv: PreparedConv2d, epilogue: Epilogue) throws -> Tensor
    /// `conv2d(reflectPad(x, padding on every side), conv, epilogue)` (ParseNet's ReflectionPad2d + unpadded conv), which a
    /// backend may compute without the padded tensor (the default does exactly that composition).
    func reflectPadConv2d(_ x: Tensor, padding: Int, _ conv: PreparedConv2d, epilogue: Epilogue) throws -> Tensor
    /// Nearest resize to h×w with PyTorch's rule src = min(floor(dst·(in/out)), in−1).
    func resizeNearest(_ x: Tensor, height: Int, width: Int) throws -> Tensor
    /// upfirdn2d (StyleGAN2): per axis, zero-insert upsample by `up`, pad `pad0` before and `pad1` after
    /// (negative crops), convolve (true convolution) with the separable kernel outer(taps, taps), keep every
    /// `down`-th sample. Output length: (L·up + pad0 + pad1 − K) / down + 1.
    func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int) throws -> Tensor
    /// `upfirdn2d` written into `destination` (which may be a channel view); the default copies a new result there.
    func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int, into destination: Tensor) throws
    /// Max pooling (PyTorch `MaxPool2d`, floor mode; padding counts as −∞). Output (H + 2p − k)/s + 1.
    func maxPool2d(_ x: Tensor, kernel: Int, stride: Int, padding: Int) throws -> Tensor
    /// Reflection padding (PyTorch `ReflectionPad2d`); each pad must be smaller than the padded dimension.
    func reflectPad(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int) throws -> Tensor

    // MARK: reductions
    /// Softmax over `axis` (1 = C, 2 = H, 3 = W).
    func softmax(_ x: Tensor, axis: Int) throws -> Tensor
    /// x / √(mean over channels of x² + eps) (StyleGAN PixelNorm, eps 1e-8).
    func pixelNorm(_ x: Tensor, eps: Float) throws -> Tensor
    /// Mean over channels: N×1×H×W.
    func meanOverChannels(_ x: Tensor) throws -> Tensor

    // MARK: profiling
    /// Starts timing every op this backend runs until `finishProfile` (`enhance forward --profile`); false when the
    /// backend cannot (the default).
    func startProfile() throws -> Bool
    /// The op times since `startProfile` (waits for queued work); nil when no profile runs.
    func finishProfile() throws -> OpProfile?
}

extension Backend {
    public var algorithmSwitchPixels: Int { 0 }

    public func startProfile() throws -> Bool { false }
    public func finishProfile() throws -> OpProfile? { nil }

    public func affine(_ x: Tensor, scale: Float, into destination: Tensor) throws {
        try copy(affine(x, scale: scale, shift: 0), into: destination)
    }

    public func prepareConvTranspose2d(oihwWeight w: HostTensor, bias: HostTensor?, params p: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        let (ci, co, k) = (p.inChannels, p.outChannels, p.kernel)
        guard p.groups == 1, w.shape == [co, ci, k, k] else {
            throw TensorError.shapeMismatch(op: "prepareConvTranspose2d", expected: "OIHW \([co, ci, k, k]) (groups 1)",
                                            actual: "\(w.shape) (groups \(p.groups))")
        }
        let kk = k * k
        let iohw = [Float](unsafeUninitializedCapacity: w.data.count) { out, count in
            w.data.withUnsafeBufferPointer { src in
                for o in 0..<co {
                    for i in 0..<ci {
                        let from = (o * ci + i) * kk, to = (i * co + o) * kk
                        for t in 0..<kk { out[to + t] = src[from + t] }
                    }
                }
            }
            count = w.data.count
        }
        return try prepareConvTranspose2d(weight: HostTensor(shape: p.weightShape, data: iohw), bias: bias, params: p)
    }

    /// The default goes through the host (download both, copy, upload, copy back); backends override it.
    public func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, atRow: Int) throws {
        try Validate.rowCopy(source.shape, rows, destination.shape, atRow)
        let src = try download(source)
        var dst = try download(destination)
        RowCopy.copy(src.data, source.shape, rows, into: &dst.data, destination.shape, atRow: atRow)
        try copy(upload(dst), into: destination)
    }

    /// A new tensor holding rows `rows` of `x`.
    public func sliceRows(_ x: Tensor, _ rows: Range<Int>) throws -> Tensor {
        var s = x.shape
        s.h = rows.count
        let out = try empty(s)
        try copyRows(x, rows, into: out, atRow: 0)
        return out
    }

    public func upsampleNearestConv2d(_ x: Tensor, factor: Int, _ conv: PreparedConv2d, epilogue: Epilogue) throws -> Tensor {
        try conv2d(upsampleNearest(x, factor: factor), conv, epilogue: epilogue, into: nil)
    }

    public func reflectPadConv2d(_ x: Tensor, padding: Int, _ conv: PreparedConv2d, epilogue: Epilogue) throws -> Tensor {
        let p = padding
        return try conv2d(reflectPad(x, top: p, bottom: p, left: p, right: p), conv, epilogue: epilogue, into: nil)
    }

    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, inputScale: Tensor, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        try conv2d(scaleChannels(x, by: inputScale), conv, epilogue: epilogue, into: into)
    }

    public func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int, into destination: Tensor) throws {
        try copy(upfirdn2d(x, taps: taps, up: up, down: down, pad0: pad0, pad1: pad1), into: destination)
    }

    public func biasActivationReusing(_ x: Tensor, bias: PreparedVector?, activation: Activation) throws -> Tensor {
        try biasActivation(x, bias: bias, activation: activation)
    }

    /// Runs a prepared convolution with the given epilogue into a new tensor.
    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue = .identity) throws -> Tensor {
        try conv2d(x, conv, epilogue: epilogue, into: nil)
    }
    /// Runs a prepared transposed convolution without epilogue.
    public func convTranspose2d(_ x: Tensor, _ conv: PreparedConvTranspose2d) throws -> Tensor {
        try convTranspose2d(x, conv, epilogue: .identity)
    }
    /// Runs a linear layer without epilogue.
    public func linear(_ x: Tensor, _ layer: PreparedLinear) throws -> Tensor {
        try linear(x, layer, epilogue: .identity)
    }
    /// x + y.
    public func add(_ x: Tensor, _ y: Tensor) throws -> Tensor { try add(x, y, alpha: 1, beta: 1) }
    /// A new tensor with the given shape and values.
    public func upload(shape: TensorShape, data: [Float]) throws -> Tensor {
        try upload(HostTensor(shape: shape.dims, data: data))
    }
}
