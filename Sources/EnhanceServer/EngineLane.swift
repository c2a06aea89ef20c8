import Foundation
import TensorCore

/// Runs blocking work (decoding, model passes, encoding) on threads of its own, so Swift concurrency's small
/// cooperative pool — which also serves /healthz, /metrics and admission — is never held by a multi-second pass.
final class BlockingExecutor: TaskExecutor, @unchecked Sendable {
    private let queue = DispatchQueue(label: "enhance.serve.blocking", attributes: .concurrent)

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}

/// The engine: one backend shared by every request, used by one model pass at a time (oneDNN already spreads one
/// pass over every core; two at once would only contend) — or by up to `concurrency` (`--image-batch`: their
/// same-shape network runs merge into one batch). Each use is measured in a `MemoryScope` of its own, so a request's
/// peak is its own tensors' whatever else the process does (a merged forward counts for the request that ran it).
final class EngineLane: @unchecked Sendable {
    let backend: any Backend
    private let gate: AsyncGate
    let executor = BlockingExecutor()

    init(backend: any Backend, concurrency: Int = 1) {
        self.backend = backend
        gate = AsyncGate(permits: concurrency)
    }

    /// The result of one exclusive use and the engine's peak tensor bytes above what was live before it.
    struct Measured<T: Sendable>: Sendable {
        let value: T
        let peakBytes: Int
    }

    /// Runs `body` with the engine to itself on a blocking thread, measuring its tensor peak.
    func run<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> Measured<T> {
        try await gate.acquire()
        defer { Task { await gate.release() } }
        return try await withTaskExecutorPreference(executor) {
            let scope = MemoryScope()
            let v = try await scope.measure { try await body() }
            return Measured(value: v, peakBytes: scope.peakLiveBytes)
        }
    }

    /// Runs blocking work that does not touch the engine (decode, encode) off the cooperative pool.
    func offload<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await withTaskExecutorPreference(executor) { try await body() }
    }
}

/// A first-in-first-out async semaphore (a mutex with one permit).
actor AsyncGate {
    private var free: Int
    private var waiters: [CheckedContinuation<Void, Never>] = []

    init(permits: Int = 1) { free = max(1, permits) }

    func acquire() async throws {
        if free > 0 { free -= 1; return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        if waiters.isEmpty { free += 1 } else { waiters.removeFirst().resume() }
    }
}
