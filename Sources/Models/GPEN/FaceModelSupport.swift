import Checkpoint
import Foundation
import TensorCore

/// Errors of the face networks (GPEN, RetinaFace, ParseNet) beyond checkpoint errors; each names the model and the problem.
public enum FaceModelError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The checkpoint holds a different network (or an unsupported configuration of this one).
    case wrongArchitecture(model: String, found: String)
    /// The configuration cannot be built (e.g. a size that is not a power of two).
    case invalidConfiguration(model: String, reason: String)
    /// An input image or tensor does not fit the network.
    case invalidInput(model: String, reason: String)
    /// A fixed buffer in the checkpoint (e.g. a GPEN FIR kernel) differs from what the network computes with.
    case unexpectedBuffer(key: String, reason: String)

    public var description: String {
        switch self {
        case let .wrongArchitecture(m, f): return "\(m): the checkpoint holds \(f), not \(m)"
        case let .invalidConfiguration(m, r): return "\(m): invalid configuration: \(r)"
        case let .invalidInput(m, r): return "\(m): invalid input: \(r)"
        case let .unexpectedBuffer(k, r): return "buffer '\(k)': \(r)"
        }
    }
}

/// Reads weights from a state dict under a key prefix and converts them to host tensors.
struct WeightReader {
    let dict: StateDict
    let prefix: String

    init(_ dict: StateDict, prefix: String = "") { self.dict = dict; self.prefix = prefix }

    func key(_ k: String) -> String { prefix + k }

    /// The tensor under `k`, checked against `shape`, times `scale` (applied while reading: one pass, one copy).
    func host(_ k: String, _ shape: [Int], scale: Float = 1) throws -> HostTensor {
        try HostTensor(shape: shape, data: dict.floats(key(k), shape: shape, scale: scale))
    }

    func host(_ k: String, _ shape: [Int], reshapedTo newShape: [Int], scale: Float = 1) throws -> HostTensor {
        try HostTensor(shape: newShape, data: dict.floats(key(k), shape: shape, scale: scale))
    }

    func floats(_ k: String, _ shape: [Int]) throws -> [Float] { try dict.floats(key(k), shape: shape) }

    func shape(_ k: String) -> [Int]? { dict[key(k)]?.shape }

    func has(_ k: String) -> Bool { dict[key(k)] != nil }

    func markUsed(_ keys: [String]) { dict.markUsed(keys.map { key($0) }) }

    /// Conv weight followed by an inference BatchNorm (`<bn>.weight/.bias/.running_mean/.running_var`,
    /// `num_batches_tracked` accepted when present), folded into weight and bias.
    func convBN(conv: String, bn: String, shape: [Int], convBias: Bool = false, eps: Float = 1e-5) throws -> (HostTensor, HostTensor) {
        let w = try host(conv + ".weight", shape)
        let b = convBias ? try host(conv + ".bias", [shape[0]]) : nil
        let o = shape[0]
        let g = try host(bn + ".weight", [o]), be = try host(bn + ".bias", [o])
        let m = try host(bn + ".running_mean", [o]), v = try host(bn + ".running_var", [o])
        markUsed([bn + ".num_batches_tracked"])
        return try foldBatchNorm(weight: consume w, bias: b, gamma: g, beta: be, mean: m, variance: v, eps: eps)
    }
}
