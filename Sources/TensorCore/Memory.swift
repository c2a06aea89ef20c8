import CMemory
import Foundation

/// Allocation statistics of one backend. Bytes count buffers handed out to tensors ("live") and buffers kept
/// for reuse ("pooled"); peaks are since creation or the last `resetPeak()`.
public struct MemoryStats: Sendable, Equatable, CustomStringConvertible {
    /// Bytes currently held by live tensors.
    public var liveBytes: Int = 0
    /// Highest `liveBytes` since the last reset.
    public var peakLiveBytes: Int = 0
    /// Bytes held by live tensors plus freed buffers cached for reuse (what the process really holds).
    public var reservedBytes: Int = 0
    /// Highest `reservedBytes` since the last reset.
    public var peakReservedBytes: Int = 0
    /// Number of fresh system allocations.
    public var allocationCount: Int = 0
    /// Number of allocation requests served from the pool.
    public var reuseCount: Int = 0
    /// Bytes held by prepared weights (backends that keep weights in their own memory; not part of the peaks).
    public var weightBytes: Int = 0
    /// Bytes of library workspace held apart from the pool (a GPU backend's convolution workspace; 0 elsewhere).
    public var workspaceBytes: Int = 0
    /// True when the counted memory is a device's (a GPU backend), not the process's own.
    public var onDevice: Bool = false

    /// What PyTorch's `max_memory_allocated` counts after loading: the live peak, the weights and the workspace.
    public var allocatedPeakBytes: Int { peakLiveBytes + weightBytes + workspaceBytes }
    /// What PyTorch's `max_memory_reserved` counts: the pool's high-water mark (cached free buffers included), the
    /// weights and the workspace.
    public var reservedPeakBytes: Int { peakReservedBytes + weightBytes + workspaceBytes }

    public var description: String {
        return "live \(liveBytes) B, peak live \(peakLiveBytes) B, reserved \(reservedBytes) B, peak reserved \(peakReservedBytes) B, \(allocationCount) allocations, \(reuseCount) reuses, weights \(weightBytes) B\(workspaceBytes > 0 ? ", workspace \(workspaceBytes) B" : "")"
    }
}

/// Memory statistics of one execution context — a request, a tile pass — kept apart from whatever else runs on the
/// same backend at the same time. Allocations made while a scope is current (`MemoryScope.current`, a task-local
/// value: it follows the task into the synchronous code it calls) count in that scope until they are freed, whichever
/// task frees them. Prepared weights do not count (they live in the backend's weight pool).
public final class MemoryScope: @unchecked Sendable {
    @TaskLocal public static var current: MemoryScope?

    private let lock = NSLock()
    private var live = 0
    private var peak = 0

    public init() {}

    /// Bytes allocated in this scope and not yet freed.
    public var liveBytes: Int { lock.withLock { live } }
    /// The highest `liveBytes` so far.
    public var peakLiveBytes: Int { lock.withLock { peak } }

    /// Runs `body` with this scope current (nested scopes: the innermost counts).
    public func measure<T>(_ body: () throws -> T) rethrows -> T { try MemoryScope.$current.withValue(self, operation: body) }

    /// The async form of `measure`.
    public func measure<T>(_ body: () async throws -> T) async rethrows -> T { try await MemoryScope.$current.withValue(self, operation: body) }

    func allocated(_ bytes: Int) { lock.withLock { live += bytes; peak = max(peak, live) } }
    func freed(_ bytes: Int) { lock.withLock { live -= bytes } }
}

