import Foundation

/// Parameters of a 2-D convolution. Weight layout OIHW: [outChannels, inChannels/groups, kernelH, kernelW].
/// Output size: (H + padTop + padBottom − kernelH) / strideH + 1 (likewise W). Dilation is always 1.
public struct Conv2dParams: Hashable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var kernelH: Int
    public var kernelW: Int
    public var strideH: Int
    public var strideW: Int
    public var padTop: Int
    public var padBottom: Int
    public var padLeft: Int
    public var padRight: Int
    public var groups: Int

    /// Square kernel, equal stride and symmetric zero padding on all sides (PyTorch `Conv2d`).
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1) {
        self.init(inChannels: inChannels, outChannels: outChannels, kernelH: kernel, kernelW: kernel,
                  strideH: stride, strideW: stride, padTop: padding, padBottom: padding,
                  padLeft: padding, padRight: padding, groups: groups)
    }

    /// Full form with separate kernel, stride and padding per side.
    public init(inChannels: Int, outChannels: Int, kernelH: Int, kernelW: Int, strideH: Int, strideW: Int,
                padTop: Int, padBottom: Int, padLeft: Int, padRight: Int, groups: Int = 1) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernelH = kernelH; self.kernelW = kernelW
        self.strideH = strideH; self.strideW = strideW
        self.padTop = padTop; self.padBottom = padBottom; self.padLeft = padLeft; self.padRight = padRight
        self.groups = groups
    }

    /// Expected weight shape [O, I/groups, kH, kW].
    public var weightShape: [Int] { [outChannels, inChannels / max(groups, 1), kernelH, kernelW] }

    /// Output spatial size for an input of size h×w.
    public func outputSize(h: Int, w: Int) -> (h: Int, w: Int) {
        ((h + padTop + padBottom - kernelH) / strideH + 1, (w + padLeft + padRight - kernelW) / strideW + 1)
    }

    /// Throws when the parameters are inconsistent.
    public func validate(op: String = "conv2d") throws {
        guard inChannels > 0, outChannels > 0, kernelH > 0, kernelW > 0, strideH > 0, strideW > 0,
              padTop >= 0, padBottom >= 0, padLeft >= 0, padRight >= 0, groups > 0,
              inChannels % groups == 0, outChannels % groups == 0 else {
            throw TensorError.invalidShape(op: op, message: "bad parameters \(self)")
        }
    }
}

/// Parameters of a 2-D transposed convolution (PyTorch `ConvTranspose2d`, dilation 1).
/// Weight layout IOHW: [inChannels, outChannels/groups, kernelH, kernelW].
/// Output size: (H − 1)·stride − 2·padding + kernel + outputPadding.
public struct ConvTranspose2dParams: Hashable, Sendable {
    public var inChannels: Int
    public var outChannels: Int
    public var kernel: Int
    public var stride: Int
    public var padding: Int
    public var outputPadding: Int
    public var groups: Int

    /// Creates the parameters.
    public init(inChannels: Int, outChannels: Int, kernel: Int, stride: Int = 2, padding: Int = 0,
                outputPadding: Int = 0, groups: Int = 1) {
        self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
        self.stride = stride; self.padding = padding; self.outputPadding = outputPadding; self.groups = groups
    }

    /// Expected weight shape [I, O/groups, k, k].
    public var weightShape: [Int] { [inChannels, outChannels / max(groups, 1), kernel, kernel] }

    /// Output spatial size for an input of size h×w.
    public func outputSize(h: Int, w: Int) -> (h: Int, w: Int) {
        ((h - 1) * stride - 2 * padding + kernel + outputPadding, (w - 1) * stride - 2 * padding + kernel + outputPadding)
    }

    /// Throws when the parameters are inconsistent.
    public func validate() throws {
        guard inChannels > 0, outChannels > 0, kernel > 0, stride > 0, padding >= 0, outputPadding >= 0,
              outputPadding < stride, groups > 0, inChannels % groups == 0, outChannels % groups == 0,
              kernel > 2 * padding - outputPadding || padding == 0 else {
            throw TensorError.invalidShape(op: "convTranspose2d", message: "bad parameters \(self)")
        }
    }
}

