import Testing
import TensorCore

@Suite struct BufferPoolTests {
    @Test func reusesTheSameSizeAndASlightlySmallerRequest() throws {
        let pool = BufferPool()
        do { _ = try pool.allocate(bytes: 4096) }
        do {
            let same = try pool.allocate(bytes: 4096)
            #expect(same.byteCount == 4096)
        }
        #expect(pool.memoryStats.reuseCount == 1)
        let near = try pool.allocate(bytes: 3500)        // 3520 after rounding: the cached 4096 buffer fits
        #expect(near.byteCount == 4096)
        #expect(pool.memoryStats.reuseCount == 2)
        #expect(pool.memoryStats.allocationCount == 1)
        #expect(pool.memoryStats.liveBytes == 4096)
        _ = near
    }

    @Test func aMissReleasesCachedBuffersInsteadOfGrowing() throws {
        let pool = BufferPool()
        do { _ = try pool.allocate(bytes: 1 << 20) }     // 1 MiB cached
        let small = try pool.allocate(bytes: 1000)       // far smaller: no reuse, the 1 MiB goes back
        #expect(small.byteCount == 1024)
        #expect(pool.memoryStats.reuseCount == 0)
        #expect(pool.memoryStats.reservedBytes == 1024)
        #expect(pool.cachedBytes == 0)
        _ = small
    }

    /// A network-like sequence of many distinct activation sizes, two alive at a time, run twice: with exact-size
    /// free lists kept forever, reserved memory grew to the sum of all sizes; now it never exceeds the live peak.
    @Test func reservedStaysNearTheLivePeakAcrossDistinctSizes() throws {
        let pool = BufferPool()
        let sizes = (1...60).map { 64 * (1000 + 37 * $0 * $0) }
        for _ in 0..<2 {
            var previous = try pool.allocate(bytes: sizes[0])
            for s in sizes.dropFirst() {
                let next = try pool.allocate(bytes: s)
                previous = next
            }
            _ = previous
        }
        let m = pool.memoryStats
        #expect(m.liveBytes == 0)
        #expect(m.peakReservedBytes <= m.peakLiveBytes)
        #expect(m.peakReservedBytes < sizes.reduce(0, +) / 4)
        pool.trim()
        #expect(pool.memoryStats.reservedBytes == 0)
    }

    /// Two 2 MiB activations and a 1 MiB one alive at a time, three passes: after the first pass every request is
    /// served from the cache (the churn a miss can cause needs sizes the live peak cannot hold together).
    @Test func aRepeatedShapeSequenceIsServedFromTheCache() throws {
        let pool = BufferPool()
        let sizes = [2 << 20, 2 << 20, 1 << 20, 2 << 20]
        for _ in 0..<3 {
            var held: [DeviceBuffer] = []
            for s in sizes { held.append(try pool.allocate(bytes: s)); if held.count > 2 { held.removeFirst() } }
        }
        let m = pool.memoryStats
        #expect(m.allocationCount == 3)
        #expect(m.reuseCount == 9)
        #expect(m.peakReservedBytes == 5 << 20)
    }

    /// On a miss that has to release cached memory, one cached mapping is resized into the request (mremap: its pages
    /// move along) instead of unmapping it and mapping fresh pages that fault in zeroed.
    @Test func aMissResizesACachedMappingInsteadOfMappingFreshPages() throws {
        let recorder = RecordingAllocator()
        let pool = BufferPool(allocator: recorder)
        do { _ = try pool.allocate(bytes: 8 << 20) }     // 8 MiB cached; the live peak is 8 MiB
        do { _ = try pool.allocate(bytes: 2 << 20) }     // a quarter: no reuse; 8 + 2 > 8, so the 8 MiB becomes 2 MiB
        #expect(recorder.calls == ["allocate \(8 << 20)", "reallocate \(8 << 20) → \(2 << 20)"])
        #expect(pool.memoryStats.reservedBytes == 2 << 20)
        let big = try pool.allocate(bytes: 6 << 20)      // 2 + 6 ≤ 8: room under the peak, a fresh mapping
        #expect(recorder.calls.last == "allocate \(6 << 20)")
        _ = big
    }

    @Test func hostMappingsKeepTheirContentsWhenResized() throws {
        let a = HostAllocator()
        let n = 2 << 20
        let p = try a.allocate(bytes: n)
        #expect(Int(bitPattern: p) % 4096 == 0)
        p.storeBytes(of: 0x1234_5678, toByteOffset: 0, as: UInt32.self)
        p.storeBytes(of: 0x9abc_def0, toByteOffset: n - 4, as: UInt32.self)
        let q = try #require(a.reallocate(p, from: n, to: 3 * n))
        #expect(q.load(fromByteOffset: 0, as: UInt32.self) == 0x1234_5678)
        #expect(q.load(fromByteOffset: n - 4, as: UInt32.self) == 0x9abc_def0)
        #expect(q.load(fromByteOffset: 3 * n - 4, as: UInt32.self) == 0)    // grown pages are fresh (zero)
        let r = try #require(a.reallocate(q, from: 3 * n, to: HostAllocator.mappingThreshold))
        #expect(r.load(fromByteOffset: 0, as: UInt32.self) == 0x1234_5678)
        a.deallocate(r, bytes: HostAllocator.mappingThreshold)
        // blocks under the threshold come from malloc and are not resized
        let small = try a.allocate(bytes: 4096)
        #expect(a.reallocate(small, from: 4096, to: 8192) == nil)
        a.deallocate(small, bytes: 4096)
    }
}

/// Host memory that records what the pool asks of it.
final class RecordingAllocator: MemoryAllocator, @unchecked Sendable {
    let host = HostAllocator()
    private(set) var calls: [String] = []
    func allocate(bytes: Int) throws -> UnsafeMutableRawPointer { calls.append("allocate \(bytes)"); return try host.allocate(bytes: bytes) }
    func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) { calls.append("deallocate \(bytes)"); host.deallocate(pointer, bytes: bytes) }
    func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int) { host.zero(pointer, bytes: bytes) }
    func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to new: Int) -> UnsafeMutableRawPointer? {
        calls.append("reallocate \(old) → \(new)")
        return host.reallocate(pointer, from: old, to: new)
    }
}