/// Where a backend's memory comes from: host memory for a CPU backend, device memory for a GPU's. A `BufferPool`
/// caches and accounts what its allocator hands out and touches the bytes only through `zero`.
public protocol MemoryAllocator: Sendable {
    /// A block of at least `bytes` bytes (contents undefined); throws when none can be had.
    func allocate(bytes: Int) throws -> UnsafeMutableRawPointer
    /// Returns a block that `allocate(bytes:)` handed out.
    func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int)
    /// Sets `bytes` bytes from `pointer` to zero.
    func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int)
    /// A block of at least `bytes` bytes made with the memory of `pieces` (blocks from `allocate`, all consumed, also
    /// when it throws): what the pool asks for on a miss that cached blocks can cover. The default frees the pieces
    /// and allocates.
    func allocate(bytes: Int, reusing pieces: [(pointer: UnsafeMutableRawPointer, bytes: Int)]) throws -> UnsafeMutableRawPointer
    /// The smallest block whose memory `allocate(bytes:reusing:)` can reuse, and the smallest request it makes that
    /// way; nil (the default): none.
    var reusableBlockBytes: Int? { get }
    /// Whether a block that `allocate(bytes:reusing:)` made of pieces can itself be a piece of a later block (false,
    /// the default: it still serves requests, but its memory is never reused that way).
    var reusesBlocksOfPieces: Bool { get }
}

extension MemoryAllocator {
    public var reusableBlockBytes: Int? { nil }
    public var reusesBlocksOfPieces: Bool { false }

    public func allocate(bytes: Int, reusing pieces: [(pointer: UnsafeMutableRawPointer, bytes: Int)]) throws -> UnsafeMutableRawPointer {
        for p in pieces { deallocate(p.pointer, bytes: p.bytes) }
        return try allocate(bytes: bytes)
    }
}

/// Host memory aligned to 64 bytes (a cache line, one AVX-512 register). Blocks of `mappingThreshold` bytes and more
/// are anonymous mappings of their own (page-aligned, as glibc's large blocks are), so that a new block can be made of
/// old ones' pages: `allocate(bytes:reusing:)` moves them into place with mremap instead of unmapping them and letting
/// the new block fault in fresh pages, which the kernel zeroes one by one.
public struct HostAllocator: MemoryAllocator {
    /// Smallest block that is a mapping of its own.
    public static let mappingThreshold = 1 << 20
    public var reusableBlockBytes: Int? { Self.mappingThreshold }
    /// A block made of pieces is several kernel mappings: moved again only where one mremap can span them.
    public var reusesBlocksOfPieces: Bool { Self.movesAcrossMappings }
    /// Moves a piece's pages to a place in the new block (mremap with MREMAP_FIXED); false when it could not.
    package let movePages: @Sendable (_ from: UnsafeMutableRawPointer, _ bytes: Int, _ to: UnsafeMutableRawPointer) -> Bool
    /// Unmaps pages (munmap).
    package let unmapPages: @Sendable (_ pointer: UnsafeMutableRawPointer, _ bytes: Int) -> Void

    public init() {
        self.init(movePages: { from, bytes, to in
            guard let m = enh_mremap_fixed(from, bytes, bytes, to) else { return false }
            return m != MAP_FAILED
        })
    }

    /// Tests: `movePages` in place of mremap, `unmapPages` (which must unmap) to see what is given back.
    package init(movePages: @escaping @Sendable (_ from: UnsafeMutableRawPointer, _ bytes: Int, _ to: UnsafeMutableRawPointer) -> Bool,
                 unmapPages: @escaping @Sendable (_ pointer: UnsafeMutableRawPointer, _ bytes: Int) -> Void = { _ = munmap($0, $1) }) {
        self.movePages = movePages
        self.unmapPages = unmapPages
    }

