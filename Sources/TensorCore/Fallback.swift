import Foundation

/// The operations of `Backend` that compute (memory operations are every backend's own), for `supports(_:)`.
public enum BackendOp: String, CaseIterable, Sendable {
    case conv2d, convTranspose2d, linear, vector
    case activation, biasActivation, unary, add, multiply, affine, scaleChannels
    case concat, sliceChannels, pixelShuffle, pixelUnshuffle, upsampleNearest, resizeNearest, upfirdn2d, maxPool2d, reflectPad
    case softmax, pixelNorm, meanOverChannels
}

extension Backend {
    /// Every operation is the backend's own unless it says otherwise.
    public func supports(_ op: BackendOp) -> Bool { true }
}

/// Runs the operations a backend does not implement on the reference backend: the inputs are downloaded, the
/// operation runs on the host, the result is uploaded. Four copies per call — slow, but a new backend can land with
/// a few operations of its own and be tested op by op (see `PartialBackend`).
public final class ReferenceFallback: @unchecked Sendable {
    /// The backend the operations run on.
    public let reference = ReferenceBackend()
    private let lock = NSLock()
    private var count = 0

    public init() {}

    /// Operations run here so far.
    public var calls: Int { lock.withLock { count } }

    /// `x` (a tensor of `backend`) as a reference tensor.
    public func hosted(_ x: Tensor, from backend: any Backend) throws -> Tensor { try reference.upload(backend.download(x)) }

    /// `body` on the reference backend with `inputs` moved there; the result moved back to `backend`.
    public func run(_ inputs: [Tensor], on backend: any Backend, _ body: (ReferenceBackend, [Tensor]) throws -> Tensor) throws -> Tensor {
        lock.withLock { count += 1 }
        let moved = try inputs.map { try hosted($0, from: backend) }
        return try backend.upload(reference.download(body(reference, moved)))
    }

    /// The epilogue with its tensors moved to the reference backend.
    public func hosted(_ e: Epilogue, from backend: any Backend) throws -> Epilogue {
        var e = e
        e.channelScale = try e.channelScale.map { try hosted($0, from: backend) }
        e.residual = try e.residual.map { try hosted($0, from: backend) }
        return e
    }

    /// A reference-prepared layer inside a partial backend's prepared layer (its `payload`).
    func layer<T: AnyObject>(_ payload: AnyObject, owner: ObjectIdentifier, _ backendID: ObjectIdentifier, op: String) throws -> T {
        guard backendID == owner, let layer = payload as? T else { throw TensorError.foreignTensor(op: op) }
        return layer
    }
}

/// A backend that implements the memory operations and some of the compute ones, and gets every other operation
/// from the reference backend through `fallback` (the defaults below). It lists the operations it implements in
/// `nativeOps`; `supports(_:)` answers from that list, and parity tests report the rest as skipped.
public protocol PartialBackend: Backend {
    /// Runs the operations this backend does not implement.
    var fallback: ReferenceFallback { get }
    /// The compute operations this backend implements itself.
    var nativeOps: Set<BackendOp> { get }
}

extension PartialBackend {
    public func supports(_ op: BackendOp) -> Bool { nativeOps.contains(op) }

    private var id: ObjectIdentifier { ObjectIdentifier(self) }

    private func run(_ inputs: [Tensor], _ body: (ReferenceBackend, [Tensor]) throws -> Tensor) throws -> Tensor {
        try fallback.run(inputs, on: self, body)
    }

    public func prepareVector(_ values: [Float]) throws -> PreparedVector { PreparedVector(values: values, backendID: id) }

    public func prepareConv2d(weight: HostTensor, bias: HostTensor?, params: Conv2dParams) throws -> PreparedConv2d {
        let layer = try fallback.reference.prepareConv2d(weight: weight, bias: bias, params: params)
        return PreparedConv2d(params: params, hasBias: bias != nil, backendID: id, payload: layer)
    }

