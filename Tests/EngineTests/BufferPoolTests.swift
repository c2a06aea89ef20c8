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
}