    public func allocate(bytes: Int) throws -> UnsafeMutableRawPointer {
        if bytes >= Self.mappingThreshold {
            guard let m = mmap(nil, Self.pageRounded(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  m != MAP_FAILED else { throw TensorError.allocationFailed(bytes: bytes) }
            if Self.hugePages && bytes >= 2 << 20 { _ = madvise(m, Self.pageRounded(bytes), 14 /* MADV_HUGEPAGE */) }
            return m
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { throw TensorError.allocationFailed(bytes: bytes) }
        return raw
    }

    public func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= Self.mappingThreshold { unmapPages(pointer, Self.pageRounded(bytes)) } else { free(pointer) }
    }

    public func allocate(bytes: Int, reusing pieces: [(pointer: UnsafeMutableRawPointer, bytes: Int)]) throws -> UnsafeMutableRawPointer {
        let target: UnsafeMutableRawPointer
        do { target = try allocate(bytes: bytes) } catch {
            for p in pieces { deallocate(p.pointer, bytes: p.bytes) }   // consumed either way: the pool no longer counts them
            throw error
        }
        guard bytes >= Self.mappingThreshold else {
            for p in pieces { deallocate(p.pointer, bytes: p.bytes) }
            return target
        }
        // Each piece's pages replace the target's (untouched) ones, piece after piece; what does not fit is freed.
        let length = Self.pageRounded(bytes)
        var offset = 0
        for (i, p) in pieces.enumerated() {
            let have = Self.pageRounded(p.bytes), take = min(have, length - offset)
            guard p.bytes >= Self.mappingThreshold, take > 0 else {
                deallocate(p.pointer, bytes: p.bytes)
                continue
            }
            guard movePages(p.pointer, take, target + offset) else {
                // Should a move fail after the kernel unmapped the destination (before Linux 6.17 a piece spanning two
                // mappings did; the pool moves none there), map that range afresh so the block has no hole, and free
                // the piece.
                guard let m = mmap(target + offset, take, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0),
                      m != MAP_FAILED else {
                    unmapPages(target, length)   // with the pieces moved into it so far
                    for q in pieces[i...] { deallocate(q.pointer, bytes: q.bytes) }
                    throw TensorError.allocationFailed(bytes: bytes)
                }
                deallocate(p.pointer, bytes: p.bytes)
                continue
            }
            if have > take { unmapPages(p.pointer + take, have - take) }
            offset += take
        }
        return target
    }

    static func pageRounded(_ bytes: Int) -> Int { (bytes + 4095) & ~4095 }

    /// Whether this kernel moves pages that span several mappings in one mremap: Linux 6.17 and later (checked on
    /// 6.18). Before, such a move fails after the destination was unmapped (6.6's mremap_to).
    public static let movesAcrossMappings: Bool = {
        var u = utsname()
        guard uname(&u) == 0 else { return false }
        let release = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        let parts = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
        guard parts.count == 2 else { return false }
        return parts[0] > 6 || (parts[0] == 6 && parts[1] >= 17)
    }()

    /// Whether mappings of 2 MiB and more ask for transparent huge pages (ENHANCE_THP=1; docs/bench.md).
    static let hugePages = ProcessInfo.processInfo.environment["ENHANCE_THP"] == "1"

    public func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int) { memset(pointer, 0, bytes) }
}

/// A raw allocation owned by a `BufferPool` (in the memory of the pool's allocator); it goes back to the pool when
/// released.
public final class DeviceBuffer: @unchecked Sendable {
    /// Start of the memory (64-byte aligned); backends only. Device memory is not host memory: only the backend that
    /// owns the pool may dereference it.
    package let pointer: UnsafeMutableRawPointer
    /// Usable size in bytes.
    public let byteCount: Int
    let pool: BufferPool
    /// The execution context that allocated it, if any.
    let scope: MemoryScope?

    init(pointer: UnsafeMutableRawPointer, byteCount: Int, pool: BufferPool, scope: MemoryScope? = nil) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.pool = pool
        self.scope = scope
        scope?.allocated(byteCount)
    }

    deinit {
        scope?.freed(byteCount)
        pool.recycle(pointer: pointer, byteCount: byteCount)
    }

    /// The memory as float32 elements; host backends only.
    package var floats: UnsafeMutablePointer<Float> { pointer.assumingMemoryBound(to: Float.self) }
}

