import CDNNL
import Foundation
import TensorCore

// Prepared state of convolution-like layers and their weights: reordered once into the layout a primitive asks
// for, with the host copy released as soon as a reorderable copy exists.

/// Prepared state of a (transposed) convolution: host weights, bias, reordered weights per layout, primitives per shape.
/// The host copy is dropped once the first run has reordered the weights; a later layout is reordered from that copy.
final class ConvState: @unchecked Sendable {
    /// Host weights (in `weightMD`) until the first run's reordered copy exists.
    var weight: [Float]?
    let weightMD: dnnl_memory_desc_t      // the host layout (OIHW / GOIHW / IOHW ...)
    let bias: DeviceBuffer?
    let biasHost: [Float]?
    var prepared: [(md: dnnl_memory_desc_t, scale: Float, buffer: DeviceBuffer)] = []
    var scaledBias: [Float: DeviceBuffer] = [:]
    /// Transposed convolutions: (left/top, right/bottom) padding.
    var padding: (Int, Int) = (0, 0)
    /// Plans per input shape and epilogue (a tiled image needs up to four shapes per layer; a service sees more).
    var plans = LRUCache<ConvKey, ConvPlan>(capacity: 16)
    /// Fallbacks already reported for this layer (each is said once).
    var notes: Set<String> = []
    /// Plans oneDNN has no implementation for (asked once, not on every call).
    var unavailable: Set<ConvKey> = []
    /// OIHW weights in the weight pool for the own Winograd kernel (it transforms them on every call, which keeps the
    /// 36/9 = 4× larger transformed copy out of memory between calls); made on its first run.
    var oihw: DeviceBuffer?
    /// A transposed convolution run as ordinary convolutions (DNNLTransposedPhases.swift), which own the weights.
    var phases: [TransposedPhase]?
    /// "Nearest ×2 then this 3×3 convolution" as four 2×2 convolutions (phase a, b of the output), made on first use.
    var upsamplePhases: [(conv: PreparedConv2d, a: Int, b: Int)]?
    /// Whether oneDNN builds a Winograd convolution for a plan key (asked once for wide layers on AVX-512).
    var oneDNNWinograd: [ConvKey: Bool] = [:]

    init(weight: [Float], weightMD: dnnl_memory_desc_t, bias: DeviceBuffer?, biasHost: [Float]? = nil) {
        self.weight = weight; self.weightMD = weightMD; self.bias = bias; self.biasHost = biasHost
    }
}

/// A prepared vector's memory: the values zero-padded to the channel block, read as a plain 1×C×1×1 tensor or as a
/// blocked one (the same bytes).
final class VectorState {
    let plain: Tensor
    let blocked: Tensor
    init(plain: Tensor, blocked: Tensor) { self.plain = plain; self.blocked = blocked }
}

final class ConvPlan {
    let primitive: Primitive
    /// nil only in a validation plan, which never runs.
    let weights: DeviceBuffer?
    let weightsMD: dnnl_memory_desc_t
    let postArgs: [PostOpArg]
    let winograd: Bool
    /// Bias to pass (a pre-scaled copy when the output scale is folded into the weights).
    var bias: DeviceBuffer?
    init(primitive: Primitive, weights: DeviceBuffer?, weightsMD: dnnl_memory_desc_t, postArgs: [PostOpArg], winograd: Bool,
         bias: DeviceBuffer? = nil) {
        self.primitive = primitive; self.weights = weights; self.weightsMD = weightsMD; self.postArgs = postArgs
        self.winograd = winograd; self.bias = bias
    }
}

extension DNNLBackend {
    func uploadWeights(_ data: [Float], _ md: dnnl_memory_desc_t, into target: dnnl_memory_desc_t, op: String) throws -> DeviceBuffer {
        let buf = try weightPool.allocate(bytes: MD.size(target), zeroed: true)
        try data.withUnsafeBufferPointer { p in
            try reorder(md, UnsafeMutableRawPointer(mutating: p.baseAddress!), target, buf.pointer, op: op + " weights")
        }
        return buf
    }

    func uploadBias(_ bias: HostTensor?, op: String) throws -> DeviceBuffer? {
        guard let bias else { return nil }
        let buf = try weightPool.allocate(bytes: bias.count * 4)
        bias.data.withUnsafeBufferPointer { buf.floats.update(from: $0.baseAddress!, count: $0.count) }
        return buf
    }

    /// The weights of `state` times `scale` in layout `md`, reordered once and cached. The first copy comes from the
    /// host weights, which are then released (a GPEN-512 restore held them twice: 370 MiB more RSS); later layouts
    /// or scales are reordered and rescaled from the first copy.
    func weights(_ state: ConvState, _ md: dnnl_memory_desc_t, scale: Float = 1, op: String) throws -> DeviceBuffer {
        if let hit = state.prepared.first(where: { $0.scale == scale && MD.equal($0.md, md) }) { return hit.buffer }
        let buf: DeviceBuffer
        if let host = state.weight {
            buf = try uploadWeights(scale == 1 ? host : host.map { $0 * scale }, state.weightMD, into: md, op: op)
        } else {
            // The host copy goes only once a copy exists that oneDNN can reorder from (see below).
            guard let first = try reorderableCopy(state, op: op) else {
                throw TensorError.backendFailure(op: op + " weights", message: "no reorderable copy of the weights is left")
            }
            buf = try weightPool.allocate(bytes: MD.size(md), zeroed: true)
            try reorder(first.md, first.buffer.pointer, md, buf.pointer, op: op + " weights")
            if scale != first.scale {
                let f = scale / first.scale, v = buf.floats
                for i in 0..<(buf.byteCount / 4) { v[i] *= f }
            }
        }
        state.prepared.append((md, scale, buf))
        // oneDNN reorders out of plain and blocked formats only: a Winograd-format copy (format kind `wino`) cannot be
        // turned into any other layout, so the host copy stays until a blocked one exists (on AVX-512 CPUs a tile or
        // image size that picks direct convolution after a Winograd one needed it: "weights reorder … unimplemented").
        if scale != 0 && MD.isBlocked(md) { state.weight = nil }
        return buf
    }

    /// A prepared copy oneDNN can reorder from: the own Winograd kernel's OIHW copy, else the first blocked one.
    func reorderableCopy(_ state: ConvState, op: String) throws -> (md: dnnl_memory_desc_t, scale: Float, buffer: DeviceBuffer)? {
        if let o = state.oihw { return (state.weightMD, 1, o) }
        return state.prepared.first(where: { $0.scale != 0 && MD.isBlocked($0.md) })
    }

    /// The bias times `scale` (cached).
    func bias(_ state: ConvState, scale: Float) throws -> DeviceBuffer? {
        guard scale != 1, let host = state.biasHost else { return state.bias }
        if let b = state.scaledBias[scale] { return b }
        let buf = try weightPool.allocate(bytes: host.count * 4)
        for (i, v) in host.enumerated() { buf.floats[i] = v * scale }
        state.scaledBias[scale] = buf
        return buf
    }
}
