import Foundation
import Testing
import TensorCore
import TestSupport

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
    /// Out of memory while free buffers sit in the cache: the pool gives them back and tries once more (PyTorch's
    /// caching allocator does the same). The case that needs it: a request that failed (a whole image the upscaler
    /// then tiles) still raised the pool's high-water mark, so the usual eviction keeps the cache.
    @Test func outOfMemoryGivesTheCacheBackAndTriesAgain() throws {
        let pool = BufferPool(allocator: CappedAllocator(capacity: 1000))
        var a: DeviceBuffer? = try pool.allocate(bytes: 384)
        #expect(throws: TensorError.self) { _ = try pool.allocate(bytes: 704) }   // 384 + 704 > 1000
        a = nil
        #expect(pool.memoryStats.reservedBytes == 384, "the first buffer is cached")
        let b = try pool.allocate(bytes: 640)   // 384 cached + 640 > 1000: only after the cache went back
        #expect(b.byteCount == 640 && pool.memoryStats.reservedBytes == 640)
        #expect(throws: TensorError.allocationFailed(bytes: 448, detail: "the test device holds 640 of 1000 bytes")) {
            _ = try pool.allocate(bytes: 400)   // nothing cached to give back: the allocator's error stands
        }
        _ = a
    }

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

    /// A miss is made of cached mappings' pages (mremap moves them into place), the last one split so that what the
    /// request does not need stays cached, instead of unmapping cached blocks and mapping fresh pages that fault in
    /// zeroed (ParseNet 512²: 66 K page faults per forward, 6 K after).
    @Test func aMissIsMadeOfCachedPagesAndKeepsWhatItDoesNotNeed() throws {
        let recorder = RecordingAllocator()
        let pool = BufferPool(allocator: recorder)
        let m = 1 << 20
        do {
            let a = try pool.allocate(bytes: 4 * m), b = try pool.allocate(bytes: 2 * m)   // live peak 6 MiB
            _ = (a, b)
        }
        // 5 MiB: no cached buffer fits (4 < 5, 2 MiB too small); the 4 MiB block and 1 MiB of the 2 MiB one become it
        do { _ = try pool.allocate(bytes: 5 * m) }
        #expect(recorder.calls == ["allocate \(4 * m)", "allocate \(2 * m)", "allocate \(5 * m) from \(4 * m)+\(m)"])
        #expect(pool.memoryStats.reservedBytes == 6 * m, "nothing was unmapped")
        #expect(pool.cachedBytes == 6 * m)
        // the 1 MiB left of the split serves a 1 MiB request
        do {
            let small = try pool.allocate(bytes: m)
            #expect(recorder.calls.count == 3)
            #expect(small.byteCount == m)
        }
        // a larger cached block serves it, and what the request does not need stays cached
        let three = try pool.allocate(bytes: 3 * m)
        #expect(recorder.calls.count == 3)
        #expect(three.byteCount == 3 * m)
        #expect(pool.memoryStats.liveBytes == 3 * m)
        #expect(pool.cachedBytes == 3 * m)
        #expect(pool.memoryStats.reuseCount == 2)
        // freed blocks (split parts included) go back to the system whole
        withExtendedLifetime(three) {}
    }

    /// A split never leaves a part the allocator would take for a malloc block (under its mapping size): the piece a
    /// small remainder of a request takes is the whole mapping size, the excess freed by the allocator.
    @Test func splitPartsStayMappings() throws {
        let recorder = RecordingAllocator()
        let pool = BufferPool(allocator: recorder)
        let m = 1 << 20
        do { let a = try pool.allocate(bytes: 3 * m), b = try pool.allocate(bytes: 2 * m); _ = (a, b) }
        // 3 MiB + 4 KiB: no block covers it; the 3 MiB block, then 1 MiB (not 64 KiB) of the 2 MiB one
        do { _ = try pool.allocate(bytes: 3 * m + 4096) }
        #expect(recorder.calls.last == "allocate \(3 * m + 4096) from \(3 * m)+\(m)")
        #expect(pool.cachedBytes == 3 * m + 4096 + m)
        pool.trim()
        #expect(pool.memoryStats.reservedBytes == 0)
        #expect(Set(recorder.calls.suffix(2)) == ["deallocate \(3 * m + 4096)", "deallocate \(m)"])
    }

    /// Parts split from one mapping are joined again when they are free, so a sequence that splits a block serves
    /// every later pass from the cache: no mremap, no fresh pages (ParseNet 512²: 40 mremap calls per steady-state
    /// forward before, 3 after).
    @Test func partsOfOneMappingAreJoinedWhenFree() throws {
        let recorder = RecordingAllocator()
        let pool = BufferPool(allocator: recorder)
        let m = 1 << 20
        do { _ = try pool.allocate(bytes: 4 * m) }
        for _ in 0..<3 {
            do {
                let a = try pool.allocate(bytes: m), b = try pool.allocate(bytes: 2 * m)   // cut from the 4 MiB block
                #expect(pool.cachedBytes == m)
                _ = (a, b)
            }
            #expect(pool.cachedBytes == 4 * m)
            let c = try pool.allocate(bytes: 3 * m)   // needs the parts joined: 1 + 2 MiB alone are too small
            #expect(c.byteCount == 3 * m)
        }
        #expect(recorder.calls == ["allocate \(4 * m)"])
        #expect(pool.memoryStats.reuseCount == 9)
        // blocks of different mappings are never joined (the kernel often maps them side by side): a 2 MiB request
        // is made of the two 1 MiB blocks' pages
        let separate = RecordingAllocator()
        let other = BufferPool(allocator: separate)
        do { let x = try other.allocate(bytes: m), y = try other.allocate(bytes: m); _ = (x, y) }
        _ = try other.allocate(bytes: 2 * m)
        #expect(separate.calls == ["allocate \(m)", "allocate \(m)", "allocate \(2 * m) from \(m)+\(m)"])
    }

    /// A block made of other blocks' pages may be several kernel mappings, and before Linux 6.17 a move of pages that
    /// span two failed after the destination was unmapped: such blocks serve requests but are never moved again.
    @Test func blocksMadeOfPiecesAreNotMovedAgain() throws {
        let recorder = RecordingAllocator(reusesBlocksOfPieces: false)   // as on Linux before 6.17
        let pool = BufferPool(allocator: recorder)
        let m = 1 << 20
        do { let a = try pool.allocate(bytes: 2 * m), b = try pool.allocate(bytes: 2 * m); _ = (a, b) }
        do { _ = try pool.allocate(bytes: 4 * m) }           // made of both: a block of pieces
        do { _ = try pool.allocate(bytes: 5 * m) }           // nothing movable is cached: fresh, the 4 MiB one goes
        #expect(Array(recorder.calls.dropFirst(2)) == ["allocate \(4 * m) from \(2 * m)+\(2 * m)", "deallocate \(4 * m)", "allocate \(5 * m)"])
        do { let x = try pool.allocate(bytes: 3 * m); #expect(x.byteCount == 3 * m) }   // but it serves requests
        #expect(recorder.calls.count == 5)
        // where the kernel moves pages across mappings (6.17 and later) it is moved like any other block
        let moving = RecordingAllocator(reusesBlocksOfPieces: true)
        let other = BufferPool(allocator: moving)
        do { let a = try other.allocate(bytes: 2 * m), b = try other.allocate(bytes: 2 * m); _ = (a, b) }
        do { _ = try other.allocate(bytes: 4 * m) }
        do { _ = try other.allocate(bytes: 5 * m) }
        #expect(moving.calls.last == "allocate \(5 * m) from \(4 * m)")
    }

    /// The kernel check behind `reusesBlocksOfPieces`: where it says moves may span mappings, a move of pages that
    /// span two really works (two separately touched mappings side by side are two kernel mappings); elsewhere the
    /// pool does not rely on it.
    @Test func theKernelMovesWhatThePoolThinksItMoves() throws {
        #expect(BufferPool().allocator.reusesBlocksOfPieces == HostAllocator.movesAcrossMappings)
        #expect(!CountingAllocator().reusesBlocksOfPieces)   // the protocol's default
        guard HostAllocator.movesAcrossMappings else { return }
        let m = 1 << 20
        let a = HostAllocator()
        let region = try a.allocate(bytes: 4 * m)            // two 2 MiB mappings are moved into it side by side
        let p = try a.allocate(bytes: 2 * m), q = try a.allocate(bytes: 2 * m)
        p.storeBytes(of: 1, toByteOffset: 2 * m - 4, as: UInt32.self)
        q.storeBytes(of: 2, as: UInt32.self)
        #expect(a.movePages(p, 2 * m, region) && a.movePages(q, 2 * m, region + 2 * m))
        let r = try a.allocate(bytes: 2 * m, reusing: [(region + m, 2 * m)])   // spans both
        #expect(r.load(fromByteOffset: m - 4, as: UInt32.self) == 1 && r.load(fromByteOffset: m, as: UInt32.self) == 2)
        a.deallocate(r, bytes: 2 * m)
        a.unmapPages(region, m)
        a.unmapPages(region + 3 * m, m)
    }

    /// Moves split mappings and a process may hold only so many (vm.max_map_count): after `movesBeforeEmptying` moves
    /// the next miss empties the cache and maps fresh memory, which lets the split mappings go.
    @Test func manyMovesEmptyTheCache() throws {
        let m = 1 << 20
        func run(limit: Int?) throws -> [String] {
            let recorder = RecordingAllocator(reusesBlocksOfPieces: false)
            let pool = BufferPool(allocator: recorder)
            if let limit { pool.movesBeforeEmptying = limit }
            do { let a = try pool.allocate(bytes: 2 * m), b = try pool.allocate(bytes: 2 * m); _ = (a, b) }
            do { _ = try pool.allocate(bytes: 3 * m) }   // both blocks' pages: two moves
            do { _ = try pool.allocate(bytes: 4 * m) }
            return Array(recorder.calls.dropFirst(3))
        }
        // the 1 MiB left of the second block is movable (the 3 MiB block of pieces is not, and goes)
        #expect(try run(limit: nil) == ["deallocate \(3 * m)", "allocate \(4 * m) from \(m)"])
        let emptied = try run(limit: 2)
        #expect(Set(emptied.prefix(2)) == ["deallocate \(3 * m)", "deallocate \(m)"] && emptied.last == "allocate \(4 * m)", "\(emptied)")
    }

    /// Before Linux 6.17 mremap unmaps the destination before it finds that the piece spans two mappings (6.6's
    /// mremap_to), which left a hole in the new block: the range is mapped afresh instead and the piece freed. (The
    /// test's "hole" is an inaccessible mapping, which no parallel test can map into.)
    @Test func aPieceThatCannotBeMovedLeavesNoHole() throws {
        let m = 1 << 20
        let unmapped = UnmapLog()
        let a = HostAllocator(movePages: { _, bytes, to in   // as Linux 6.6 fails
                                  _ = mmap(to, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0); return false },
                              unmapPages: { unmapped.add($0, $1); munmap($0, $1) })
        let p = try a.allocate(bytes: 2 * m), q = try a.allocate(bytes: 2 * m)
        p.storeBytes(of: 7, as: UInt32.self)
        let r = try a.allocate(bytes: 4 * m, reusing: [(p, 2 * m), (q, 2 * m)])
        r.storeBytes(of: 1, toByteOffset: 3 * m, as: UInt32.self)   // without the new mapping: SIGSEGV
        #expect(r.load(as: UInt32.self) == 0, "fresh pages where the piece could not go")
        #expect(unmapped.calls == ["\(p) \(2 * m)", "\(q) \(2 * m)"], "the pieces are freed")
        a.deallocate(r, bytes: 4 * m)
    }

    /// The pieces of a block that cannot be made are still consumed (unmapped), as the pool no longer counts them.
    /// (Unmapping is seen through the allocator's hook: a range's mapping state can change under a parallel test.)
    @Test func piecesOfABlockThatCannotBeMadeAreFreed() throws {
        let m = 1 << 20
        let unmapped = UnmapLog()
        let a = HostAllocator(movePages: { _, _, _ in false }, unmapPages: { unmapped.add($0, $1); munmap($0, $1) })
        let p = try a.allocate(bytes: 2 * m)
        #expect(throws: TensorError.self) { _ = try a.allocate(bytes: 1 << 60, reusing: [(p, 2 * m)]) }
        #expect(unmapped.calls == ["\(p) \(2 * m)"])
    }

    @Test func hostBlocksAreMadeOfOtherBlocksPages() throws {
        let a = HostAllocator()
        let m = 1 << 20
        let p = try a.allocate(bytes: 2 * m), q = try a.allocate(bytes: 3 * m)
        #expect(Int(bitPattern: p) % 4096 == 0)
        p.storeBytes(of: 0x1234_5678, toByteOffset: 0, as: UInt32.self)
        q.storeBytes(of: 0x9abc_def0, toByteOffset: 0, as: UInt32.self)
        q.storeBytes(of: 0x0bad_cafe, toByteOffset: 3 * m - 4, as: UInt32.self)   // beyond what the new block takes
        // 4 MiB from 2 + 3 MiB: p's pages first, then two of q's three MiB (the third is freed)
        let r = try a.allocate(bytes: 4 * m, reusing: [(p, 2 * m), (q, 3 * m)])
        #expect(r.load(fromByteOffset: 0, as: UInt32.self) == 0x1234_5678)
        #expect(r.load(fromByteOffset: 2 * m, as: UInt32.self) == 0x9abc_def0)
        #expect(r.load(fromByteOffset: 4 * m - 4, as: UInt32.self) == 0)
        // 6 MiB from one 4 MiB block: the last 2 MiB are fresh (zero) pages
        let s = try a.allocate(bytes: 6 * m, reusing: [(r, 4 * m)])
        #expect(s.load(fromByteOffset: 2 * m, as: UInt32.self) == 0x9abc_def0)
        #expect(s.load(fromByteOffset: 5 * m, as: UInt32.self) == 0)
        a.deallocate(s, bytes: 6 * m)
        // under the threshold the pieces are freed and the block comes from malloc
        let small = try a.allocate(bytes: 4096, reusing: [(try a.allocate(bytes: 2 * m), 2 * m)])
        #expect(Int(bitPattern: small) % 64 == 0)
        a.deallocate(small, bytes: 4096)
    }
}