/// A pool of buffers from one allocator (host memory unless the backend supplies another) with live/peak accounting.
/// Freed buffers are cached and handed out again to a request of the same size or somewhat smaller (best fit, newest
/// first; see `bestFit`). Where the allocator can make a block of other blocks' memory (host mappings: mremap moves
/// their pages), any cached block larger than the request is split (the rest stays cached), free parts of one mapping
/// are joined again, and a miss is made of cached blocks' pages first, so that only what the cache cannot cover is
/// fresh memory; cached buffers are released while
/// reserved memory would exceed the highest live total seen so far, so reserved memory never exceeds the live peak.
/// With exact-size free lists kept forever, every distinct activation size stayed cached (GPEN-512: 1015 MiB reserved
/// for 648 MiB live). With misses that unmapped cached buffers and mapped fresh pages (each fresh page is zeroed by
/// the kernel), ParseNet 512² (AVX2 path) faulted in ≈ 0.9 GB per steady-state forward (239 K faults); with misses
/// made of cached pages only when reserved memory was at the peak, and the unused rest of a split block unmapped,
/// 67 K faults per steady-state forward (ParseNet 512²), 72 K (GPEN-512), 18 K (x2plus 256²); with splits that keep
/// the rest, 6 K, 2 K and 0.5 K (AVX-512 path; AVX2 alike), forward medians 10–20 % lower for ParseNet and GPEN; peak
/// RSS up to +38 MB (ParseNet: scratch pages that a fresh block never touched are now resident pages of the cache).
/// Splits alone left a steady-state forward re-making its blocks with mremap (ParseNet 512²: 40 calls, 19 ms of system
/// time per forward; GPEN-512 45, x2plus 256² 38); with any larger block split for a request and the free parts of a
/// mapping joined, 3, 7 and 5.
public final class BufferPool: @unchecked Sendable {
    private let lock = NSLock()
    /// A block of memory: `origin` names the mapping it is part of (0: none, a malloc block), so that blocks split
    /// from one mapping can be joined again. A mapping made of other blocks' pages has a negative origin: it may be
    /// several kernel mappings, and before Linux 6.17 a move of pages that span two fails after the destination was
    /// unmapped (6.6's mremap_to), so there only blocks of single mappings (positive origins) are moved.
    private typealias Block = (size: Int, pointer: UnsafeMutableRawPointer, origin: Int)
    /// Cached free buffers, oldest first.
    private var cache: [Block] = []
    /// The mapping each live block of the allocator's reusable size is part of.
    private var origins: [UnsafeMutableRawPointer: Int] = [:]
    private var lastOrigin = 0
    /// Cached blocks' parts moved into new blocks since the cache was last emptied. A move can split a mapping in two,
    /// and a process may hold only vm.max_map_count mappings (65530 by default): a restore batch (detector shapes that
    /// change with each photo) gained about 6 mappings per photo without bound, so after `movesBeforeEmptying` moves
    /// the next miss empties the cache and maps fresh memory instead, which also lets those mappings go.
    private var moves = 0
    /// Moves after which a miss empties the cache (tests lower it).
    package var movesBeforeEmptying = 2048
    private var stats = MemoryStats()
    /// Highest live total including the request being served (the bound on reserved bytes).
    private var highWater = 0
    /// Largest single allocation accepted (bytes).
    public let maxAllocationBytes: Int
    /// Whether allocations count in the current `MemoryScope` (activations do; prepared weights do not).
    public let countsInScopes: Bool
    /// Where the memory comes from.
    public let allocator: any MemoryAllocator
    private var keeping = false
    /// While true the pool gives no memory back to its allocator — a miss evicts nothing, `trim` releases nothing — so
    /// every address it ever handed out stays valid (a captured CUDA graph replays into them). Reserved memory may then
    /// exceed the live peak.
    public var keepsMemory: Bool {
        get { lock.withLock { keeping } }
        set { lock.withLock { keeping = newValue } }
    }

    /// Creates an empty pool over `allocator`; requests above `maxAllocationBytes` throw instead of allocating.
    public init(allocator: any MemoryAllocator = HostAllocator(), maxAllocationBytes: Int = 1 << 36, countsInScopes: Bool = true) {
        self.allocator = allocator
        self.maxAllocationBytes = maxAllocationBytes
        self.countsInScopes = countsInScopes
    }

    deinit {
        for entry in cache { allocator.deallocate(entry.pointer, bytes: entry.size) }
    }

