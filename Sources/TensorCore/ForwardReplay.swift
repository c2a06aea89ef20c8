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

/// Host input to host outputs through a network's device forward, three ways:
/// - eagerly: upload, forward, download;
/// - recorded (`enableCapture()` on a `ForwardCapturing` backend): one eager run per new input shape, then a recording
///   that every later input of that shape replays. At most `capacity` recordings are kept (the least recently used
///   goes); each holds one forward's activations while it lives. A shape whose recording fails, or whose replay
///   fails, stays eager from then on, and the reason goes to `diagnostics`;
/// - merged (`mergeLimit` > 1): runs of the same input shape that arrive together from different callers (images of a
///   folder computing at once, each inside a `session`) go through the network as one batch along N, and each caller
///   gets its own slice of the outputs. The first caller waits until as many runs as there are open sessions (at most
///   `mergeLimit`) are there — for as long as another merged forward is running (the partners come back from it
///   with their next runs), then for at most `mergeWindow` seconds more (a partner busy with other work).
public final class ReplayedForward: @unchecked Sendable {
    // SAFETY: `state` guards the recording and counters, `merging` the groups and sessions; forwards run under
    // `execution` when `serial` or recording (a replay writes the recording's own input and output tensors).
    public let backend: any Backend
    /// One forward at a time (models whose forward keeps state between calls); recordings are always serial.
    public let serial: Bool
    private let body: (Tensor) throws -> [Tensor]
    private let state = NSLock()
    private let execution = NSLock()
    private var capturing = false
    private var recorded: LRUCache<[Int], any CapturedForward>
    private var eagerOnly: Set<[Int]> = []
    private var counts = (captures: 0, replays: 0, eager: 0, merged: 0)
    /// Receives one line per recording that could not be made.
    public var diagnostics: (@Sendable (String) -> Void)?
    /// Told how many runs shared each merged forward (the service's metrics).
    public var onMerged: (@Sendable (Int) -> Void)? {
        get { state.withLock { mergeObserver } }
        set { state.withLock { mergeObserver = newValue } }
    }
    private var mergeObserver: (@Sendable (Int) -> Void)?

    private let merging = NSCondition()
    private var limit = 1
    private var window = 0.02
    private var sessions = 0
    private var open: [[Int]: Group] = [:]
    /// Merged forwards running now, and when the last one ended.
    private var executing = 0
    private var lastEnd = Date.distantPast

    /// Runs gathered into one forward.
    private final class Group {
        var inputs: [HostTensor] = []
        var result: Result<[[HostTensor]], Error>?
    }

    /// Names the network in errors ("RRDBNet ×2").
    public let label: String

    /// `label` names the network in a non-finite output's error.
    public init(backend: any Backend, label: String = "forward", capacity: Int = 4, serial: Bool = false,
                body: @escaping (Tensor) throws -> [Tensor]) {
        self.backend = backend
        self.label = label
        self.serial = serial
        self.body = body
        recorded = LRUCache(capacity: max(1, capacity))
    }

    /// Records and replays from now on; throws `unsupported` when the backend cannot record a forward.
    public func enableCapture() throws {
        guard backend is any ForwardCapturing else {
            throw TensorError.unsupported(op: "graph replay", message: "\(backend.name) cannot record a forward (CUDA graphs need the cuda device)")
        }
        state.withLock { capturing = true }
    }

    /// Whether forwards are recorded and replayed.
    public var capturesForwards: Bool { state.withLock { capturing } }

    /// Most runs merged into one forward (1: none); `mergeWindow`: longest wait in seconds for the partners.
    public var mergeLimit: Int {
        get { merging.withLock { limit } }
        set { merging.withLock { limit = max(1, newValue) } }
    }
    public var mergeWindow: Double {
        get { merging.withLock { window } }
        set { merging.withLock { window = max(0, newValue) } }
    }

    /// Forwards recorded, replayed and run eagerly so far, and runs that shared a forward with another caller's.
    public var statistics: (captures: Int, replays: Int, eager: Int, merged: Int) { state.withLock { counts } }

    /// Runs `body` as one caller whose runs may merge with other open sessions' (one image of a folder).
    public func session<T>(_ body: () throws -> T) rethrows -> T {
        merging.withLock { sessions += 1 }
        defer {
            merging.lock()
            sessions -= 1
            merging.broadcast()   // a waiting first caller expects one partner fewer
            merging.unlock()
        }
        return try body()
    }

