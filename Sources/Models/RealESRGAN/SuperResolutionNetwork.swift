import Checkpoint
import TensorCore

/// A super-resolution network on a backend: input 1×C×H×W float32 (RGB in [0, 1], **N, C, H, W**), output
/// 1×C×(scale·H)×(scale·W).
public protocol SuperResolutionNetwork: AnyObject, Sendable {
    /// The backend the weights were prepared on; inputs must come from it.
    var backend: any Backend { get }
    /// Short architecture name ("RRDBNet", "SRVGGNetCompact").
    var architectureName: String { get }
    /// Output size divided by input size (1, 2 or 4 for RRDBNet, `upscale` for SRVGGNetCompact).
    var scale: Int { get }
    /// Channels of the input and the output (3 for every released model).
    var channels: Int { get }
    /// H and W of the input must be multiples of this (4 for ×1 RRDBNet, 2 for ×2, 1 otherwise).
    var inputMultiple: Int { get }
    /// Radius of the receptive field in input pixels: an output pixel depends only on input pixels at most this
    /// far away, so tiles whose `tile_pad` is at least this radius reproduce the whole-image result.
    var receptiveFieldRadius: Int { get }
    /// Number of weights (parameters) loaded.
    var parameterCount: Int { get }
    /// Estimated peak bytes of live activations per input pixel during `forward` (float32, whole pass).
    var activationBytesPerInputPixel: Int { get }
    /// Estimated peak bytes of live activations of a forward on an N×C×H×W input (float32). Networks whose peak does
    /// not grow with the area (RRDBNet runs its ×4 stage in row bands) say so here; the default is the per-pixel
    /// figure times the pixels.
    func activationBytes(height: Int, width: Int, batch: Int) -> Int
    /// Runs the network on x (1×C×H×W, **N, C, H, W**); H and W must be multiples of `inputMultiple`.
    func forward(_ x: Tensor) throws -> Tensor
}

extension SuperResolutionNetwork {
    public func activationBytes(height: Int, width: Int, batch: Int) -> Int {
        activationBytesPerInputPixel * height * width * batch
    }
}

/// Errors raised while building or running a Real-ESRGAN network.
public enum RealESRGANError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The weights do not fit the architecture (missing/unexpected key, shape mismatch), naming the file.
    case weights(file: String, reason: String)
    /// The configuration is not one this implementation supports.
    case unsupportedConfiguration(String)
    /// The input tensor is not usable (wrong channel count, size not a multiple of the network's requirement).
    case invalidInput(String)
    /// The checkpoint holds a different network.
    case wrongArchitecture(file: String, found: String)

    public var description: String {
        switch self {
        case let .weights(file, reason): return "\(file): weights do not fit: \(reason)"
        case let .unsupportedConfiguration(m): return "unsupported configuration: \(m)"
        case let .invalidInput(m): return "invalid input: \(m)"
        case let .wrongArchitecture(file, found): return "\(file): holds a \(found) network, not a Real-ESRGAN network (RRDBNet or SRVGGNetCompact)"
        }
    }
}

/// A source of named float32 weights with strict accounting: every key must be consumed exactly as asked.
public protocol WeightSource: Sendable {
    /// The values of `key` (row-major, PyTorch layout) after checking that its shape is `shape`.
    /// Throws `CheckpointError.missingKey` / `.shapeMismatch` naming the dotted key and both shapes.
    func weights(_ key: String, shape: [Int]) throws -> [Float]
    /// Throws `CheckpointError.unexpectedKeys` when keys were never consumed.
    func verifyAllUsed() throws
}

extension StateDict: WeightSource {
    /// The float values of `key`, shape-checked (strict load).
    public func weights(_ key: String, shape: [Int]) throws -> [Float] { try floats(key, shape: shape) }
}

/// Deep network interpolation (Real-ESRGAN `dni`): every tensor is `wa·a + wb·b`; both state dicts must hold the
/// same keys with the same shapes.
public struct DNIWeights: WeightSource {
    /// The first state dict (weight `wa`).
    public let a: StateDict
    /// The second state dict (weight `wb`).
    public let b: StateDict
    /// Weight of `a`.
    public let wa: Float
    /// Weight of `b`.
    public let wb: Float

    /// Creates the blend `wa·a + wb·b`.
    public init(a: StateDict, b: StateDict, wa: Float, wb: Float) {
        self.a = a; self.b = b; self.wa = wa; self.wb = wb
    }

    /// The blended values of `key` (both tensors shape-checked).
    public func weights(_ key: String, shape: [Int]) throws -> [Float] {
        let x = try a.floats(key, shape: shape)
        let y = try b.floats(key, shape: shape)
        var out = [Float](repeating: 0, count: x.count)
        for i in 0..<x.count { out[i] = wa * x[i] + wb * y[i] }
        return out
    }

    /// Both state dicts must have been consumed completely.
    public func verifyAllUsed() throws {
        try a.verifyAllUsed()
        try b.verifyAllUsed()
    }
}

/// Loads a conv weight [O, I, 3, 3] and bias [O] from `prefix.weight` / `prefix.bias` and prepares it.
func prepareConv3x3(_ backend: any Backend, _ w: any WeightSource, _ prefix: String, inChannels: Int, outChannels: Int) throws -> PreparedConv2d {
    let weight = try w.weights("\(prefix).weight", shape: [outChannels, inChannels, 3, 3])
    let bias = try w.weights("\(prefix).bias", shape: [outChannels])
    return try backend.prepareConv2d(
        weight: HostTensor(shape: [outChannels, inChannels, 3, 3], data: weight),
        bias: HostTensor(shape: [outChannels], data: bias),
        params: Conv2dParams(inChannels: inChannels, outChannels: outChannels, kernel: 3, padding: 1))
}