/// Host memory that records what the pool asks of it.
final class RecordingAllocator: MemoryAllocator, @unchecked Sendable {
    let host = HostAllocator()
    private(set) var calls: [String] = []
    let reusesBlocksOfPieces: Bool
    /// `reusesBlocksOfPieces`: the host allocator's (the running kernel's) unless a test sets it.
    init(reusesBlocksOfPieces: Bool? = nil) { self.reusesBlocksOfPieces = reusesBlocksOfPieces ?? host.reusesBlocksOfPieces }
    var reusableBlockBytes: Int? { host.reusableBlockBytes }
    func allocate(bytes: Int) throws -> UnsafeMutableRawPointer { calls.append("allocate \(bytes)"); return try host.allocate(bytes: bytes) }
    func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) { calls.append("deallocate \(bytes)"); host.deallocate(pointer, bytes: bytes) }
    func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int) { host.zero(pointer, bytes: bytes) }
    func allocate(bytes: Int, reusing pieces: [(pointer: UnsafeMutableRawPointer, bytes: Int)]) throws -> UnsafeMutableRawPointer {
        calls.append("allocate \(bytes) from " + pieces.map { "\($0.bytes)" }.joined(separator: "+"))
        return try host.allocate(bytes: bytes, reusing: pieces)
    }
}

/// Unmap calls a test allocator saw, as "pointer bytes".
final class UnmapLog: @unchecked Sendable {
    private let lock = NSLock()
    private var log: [String] = []
    func add(_ p: UnsafeMutableRawPointer, _ bytes: Int) { lock.withLock { log.append("\(p) \(bytes)") } }
    var calls: [String] { lock.withLock { log } }
}