    /// The outputs of the forward on `input`; throws `TensorError.nonFinite` when one holds NaN or infinite values
    /// (an fp16 overflow, broken weights), which clamping would otherwise turn into black pixels.
    public func run(_ input: HostTensor) throws -> [HostTensor] {
        let outputs = try runUnchecked(input)
        for o in outputs { try o.requireFinite(label) }
        return outputs
    }

    private func runUnchecked(_ input: HostTensor) throws -> [HostTensor] {
        merging.lock()
        guard limit > 1 else {
            merging.unlock()
            return try execute(input)
        }
        if let g = open[input.shape], g.inputs.count < limit {
            // join the group that is forming, wait for its forward, take this caller's slice
            let slot = g.inputs.count
            g.inputs.append(input)
            merging.broadcast()
            while g.result == nil { merging.wait() }
            merging.unlock()
            return try g.result!.get()[slot]
        }
        let g = Group()
        g.inputs = [input]
        open[input.shape] = g
        let started = Date()
        while g.inputs.count < min(limit, max(1, sessions)) {
            if executing > 0 { merging.wait(); continue }
            let deadline = max(started, lastEnd).addingTimeInterval(window)
            if Date() >= deadline { break }
            _ = merging.wait(until: deadline)
        }
        if open[input.shape] === g { open[input.shape] = nil }
        let inputs = g.inputs
        executing += 1
        merging.unlock()
        let result = Result { try inputs.count == 1 ? [execute(input)] : split(execute(Self.concat(inputs)), parts: inputs.count) }
        if inputs.count > 1 {
            let observer = state.withLock { counts.merged += inputs.count; return mergeObserver }
            observer?(inputs.count)
        }
        merging.lock()
        executing -= 1
        lastEnd = Date()
        g.result = result
        merging.broadcast()
        merging.unlock()
        return try result.get()[0]
    }

    /// One forward of `input`: replayed, recorded or eager.
    private func execute(_ input: HostTensor) throws -> [HostTensor] {
        guard state.withLock({ capturing }), let recorder = backend as? any ForwardCapturing else {
            if serial { return try execution.withLock { try eager(input) } }
            return try eager(input)
        }
        return try execution.withLock {
            if let g = state.withLock({ recorded[input.shape] }) {
                do {
                    let out = try g.run(input)
                    state.withLock { counts.replays += 1 }
                    return out
                } catch where !isDeviceLoss(error) {
                    // a recording the driver will not replay: drop it, this shape runs eagerly from now on
                    state.withLock { recorded[input.shape] = nil; _ = eagerOnly.insert(input.shape) }
                    diagnostics?("graph replay: input \(input.shape) failed to replay (\(error)); it runs eagerly from now on")
                    return try eager(input)
                }
            }
            let out = try eager(input)
            if !state.withLock({ eagerOnly.contains(input.shape) }) {
                do {
                    let g = try recorder.captureForward(input: input, body)
                    state.withLock { recorded[input.shape] = g; counts.captures += 1 }
                } catch where !isDeviceLoss(error) {
                    state.withLock { _ = eagerOnly.insert(input.shape) }
                    diagnostics?("graph replay: input \(input.shape) runs eagerly: \(error)")
                }
            }
            return out
        }
    }

    private func eager(_ input: HostTensor) throws -> [HostTensor] {
        state.withLock { counts.eager += 1 }
        return try body(backend.upload(input)).map { try backend.download($0) }
    }

    /// Inputs of one shape [n, …] stacked along N: [k·n, …].
    static func concat(_ inputs: [HostTensor]) throws -> HostTensor {
        var shape = inputs[0].shape
        shape[0] *= inputs.count
        return try HostTensor(shape: shape, data: inputs.flatMap(\.data))
    }

    /// Each output of a merged forward cut into `parts` equal slices along N, one list of outputs per part.
    private func split(_ outputs: [HostTensor], parts: Int) throws -> [[HostTensor]] {
        let sliced = try outputs.map { o -> [HostTensor] in
            guard let n = o.shape.first, n % parts == 0 else {
                throw TensorError.invalidShape(op: "merged forward", message: "output \(o.shape) does not split into \(parts) parts along N")
            }
            var shape = o.shape
            shape[0] = n / parts
            let per = o.count / parts
            return try (0..<parts).map { try HostTensor(shape: shape, data: Array(o.data[($0 * per)..<(($0 + 1) * per)])) }
        }
        return (0..<parts).map { p in sliced.map { $0[p] } }
    }
}
