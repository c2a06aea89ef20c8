import CCUDA
import TensorCore

/// A profile in progress (`CUDABackend.startProfile`): two events on the stream around each kernel launch, cuDNN call
/// and copy, read when the profile finishes — the device's own time per call, with no synchronisation between calls,
/// so the calls queue and overlap the host as they do unprofiled. Launch gaps fall between the events, uncounted.
final class CUDAProfileRecorder {
    struct Mark { let kind: OpProfile.Kind; let name: String; let start: CUevent; let end: CUevent }
    /// Keeps the context alive for the events' sake.
    let handles: CUDAHandles
    var marks: [Mark] = []
    private var spare: [CUevent] = []

    init(handles: CUDAHandles) { self.handles = handles }

    /// An event for timing (reused after `read`).
    func event() throws -> CUevent {
        if let e = spare.popLast() { return e }
        var e: CUevent?
        try handles.lib.check(handles.lib.api.cuEventCreate!(&e, CU_EVENT_DEFAULT.rawValue), "cuEventCreate")
        return e!
    }

    func recycle(_ events: CUevent...) { spare += events }

    /// A cuDNN math type (its number, as the plans keep it) in words, for the profile's rows.
    static func mathName(_ raw: String) -> String {
        switch raw {
        case "\(CUDNN_DEFAULT_MATH.rawValue)": "default math"
        case "\(CUDNN_TENSOR_OP_MATH.rawValue)": "tensor ops"
        case "\(CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION.rawValue)": "tensor ops, down-conversion"
        case "\(CUDNN_FMA_MATH.rawValue)": "FMA, no TF32"
        default: "math type \(raw)"
        }
    }

    /// The seconds of every mark (their stream must have been synchronised), summed per name.
    func read() throws -> OpProfile {
        var collector = OpProfileCollector()
        for m in marks {
            var ms: Float = 0
            try handles.lib.check(handles.lib.api.cuEventElapsedTime!(&ms, m.start, m.end), "cuEventElapsedTime (\(m.name))")
            collector.add(m.kind, m.name, seconds: Double(ms) / 1000)
            spare += [m.start, m.end]
        }
        marks = []
        return collector.profile(clock: "CUDA events around each call: the GPU's time per call; launch gaps and host work between calls are not counted")
    }

    deinit {
        let api = handles.lib.api
        _ = api.cuCtxSetCurrent!(handles.context)
        for e in spare + marks.flatMap({ [$0.start, $0.end] }) { _ = api.cuEventDestroy!(e) }
    }
}

extension CUDABackend {
    public func startProfile() throws -> Bool {
        sync { profiler = CUDAProfileRecorder(handles: handles) }
        return true
    }

    public func finishProfile() throws -> OpProfile? {
        try sync {
            guard let p = profiler else { return nil }
            defer { profiler = nil }
            try check(api.cuStreamSynchronize!(stream), "cuStreamSynchronize (profile)")
            return try p.read()
        }
    }

    /// Runs `body` — one launch, cuDNN call or copy queued on the stream — between two events while a profile runs
    /// (not inside a graph capture: there an event would become part of the graph).
    func timed<T>(_ kind: OpProfile.Kind, _ name: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
        guard let p = profiler, !capturing else { return try body() }
        let start = try p.event(), end = try p.event()
        do {
            try check(api.cuEventRecord!(start, stream), "cuEventRecord")
            let result = try body()
            try check(api.cuEventRecord!(end, stream), "cuEventRecord")
            p.marks.append(.init(kind: kind, name: name(), start: start, end: end))
            return result
        } catch {
            p.recycle(start, end)
            throw error
        }
    }
}