/// Element-wise activation applied on its own or fused into a conv/linear epilogue.
public enum Activation: Hashable, Sendable {
    /// Identity.
    case none
    /// max(x, 0).
    case relu
    /// x if x ≥ 0, else slope·x.
    case leakyReLU(slope: Float)
    /// gain · leakyReLU(x, slope); GPEN's FusedLeakyReLU is slope 0.2, gain √2.
    case scaledLeakyReLU(slope: Float, gain: Float)
    /// PReLU with one slope per channel (count must equal C), prepared by the backend that runs it.
    case prelu(slopes: PreparedVector)
    /// 1 / (1 + e^−x).
    case sigmoid

    /// Applies the activation to one value of channel `c` (reference semantics).
    @inlinable
    public func apply(_ x: Float, channel c: Int) -> Float {
        switch self {
        case .none: return x
        case .relu: return x > 0 ? x : 0
        case let .leakyReLU(s): return x >= 0 ? x : x * s
        case let .scaledLeakyReLU(s, g): return (x >= 0 ? x : x * s) * g
        case let .prelu(slopes): return x >= 0 ? x : x * slopes.values[c]
        case .sigmoid: return 1 / (1 + _exp(-x))
        }
    }
}

@usableFromInline func _exp(_ x: Float) -> Float { Foundation.exp(x) }
@usableFromInline func _tanh(_ x: Float) -> Float { Foundation.tanh(x) }

/// What happens to a conv/linear result before it is stored, in this order:
/// 1. acc = conv(x, W) + bias;
/// 2. acc *= channelScale[n, c] when `channelScale` (a runtime tensor of shape N×C×1×1) is set;
/// 3. acc = activation(acc);
/// 4. acc *= outputScale;
/// 5. acc += residualScale · residual[n, c, h, w] when `residual` (same shape as the output) is set.
public struct Epilogue: @unchecked Sendable {
    /// Per-output-channel runtime multiplier, shape N×C_out×1×1 (e.g. GPEN demodulation).
    public var channelScale: Tensor?
    /// Activation after the channel scale.
    public var activation: Activation
    /// Scalar multiplier after the activation.
    public var outputScale: Float
    /// Tensor added after scaling (e.g. RRDB's x in x + 0.2·y).
    public var residual: Tensor?
    /// Multiplier of the residual.
    public var residualScale: Float

    /// Creates an epilogue; the default is a plain conv + bias.
    public init(channelScale: Tensor? = nil, activation: Activation = .none, outputScale: Float = 1,
                residual: Tensor? = nil, residualScale: Float = 1) {
        self.channelScale = channelScale; self.activation = activation; self.outputScale = outputScale
        self.residual = residual; self.residualScale = residualScale
    }

    /// Plain conv + bias.
    public static let identity = Epilogue()
    /// Conv + bias + activation.
    public static func activation(_ a: Activation) -> Epilogue { Epilogue(activation: a) }
}

/// A per-channel vector — a bias, PReLU slopes — prepared once by one backend, like weights (a backend with its own
/// memory keeps a copy there, so running a layer copies nothing from the host). Equality is identity.
public final class PreparedVector: Hashable, @unchecked Sendable, CustomStringConvertible {
    /// The values (a host copy: reference semantics and validation).
    public let values: [Float]
    /// The backend that prepared it.
    public let backendID: ObjectIdentifier
    /// Backend-specific state (nil when the backend reads `values`).
    public let payload: AnyObject?

    /// Creates a prepared vector (backends only).
    public init(values: [Float], backendID: ObjectIdentifier, payload: AnyObject? = nil) {
        self.values = values; self.backendID = backendID; self.payload = payload
    }

    /// Number of channels.
    public var count: Int { values.count }

