import Foundation

/// Admission by memory: each request reserves its estimated peak against a fixed budget before it runs. A request
/// that does not fit now waits in a bounded first-in-first-out queue (a large request at the head is not overtaken,
/// so it cannot starve); a full queue, a request larger than the whole budget, or a draining server is refused at
/// once. At most `maxActive` requests hold reservations at a time. Cancelling a waiting task (client gone, time out)
/// removes it from the queue.
public actor MemoryAdmission {
    /// Why a request was not admitted.
    public enum Refusal: Error, Sendable, Equatable {
        /// The queue already holds `maxQueue` requests.
        case queueFull
        /// The request alone needs more than the whole budget.
        case tooLarge(needed: Int, capacity: Int)
        /// The server is shutting down.
        case draining
    }

    /// The budget, in bytes.
    public let capacity: Int
    /// Requests admitted at once.
    public let maxActive: Int
    /// Requests that may wait.
    public let maxQueue: Int

    /// Bytes reserved by admitted requests.
    public private(set) var reserved = 0
    /// Admitted requests holding a reservation.
    public private(set) var active = 0
    private var waiters: [Waiter] = []
    private var nextID: UInt64 = 0
    private var draining = false
    /// Called after every change with (queue depth, active, reserved bytes).
    private let observe: @Sendable (Int, Int, Int) -> Void

    private struct Waiter {
        let id: UInt64
        let bytes: Int
        let continuation: CheckedContinuation<Void, any Error>
    }

    public init(capacity: Int, maxActive: Int, maxQueue: Int, observe: @escaping @Sendable (Int, Int, Int) -> Void = { _, _, _ in }) {
        self.capacity = capacity
        self.maxActive = max(1, maxActive)
        self.maxQueue = max(0, maxQueue)
        self.observe = observe
    }

    /// Requests waiting.
    public var queueDepth: Int { waiters.count }

    /// Reserved bytes, admitted requests and waiting requests at one moment.
    public struct Snapshot: Sendable, Equatable {
        public let reserved: Int, active: Int, queued: Int
        public init(reserved: Int, active: Int, queued: Int) { self.reserved = reserved; self.active = active; self.queued = queued }
    }
    public var snapshot: Snapshot { Snapshot(reserved: reserved, active: active, queued: waiters.count) }

    /// Reserves `bytes`, waiting in the queue while they do not fit; throws a `Refusal`, or `CancellationError`
    /// when the task is cancelled while waiting (nothing stays reserved then). Pair with `release(_:)`.
    public func reserve(_ bytes: Int) async throws {
        if draining { throw Refusal.draining }
        guard bytes <= capacity else { throw Refusal.tooLarge(needed: bytes, capacity: capacity) }
        if waiters.isEmpty && fits(bytes) {
            admit(bytes)
            return
        }
        guard waiters.count < maxQueue else { throw Refusal.queueFull }
        nextID &+= 1
        let id = nextID
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                if Task.isCancelled { c.resume(throwing: CancellationError()); return }
                waiters.append(Waiter(id: id, bytes: bytes, continuation: c))
                notify()
            }
        } onCancel: {
            Task { await self.cancel(id) }
        }
    }

    /// Gives back a reservation made by `reserve(_:)` and admits waiting requests that now fit.
    public func release(_ bytes: Int) {
        reserved -= bytes
        active -= 1
        admitWaiting()
        notify()
    }

    /// Refuses everything from now on: new requests and those still waiting get `Refusal.draining`.
    public func drain() {
        draining = true
        let w = waiters
        waiters.removeAll()
        for x in w { x.continuation.resume(throwing: Refusal.draining) }
        notify()
    }

    private func fits(_ bytes: Int) -> Bool { active < maxActive && reserved + bytes <= capacity }

    private func admit(_ bytes: Int) {
        reserved += bytes
        active += 1
        notify()
    }

    private func admitWaiting() {
        while let head = waiters.first, fits(head.bytes) {
            waiters.removeFirst()
            admit(head.bytes)
            head.continuation.resume()
        }
    }

    private func cancel(_ id: UInt64) {
        guard let i = waiters.firstIndex(where: { $0.id == id }) else { return }
        let w = waiters.remove(at: i)
        w.continuation.resume(throwing: CancellationError())
        admitWaiting()  // the cancelled one may have blocked smaller requests behind it
        notify()
    }

    private func notify() { observe(waiters.count, active, reserved) }
}
