import EnhanceServer
import Foundation
import Testing

/// Admission by memory on its own: first in, first out; bounded queue; refusals; cancellation and draining.
@Suite struct MemoryAdmissionTests {
    @Test func admitsWhatFitsAndQueuesTheRestInOrder() async throws {
        let a = MemoryAdmission(capacity: 100, maxActive: 8, maxQueue: 4)
        try await a.reserve(60)
        let order = OrderLog()
        // 50 does not fit beside 60; 10 would, but must not overtake the 50 ahead of it
        let big = Task { try await a.reserve(50); await order.add("big") }
        try await waitFor { await a.queueDepth == 1 }
        let small = Task { try await a.reserve(10); await order.add("small") }
        try await waitFor { await a.queueDepth == 2 }
        #expect(await order.items.isEmpty)
        await a.release(60)
        try await big.value
        try await small.value
        #expect(await order.items == ["big", "small"])
        #expect(await a.snapshot == .init(reserved: 60, active: 2, queued: 0))
        await a.release(50)
        await a.release(10)
        #expect(await a.snapshot == .init(reserved: 0, active: 0, queued: 0))
    }

    @Test func refusesAFullQueueAndWhatCanNeverFit() async throws {
        let a = MemoryAdmission(capacity: 100, maxActive: 1, maxQueue: 1)
        await #expect(throws: MemoryAdmission.Refusal.tooLarge(needed: 101, capacity: 100)) { try await a.reserve(101) }
        try await a.reserve(10)  // the one worker
        let waiting = Task { try await a.reserve(10) }
        try await waitFor { await a.queueDepth == 1 }
        await #expect(throws: MemoryAdmission.Refusal.queueFull) { try await a.reserve(10) }
        await a.release(10)
        try await waiting.value
        #expect(await a.snapshot == .init(reserved: 10, active: 1, queued: 0))
        await a.release(10)
    }

    @Test func aCancelledWaiterLeavesNothingBehind() async throws {
        let a = MemoryAdmission(capacity: 100, maxActive: 4, maxQueue: 4)
        try await a.reserve(90)
        let gone = Task { try await a.reserve(50) }
        try await waitFor { await a.queueDepth == 1 }
        let behind = Task { try await a.reserve(5) }  // blocked only by the one ahead of it
        try await waitFor { await a.queueDepth == 2 }
        gone.cancel()
        await #expect(throws: CancellationError.self) { try await gone.value }
        try await behind.value  // the cancelled one no longer blocks it
        #expect(await a.snapshot == .init(reserved: 95, active: 2, queued: 0))
        await a.release(90)
        await a.release(5)
        #expect(await a.snapshot == .init(reserved: 0, active: 0, queued: 0))
    }

    @Test func drainingRefusesNewAndWaitingRequests() async throws {
        let a = MemoryAdmission(capacity: 100, maxActive: 1, maxQueue: 4)
        try await a.reserve(10)
        let waiting = Task { try await a.reserve(10) }
        try await waitFor { await a.queueDepth == 1 }
        await a.drain()
        await #expect(throws: MemoryAdmission.Refusal.draining) { try await waiting.value }
        await #expect(throws: MemoryAdmission.Refusal.draining) { try await a.reserve(1) }
        await a.release(10)
        #expect(await a.snapshot == .init(reserved: 0, active: 0, queued: 0))
    }
}

actor OrderLog {
    private(set) var items: [String] = []
    func add(_ s: String) { items.append(s) }
}

/// Polls `condition` (up to 5 s).
func waitFor(_ condition: @Sendable () async -> Bool) async throws {
    for _ in 0..<500 {
        if await condition() { return }
        try await Task.sleep(for: .milliseconds(10))
    }
    Issue.record("condition not met within 5 s")
}