    public static func == (a: PreparedVector, b: PreparedVector) -> Bool { a === b }
    public func hash(into hasher: inout Hasher) { hasher.combine(ObjectIdentifier(self)) }
    public var description: String { "PreparedVector[\(count)]" }
}

/// A convolution whose weights were prepared (reordered, cached) by one backend.
public final class PreparedConv2d: @unchecked Sendable {
    /// The convolution parameters.
    public let params: Conv2dParams
    /// Whether a bias was given.
    public let hasBias: Bool
    /// The backend that prepared it.
    public let backendID: ObjectIdentifier
    /// Backend-specific state (weights in the backend's layout, primitive cache).
    public let payload: AnyObject

    /// Creates a prepared conv (backends only).
    public init(params: Conv2dParams, hasBias: Bool, backendID: ObjectIdentifier, payload: AnyObject) {
        self.params = params; self.hasBias = hasBias; self.backendID = backendID; self.payload = payload
    }
}

/// A transposed convolution prepared by one backend.
public final class PreparedConvTranspose2d: @unchecked Sendable {
    /// The parameters.
    public let params: ConvTranspose2dParams
    /// Whether a bias was given.
    public let hasBias: Bool
    /// The backend that prepared it.
    public let backendID: ObjectIdentifier
    /// Backend-specific state.
    public let payload: AnyObject

    /// Creates a prepared transposed conv (backends only).
    public init(params: ConvTranspose2dParams, hasBias: Bool, backendID: ObjectIdentifier, payload: AnyObject) {
        self.params = params; self.hasBias = hasBias; self.backendID = backendID; self.payload = payload
    }
}

/// A fully connected layer prepared by one backend. Weight [outFeatures, inFeatures]; the input N×C×H×W is
/// flattened in (c, h, w) order, so inFeatures = C·H·W; the output is N×outFeatures×1×1.
public final class PreparedLinear: @unchecked Sendable {
    /// Input features (C·H·W of the input).
    public let inFeatures: Int
    /// Output features.
    public let outFeatures: Int
    /// Whether a bias was given.
    public let hasBias: Bool
    /// The backend that prepared it.
    public let backendID: ObjectIdentifier
    /// Backend-specific state.
    public let payload: AnyObject

    /// Creates a prepared linear layer (backends only).
    public init(inFeatures: Int, outFeatures: Int, hasBias: Bool, backendID: ObjectIdentifier, payload: AnyObject) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.hasBias = hasBias
        self.backendID = backendID; self.payload = payload
    }
}

/// Folds an inference BatchNorm (y = (x − mean)/√(var + eps)·gamma + beta) that follows a convolution into the
/// convolution's weight (OIHW) and bias. Returns the new weight and bias.
/// `weight` is consumed: handed over as its last use (`consume w`), it is scaled in place instead of copied.
public func foldBatchNorm(weight: consuming HostTensor, bias: HostTensor?, gamma: HostTensor, beta: HostTensor,
                          mean: HostTensor, variance: HostTensor, eps: Float = 1e-5) throws -> (weight: HostTensor, bias: HostTensor) {
    guard let o = weight.shape.first, weight.shape.count == 4 else {
        throw TensorError.invalidShape(op: "foldBatchNorm", message: "weight must be OIHW, got \(weight.shape)")
    }
    for (name, t) in [("gamma", gamma), ("beta", beta), ("running_mean", mean), ("running_var", variance)] + (bias.map { [("bias", $0)] } ?? []) {
        guard t.count == o else { throw TensorError.shapeMismatch(op: "foldBatchNorm \(name)", expected: "[\(o)]", actual: "\(t.shape)") }
    }
    let per = weight.count / o
    var w = consume weight
    var b = HostTensor(zeros: [o])
    for c in 0..<o {
        let s = gamma.data[c] / (variance.data[c] + eps).squareRoot()
        w.data.withUnsafeMutableBufferPointer { d in for i in (c * per)..<((c + 1) * per) { d[i] *= s } }
        b.data[c] = ((bias?.data[c] ?? 0) - mean.data[c]) * s + beta.data[c]
    }
    return (w, b)
}