    public func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        let layer: PreparedConv2d = try fallback.layer(conv.payload, owner: id, conv.backendID, op: "conv2d")
        let e = try fallback.hosted(epilogue, from: self)
        let y = try run([x]) { r, t in try r.conv2d(t[0], layer, epilogue: e, into: nil) }
        guard let into else { return y }
        try copy(y, into: into)
        return into
    }

    public func prepareConvTranspose2d(weight: HostTensor, bias: HostTensor?, params: ConvTranspose2dParams) throws -> PreparedConvTranspose2d {
        let layer = try fallback.reference.prepareConvTranspose2d(weight: weight, bias: bias, params: params)
        return PreparedConvTranspose2d(params: params, hasBias: bias != nil, backendID: id, payload: layer)
    }

    public func convTranspose2d(_ x: Tensor, _ conv: PreparedConvTranspose2d, epilogue: Epilogue) throws -> Tensor {
        let layer: PreparedConvTranspose2d = try fallback.layer(conv.payload, owner: id, conv.backendID, op: "convTranspose2d")
        let e = try fallback.hosted(epilogue, from: self)
        return try run([x]) { r, t in try r.convTranspose2d(t[0], layer, epilogue: e) }
    }

    public func prepareLinear(weight: HostTensor, bias: HostTensor?) throws -> PreparedLinear {
        let layer = try fallback.reference.prepareLinear(weight: weight, bias: bias)
        return PreparedLinear(inFeatures: layer.inFeatures, outFeatures: layer.outFeatures, hasBias: bias != nil, backendID: id, payload: layer)
    }

    public func linear(_ x: Tensor, _ layer: PreparedLinear, epilogue: Epilogue) throws -> Tensor {
        let inner: PreparedLinear = try fallback.layer(layer.payload, owner: id, layer.backendID, op: "linear")
        let e = try fallback.hosted(epilogue, from: self)
        return try run([x]) { r, t in try r.linear(t[0], inner, epilogue: e) }
    }

    public func activation(_ x: Tensor, _ a: Activation) throws -> Tensor { try run([x]) { r, t in try r.activation(t[0], a) } }
    public func biasActivation(_ x: Tensor, bias: PreparedVector?, activation a: Activation) throws -> Tensor {
        try run([x]) { r, t in try r.biasActivation(t[0], bias: bias, activation: a) }
    }
    public func unary(_ x: Tensor, _ op: UnaryOp) throws -> Tensor { try run([x]) { r, t in try r.unary(t[0], op) } }
    public func add(_ x: Tensor, _ y: Tensor, alpha: Float, beta: Float) throws -> Tensor {
        try run([x, y]) { r, t in try r.add(t[0], t[1], alpha: alpha, beta: beta) }
    }
    public func multiply(_ x: Tensor, _ y: Tensor) throws -> Tensor { try run([x, y]) { r, t in try r.multiply(t[0], t[1]) } }
    public func affine(_ x: Tensor, scale: Float, shift: Float) throws -> Tensor {
        try run([x]) { r, t in try r.affine(t[0], scale: scale, shift: shift) }
    }
    public func scaleChannels(_ x: Tensor, by s: Tensor) throws -> Tensor { try run([x, s]) { r, t in try r.scaleChannels(t[0], by: t[1]) } }
    public func concat(_ xs: [Tensor]) throws -> Tensor { try run(xs) { r, t in try r.concat(t) } }
    public func sliceChannels(_ x: Tensor, _ range: Range<Int>) throws -> Tensor { try run([x]) { r, t in try r.sliceChannels(t[0], range) } }
    public func pixelShuffle(_ x: Tensor, factor: Int) throws -> Tensor { try run([x]) { r, t in try r.pixelShuffle(t[0], factor: factor) } }
    public func pixelUnshuffle(_ x: Tensor, factor: Int) throws -> Tensor { try run([x]) { r, t in try r.pixelUnshuffle(t[0], factor: factor) } }
    public func upsampleNearest(_ x: Tensor, factor: Int) throws -> Tensor { try run([x]) { r, t in try r.upsampleNearest(t[0], factor: factor) } }
    public func resizeNearest(_ x: Tensor, height: Int, width: Int) throws -> Tensor {
        try run([x]) { r, t in try r.resizeNearest(t[0], height: height, width: width) }
    }
    public func upfirdn2d(_ x: Tensor, taps: [Float], up: Int, down: Int, pad0: Int, pad1: Int) throws -> Tensor {
        try run([x]) { r, t in try r.upfirdn2d(t[0], taps: taps, up: up, down: down, pad0: pad0, pad1: pad1) }
    }
    public func maxPool2d(_ x: Tensor, kernel: Int, stride: Int, padding: Int) throws -> Tensor {
        try run([x]) { r, t in try r.maxPool2d(t[0], kernel: kernel, stride: stride, padding: padding) }
    }
    public func reflectPad(_ x: Tensor, top: Int, bottom: Int, left: Int, right: Int) throws -> Tensor {
        try run([x]) { r, t in try r.reflectPad(t[0], top: top, bottom: bottom, left: left, right: right) }
    }
    public func softmax(_ x: Tensor, axis: Int) throws -> Tensor { try run([x]) { r, t in try r.softmax(t[0], axis: axis) } }
    public func pixelNorm(_ x: Tensor, eps: Float) throws -> Tensor { try run([x]) { r, t in try r.pixelNorm(t[0], eps: eps) } }
    public func meanOverChannels(_ x: Tensor) throws -> Tensor { try run([x]) { r, t in try r.meanOverChannels(t[0]) } }
}