    /// Bytes in cached free buffers.
    public var cachedBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return stats.reservedBytes - stats.liveBytes
    }

    /// Hands out a buffer of at least `bytes` bytes (contents undefined unless `zeroed`).
    public func allocate(bytes: Int, zeroed: Bool = false) throws -> DeviceBuffer {
        guard bytes >= 0, bytes <= maxAllocationBytes else { throw TensorError.allocationFailed(bytes: bytes) }
        let size = max(64, (bytes + 63) & ~63)
        // blocks of this size are mappings the allocator can split and make of other blocks' pages
        let least = allocator.reusableBlockBytes.flatMap { size >= $0 ? $0 : nil }
        lock.lock()
        var reused: Block?
        var evicted: [Block] = []
        var pieces: [(pointer: UnsafeMutableRawPointer, bytes: Int)] = []
        if let i = bestFit(size, splits: least != nil) {
            reused = cache.remove(at: i)
            if let least { reused = cut(reused!, to: size, least: least) }   // what the request does not need stays cached
            stats.reuseCount += 1
            stats.liveBytes += reused!.size
            if reused!.origin != 0 { origins[reused!.pointer] = reused!.origin }
        } else {
            highWater = max(highWater, stats.liveBytes + size)
            if !keeping {
                // A request the allocator can make of other blocks' memory takes cached blocks' pages first (the
                // smallest block that covers what is still missing, else the largest), the last block split so that
                // what the request does not need stays cached; only what the cache cannot cover is fresh memory.
                if let least {
                    if moves >= movesBeforeEmptying { evicted += takeCache() }
                    var need = size
                    while need > 0, let i = coveringCandidate(need, atLeast: least, movable: true) {
                        let piece = cut(cache.remove(at: i), to: need, least: least)
                        stats.reservedBytes -= piece.size
                        pieces.append((piece.pointer, piece.size))
                        need -= piece.size
                    }
                    moves += pieces.count
                }
                // then cached buffers are released while reserved memory would exceed the live peak
                while stats.reservedBytes + size > highWater, let i = coveringCandidate(stats.reservedBytes + size - highWater) {
                    let old = cache.remove(at: i)
                    stats.reservedBytes -= old.size
                    evicted.append(old)
                }
            }
        }
        lock.unlock()
        for old in evicted { allocator.deallocate(old.pointer, bytes: old.size) }
        let pointer: UnsafeMutableRawPointer, capacity: Int
        if let reused {
            (pointer, capacity) = (reused.pointer, reused.size)
        } else {
            do {
                pointer = try pieces.isEmpty ? allocator.allocate(bytes: size) : allocator.allocate(bytes: size, reusing: pieces)
            } catch let e as TensorError where e.isAllocationFailure && pieces.isEmpty {
                // out of memory while free buffers sit in the cache (sized for an earlier, larger shape: a tile the
                // upscaler is now halving): give them back and try once more, as PyTorch's caching allocator does
                // before it reports out of memory
                guard trim() > 0 else { throw e }
                pointer = try allocator.allocate(bytes: size)
            }
            capacity = size
            lock.lock()
            stats.allocationCount += 1
            stats.liveBytes += size
            stats.reservedBytes += size
            stats.peakReservedBytes = max(stats.peakReservedBytes, stats.reservedBytes)
            if least != nil {
                lastOrigin += 1
                origins[pointer] = pieces.isEmpty ? lastOrigin : -lastOrigin
            }
            lock.unlock()
        }
        lock.lock()
        stats.peakLiveBytes = max(stats.peakLiveBytes, stats.liveBytes)
        lock.unlock()
        if zeroed { allocator.zero(pointer, bytes: capacity) }
        return DeviceBuffer(pointer: pointer, byteCount: capacity, pool: self, scope: countsInScopes ? MemoryScope.current : nil)
    }

    /// Index of the smallest cached buffer holding `size` bytes (the newest among equals); nil when none fits. Unless
    /// `splits` (the allocator splits blocks of this size; not small requests, not device memory), at most twice
    /// `size` for requests under 64 MiB, a quarter more for larger ones. Caller holds the lock.
    /// Before misses reused cached pages, every miss mapped fresh pages and the own Winograd kernel's per-call
    /// transformed weights come in many sizes: whole-photo restore (AVX2 path) 944 K page faults with a quarter
    /// everywhere, 833 K with this rule, 753 K with twice everywhere, which also let 64 MiB temporaries take 128 MiB
    /// buffers (max RSS +20 MB, at the peak).
    private func bestFit(_ size: Int, splits: Bool) -> Int? {
        let limit = splits ? Int.max : size < 64 << 20 ? size * 2 : size + size / 4
        var best: Int?
        for i in cache.indices.reversed() where cache[i].size >= size && cache[i].size <= limit {
            if best == nil || cache[i].size < cache[best!].size { best = i }
            if cache[i].size == size { break }
        }
        return best
    }

    /// The smallest cached buffer of at least `bytes`, else the largest, among those of `least` bytes or more (with
    /// `movable`, blocks made of pieces only where the allocator `reusesBlocksOfPieces`: where it does not, a
    /// steady-state forward maps more fresh pages; page faults per forward, Linux 6.18 with it off: ParseNet 512²
    /// 6 K → 34 K, GPEN-512 2 K → 47 K, x2plus 256² 0.5 K → 10 K); nil when there is none. Caller holds the lock.
    private func coveringCandidate(_ bytes: Int, atLeast least: Int = 0, movable: Bool = false) -> Int? {
        var fit: Int?, largest: Int?
        let anyBlock = !movable || allocator.reusesBlocksOfPieces
        for i in cache.indices where cache[i].size >= least && (anyBlock || cache[i].origin > 0) {
            let c = cache[i].size
            if c >= bytes, fit == nil || c < cache[fit!].size { fit = i }
            if largest == nil || c > cache[largest!].size { largest = i }
        }
        return fit ?? largest
    }

    /// Where a cached block is split (a multiple of every page size; the blocks that are split are mappings).
    static let splitGranule = 1 << 16

    /// `block` cut to `bytes` rounded up to the split granule when what is left is a block of `least` bytes or more,
    /// which goes back to the cache; the part kept is `least` bytes or more too, so that the allocator still tells
    /// both for mappings by their size. Caller holds the lock.
    private func cut(_ block: Block, to bytes: Int, least: Int) -> Block {
        let used = max(least, (bytes + Self.splitGranule - 1) / Self.splitGranule * Self.splitGranule)
        guard block.size - used >= least else { return block }
        cache.append((block.size - used, block.pointer + used, block.origin))
        return (used, block.pointer, block.origin)
    }

    /// Every cached block, taken out of the cache and the reserved count for the caller to free; the moves counted
    /// since the cache was last emptied start again. Caller holds the lock.
    private func takeCache() -> [Block] {
        let taken = cache
        cache.removeAll()
        for b in taken { stats.reservedBytes -= b.size }
        moves = 0
        return taken
    }

    func recycle(pointer: UnsafeMutableRawPointer, byteCount: Int) {
        lock.lock()
        var block: Block = (byteCount, pointer, origins.removeValue(forKey: pointer) ?? 0)
        if block.origin != 0 {
            // joined with the cached parts of the same mapping on either side
            if let i = cache.firstIndex(where: { $0.origin == block.origin && $0.pointer + $0.size == block.pointer }) {
                let left = cache.remove(at: i)
                block = (left.size + block.size, left.pointer, block.origin)
            }
            if let i = cache.firstIndex(where: { $0.origin == block.origin && block.pointer + block.size == $0.pointer }) {
                block.size += cache.remove(at: i).size
            }
        }
        cache.append(block)
        stats.liveBytes -= byteCount
        lock.unlock()
    }

    /// Current statistics.
    public var memoryStats: MemoryStats {
        lock.lock(); defer { lock.unlock() }
        return stats
    }

    /// Sets the peaks to the current values and zeroes the allocation/reuse counters.
    public func resetPeak() {
        lock.lock()
        stats.peakLiveBytes = stats.liveBytes
        stats.peakReservedBytes = stats.reservedBytes
        stats.allocationCount = 0
        stats.reuseCount = 0
        lock.unlock()
    }

    /// Releases every cached free buffer to the system (nothing while `keepsMemory`).
    /// Returns the bytes given back.
    @discardableResult public func trim() -> Int {
        lock.lock()
        if keeping { lock.unlock(); return 0 }
        let released = takeCache()
        lock.unlock()
        for entry in released { allocator.deallocate(entry.pointer, bytes: entry.size) }
        return released.reduce(0) { $0 + $1.size }
    }
}
