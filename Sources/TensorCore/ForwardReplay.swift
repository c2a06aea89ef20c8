import Foundation

/// A backend that can record a network's forward once and replay it without issuing each op again (CUDA graphs:
/// the study's "compile" knob, PyTorch's `torch.cuda.graphs`).
public protocol ForwardCapturing: Backend {
    /// Records `body` run on a device copy of `input`; every replay takes an input of the same shape. `body` must have
    /// run eagerly on this shape before, so that everything it prepares lazily (plans, workspace, constants) exists.
    func captureForward(input: HostTensor, _ body: (Tensor) throws -> [Tensor]) throws -> any CapturedForward
}

/// A recorded forward: each `run` writes the input into the recorded input tensor, replays, and downloads every output.
public protocol CapturedForward: AnyObject, Sendable {
    func run(_ input: HostTensor) throws -> [HostTensor]
}

/// Host input to host outputs through a network's device forward: eagerly (upload, forward, download), or — once
/// `enableCapture()` was called on a `ForwardCapturing` backend — by replaying a forward recorded per input shape
/// after one eager run of that shape. At most `capacity` recordings are kept (the least recently used goes); each holds
/// the memory of one forward's activations for as long as it lives. A shape whose recording fails runs eagerly from
/// then on, and the reason goes to `diagnostics`.
public final class ReplayedForward: @unchecked Sendable {
    // SAFETY: the mutable state is guarded by `lock`.
    public let backend: any Backend
    private let body: (Tensor) throws -> [Tensor]
    private let lock = NSLock()
    private var capturing = false
    private var recorded: LRUCache<[Int], any CapturedForward>
    private var eagerOnly: Set<[Int]> = []
    private var counts = (captures: 0, replays: 0, eager: 0)
    /// Receives one line per recording that could not be made.
    public var diagnostics: (@Sendable (String) -> Void)?

    public init(backend: any Backend, capacity: Int = 4, body: @escaping (Tensor) throws -> [Tensor]) {
        self.backend = backend
        self.body = body
        recorded = LRUCache(capacity: max(1, capacity))
    }

    /// Records and replays from now on; throws `unsupported` when the backend cannot record a forward.
    public func enableCapture() throws {
        guard backend is any ForwardCapturing else {
            throw TensorError.unsupported(op: "graph replay", message: "\(backend.name) cannot record a forward (CUDA graphs need the cuda device)")
        }
        lock.withLock { capturing = true }
    }

    /// Whether forwards are recorded and replayed.
    public var capturesForwards: Bool { lock.withLock { capturing } }

    /// Forwards recorded, replayed and run eagerly so far.
    public var statistics: (captures: Int, replays: Int, eager: Int) { lock.withLock { counts } }

    /// The outputs of the forward on `input`.
    public func run(_ input: HostTensor) throws -> [HostTensor] {
        try lock.withLock {
            guard capturing, let recorder = backend as? any ForwardCapturing else { return try eager(input) }
            if let g = recorded[input.shape] {
                counts.replays += 1
                return try g.run(input)
            }
            let out = try eager(input)
            if !eagerOnly.contains(input.shape) {
                do {
                    recorded[input.shape] = try recorder.captureForward(input: input, body)
                    counts.captures += 1
                } catch {
                    eagerOnly.insert(input.shape)
                    diagnostics?("graph replay: input \(input.shape) runs eagerly: \(error)")
                }
            }
            return out
        }
    }

    private func eager(_ input: HostTensor) throws -> [HostTensor] {
        counts.eager += 1
        return try body(backend.upload(input)).map { try backend.download($0) }
    }
}
