import CCUDA
import Foundation
import TensorCore

/// A forward captured once into a CUDA graph and replayed (`enhance forward --cuda-graph`, the study's "compile" knob):
/// one `cuGraphLaunch` instead of a launch and a cuDNN call per op. The graph replays into the device addresses it
/// was captured with: every activation of the capture comes from a pool of its own (PyTorch's private graph pool),
/// which never gives memory back while the graph lives (`BufferPool.keepsMemory`) and which eager work never draws
/// from; it owns its input and output tensors; weights and outgrown workspaces are kept while any graph lives.
public final class CUDAGraph: CapturedForward, @unchecked Sendable {
    // SAFETY: every use of the handles goes through `backend.sync` (its lock, its context current).
    let backend: CUDABackend
    let graph: CUgraph
    let exec: CUgraphExec
    /// The device tensor each replay reads its input from.
    public let input: Tensor
    /// The device tensors each replay writes.
    public let outputs: [Tensor]
    /// The pool every activation of the capture came from.
    let pool: BufferPool
    /// Its size, counted in the backend's statistics while the graph lives.
    let bytes: Int

    init(backend: CUDABackend, graph: CUgraph, exec: CUgraphExec, input: Tensor, outputs: [Tensor], pool: BufferPool) {
        self.backend = backend; self.graph = graph; self.exec = exec; self.input = input; self.outputs = outputs
        self.pool = pool; bytes = pool.memoryStats.reservedBytes
    }

    /// Uploads `host` into the captured input, replays the graph and downloads every output.
    public func run(_ host: HostTensor) throws -> [HostTensor] {
        try backend.sync {
            guard try host.tensorShape() == input.shape else {
                throw TensorError.invalidShape(op: "cuda graph", message: "input \(host.shape) but the graph was captured for \(input.shape.dims)")
            }
            try backend.store(host, into: input)
            try backend.check(backend.api.cuGraphLaunch!(exec, backend.stream), "cuGraphLaunch")
        }
        return try outputs.map { try backend.download($0) }
    }

    deinit {
        backend.sync {
            _ = backend.api.cuStreamSynchronize!(backend.stream)
            _ = backend.api.cuGraphExecDestroy!(exec)
            _ = backend.api.cuGraphDestroy!(graph)
            backend.graphBytes -= bytes
            pool.keepsMemory = false   // its memory goes back to the driver with the last of its tensors
            backend.graphReleased()
        }
    }
}

extension CUDABackend {
    /// The error of an operation a captured forward cannot contain.
    static func captureError(_ what: String) -> TensorError {
        .unsupported(op: "cuda graph", message: "cannot capture \(what): run the forward once eagerly first (same input shape) so plans, workspace, constants and buffers exist")
    }

    /// Captures `body` run on a device copy of `host` into a CUDA graph (stream capture in relaxed mode). Run `body`
    /// eagerly once before, on the same input shape: the capture must not upload, download, synchronise, grow the
    /// convolution workspace or free device memory, and it refuses those with a message naming the step.
    public func captureGraph(input host: HostTensor, _ body: (Tensor) throws -> [Tensor]) throws -> CUDAGraph {
        try sync {
            guard let begin = api.cuStreamBeginCapture, let end = api.cuStreamEndCapture,
                  let instantiate = api.cuGraphInstantiateWithFlags, api.cuGraphLaunch != nil,
                  api.cuGraphExecDestroy != nil, api.cuGraphDestroy != nil else {
                throw TensorError.unsupported(op: "cuda graph", message: "this driver lacks the graph entries (cuStreamBeginCapture … cuGraphLaunch)")
            }
            let own = BufferPool(allocator: pool.allocator)
            own.keepsMemory = true
            let input = try make(host.tensorShape(), op: "cuda graph input", pool: own)
            try store(host, into: input)
            liveGraphs += 1
            weightPool.keepsMemory = true
            var ok = false
            defer { if !ok { graphReleased() } }
            try check(begin(stream, CU_STREAM_CAPTURE_MODE_RELAXED), "cuStreamBeginCapture")
            capturing = true
            capturePool = own
            var outputs: [Tensor] = []
            var failure: Error?
            do { outputs = try body(input) } catch { failure = error }
            capturing = false
            capturePool = nil
            var g: CUgraph?
            let r = end(stream, &g)
            if let failure {
                if let g { _ = api.cuGraphDestroy!(g) }
                throw failure
            }
            try check(r, "cuStreamEndCapture (the capture was invalidated by a step a graph cannot hold)")
            guard let graph = g else { throw TensorError.unsupported(op: "cuda graph", message: "cuStreamEndCapture returned no graph") }
            var e: CUgraphExec?
            let ri = instantiate(&e, graph, 0)
            guard ri == CUDA_SUCCESS, let exec = e else {
                _ = api.cuGraphDestroy!(graph)
                try check(ri, "cuGraphInstantiateWithFlags")
                throw TensorError.unsupported(op: "cuda graph", message: "cuGraphInstantiateWithFlags returned no executable graph")
            }
            ok = true
            let captured = CUDAGraph(backend: self, graph: graph, exec: exec, input: input, outputs: outputs, pool: own)
            graphBytes += captured.bytes
            note("CUDA graph: forward captured for input \(input.shape.dims) (\(outputs.count) output\(outputs.count == 1 ? "" : "s"), \(captured.bytes >> 10) KiB of its own)")
            return captured
        }
    }

    /// One graph fewer; with none left, memory may go back to the driver again.
    func graphReleased() {
        sync {
            liveGraphs -= 1
            guard liveGraphs == 0 else { return }
            weightPool.keepsMemory = false
            if !retiredWorkspaces.isEmpty {
                _ = api.cuStreamSynchronize!(stream)
                for w in retiredWorkspaces { _ = api.cuMemFree!(w) }
                retiredWorkspaces.removeAll()
            }
        }
    }
}

extension CUDABackend: ForwardCapturing {
    public func captureForward(input: HostTensor, _ body: (Tensor) throws -> [Tensor]) throws -> any CapturedForward {
        try captureGraph(input: input, body)
    }
}
