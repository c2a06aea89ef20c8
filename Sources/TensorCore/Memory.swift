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

    /// What PyTorch's `max_memory_allocated` counts after loading: the live peak, the weights and the workspace.
    public var allocatedPeakBytes: Int { peakLiveBytes + weightBytes + workspaceBytes }

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
    /// Resizes a block from `allocate(bytes: old)` to `new` bytes keeping the memory it already has (contents
    /// undefined), or nil when this allocator cannot (the block is then unchanged). The default cannot.
    func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to new: Int) -> UnsafeMutableRawPointer?
}

extension MemoryAllocator {
    public func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to new: Int) -> UnsafeMutableRawPointer? { nil }
}

/// Host memory aligned to 64 bytes (a cache line, one AVX-512 register). Blocks of `mappingThreshold` bytes and more
/// are anonymous mappings of their own (page-aligned, as glibc's large blocks are), so that `reallocate` can move one
/// with `mremap`: its pages come along instead of being unmapped and faulted in again, zeroed, at the new size.
public struct HostAllocator: MemoryAllocator {
    /// Smallest block that is a mapping of its own.
    public static let mappingThreshold = 1 << 20

    public init() {}

    public func allocate(bytes: Int) throws -> UnsafeMutableRawPointer {
        if bytes >= Self.mappingThreshold {
            guard let m = mmap(nil, Self.pageRounded(bytes), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
                  m != MAP_FAILED else { throw TensorError.allocationFailed(bytes: bytes) }
            return m
        }
        var raw: UnsafeMutableRawPointer?
        guard posix_memalign(&raw, 64, bytes) == 0, let raw else { throw TensorError.allocationFailed(bytes: bytes) }
        return raw
    }

    public func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        if bytes >= Self.mappingThreshold { munmap(pointer, Self.pageRounded(bytes)) } else { free(pointer) }
    }

    public func reallocate(_ pointer: UnsafeMutableRawPointer, from old: Int, to new: Int) -> UnsafeMutableRawPointer? {
        guard old >= Self.mappingThreshold, new >= Self.mappingThreshold else { return nil }
        guard let m = enh_mremap_maymove(pointer, Self.pageRounded(old), Self.pageRounded(new)), m != MAP_FAILED else { return nil }
        return m
    }

    static func pageRounded(_ bytes: Int) -> Int { (bytes + 4095) & ~4095 }

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

/// A pool of buffers from one allocator (host memory unless the backend supplies another) with live/peak accounting. Freed buffers are cached and handed out again to a
/// request of the same size or somewhat smaller (best fit, newest first; see `bestFit`). On a miss the pool releases the
/// oldest cached buffers until the new allocation fits under the highest live total seen so far (live bytes
/// including the request), so reserved memory never exceeds the live peak. With exact-size free lists kept
/// forever, every distinct activation size stayed cached (GPEN-512: 1015 MiB reserved for 648 MiB live).
public final class BufferPool: @unchecked Sendable {
    private let lock = NSLock()
    /// Cached free buffers, oldest first.
    private var cache: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
    private var stats = MemoryStats()
    /// Highest live total including the request being served (the bound on reserved bytes).
    private var highWater = 0
    /// Largest single allocation accepted (bytes).
    public let maxAllocationBytes: Int
    /// Whether allocations count in the current `MemoryScope` (activations do; prepared weights do not).
    public let countsInScopes: Bool
    /// Where the memory comes from.
    public let allocator: any MemoryAllocator

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
        lock.lock()
        var reused: (size: Int, pointer: UnsafeMutableRawPointer)?
        var evicted: [(size: Int, pointer: UnsafeMutableRawPointer)] = []
        var resized: (size: Int, pointer: UnsafeMutableRawPointer)?
        if let i = bestFit(size) {
            reused = cache.remove(at: i)
            stats.reuseCount += 1
            stats.liveBytes += reused!.size
        } else {
            highWater = max(highWater, stats.liveBytes + size)
            if stats.reservedBytes + size > highWater, let i = resizeCandidate(size) {
                // cached memory must go anyway: one buffer becomes this one, with the pages it has
                resized = cache.remove(at: i)
                stats.reservedBytes -= resized!.size
            }
            var released = 0
            while stats.reservedBytes - released + size > highWater, !cache.isEmpty {
                let old = cache.removeFirst()
                released += old.size
                evicted.append(old)
            }
            stats.reservedBytes -= released
        }
        lock.unlock()
        for old in evicted { allocator.deallocate(old.pointer, bytes: old.size) }
        let pointer: UnsafeMutableRawPointer, capacity: Int
        if let reused {
            (pointer, capacity) = (reused.pointer, reused.size)
        } else {
            if let r = resized, let p = allocator.reallocate(r.pointer, from: r.size, to: size) {
                pointer = p
            } else {
                if let r = resized { allocator.deallocate(r.pointer, bytes: r.size) }
                pointer = try allocator.allocate(bytes: size)
            }
            capacity = size
            lock.lock()
            stats.allocationCount += 1
            stats.liveBytes += size
            stats.reservedBytes += size
            stats.peakReservedBytes = max(stats.peakReservedBytes, stats.reservedBytes)
            lock.unlock()
        }
        lock.lock()
        stats.peakLiveBytes = max(stats.peakLiveBytes, stats.liveBytes)
        lock.unlock()
        if zeroed { allocator.zero(pointer, bytes: capacity) }
        return DeviceBuffer(pointer: pointer, byteCount: capacity, pool: self, scope: countsInScopes ? MemoryScope.current : nil)
    }

    /// Index of the smallest cached buffer holding `size` bytes and at most twice that for requests under 64 MiB, a
    /// quarter more for larger ones (the newest among equals); nil when none fits. Caller holds the lock.
    /// Every miss maps fresh pages (large buffers are mappings of their own) and the own Winograd kernel's per-call
    /// transformed weights come in many sizes: whole-photo restore (AVX2 path) 944 K page faults with a quarter
    /// everywhere, 833 K with this rule, 753 K with twice everywhere, which also let 64 MiB temporaries take 128 MiB
    /// buffers (max RSS +20 MB, at the peak).
    private func bestFit(_ size: Int) -> Int? {
        let limit = size < 64 << 20 ? size * 2 : size + size / 4
        var best: Int?
        for i in cache.indices.reversed() where cache[i].size >= size && cache[i].size <= limit {
            if best == nil || cache[i].size < cache[best!].size { best = i }
            if cache[i].size == size { break }
        }
        return best
    }

    /// On a miss that must release cached memory: the cached buffer to resize into the request (the smallest at least
    /// as large, else the largest), so that its pages serve the request instead of fresh zeroed ones; nil when
    /// nothing is cached. Caller holds the lock. ParseNet 512² (AVX2 path): every forward unmapped and faulted in
    /// ≈ 0.9 GB (239 K faults), mostly reflect-padded copies and conv outputs a little larger than the cached buffers.
    private func resizeCandidate(_ size: Int) -> Int? {
        var above: Int?, below: Int?
        for i in cache.indices {
            if cache[i].size >= size {
                if above == nil || cache[i].size < cache[above!].size { above = i }
            } else if below == nil || cache[i].size > cache[below!].size { below = i }
        }
        return above ?? below
    }

    func recycle(pointer: UnsafeMutableRawPointer, byteCount: Int) {
        lock.lock()
        cache.append((byteCount, pointer))
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

    /// Releases every cached free buffer to the system.
    public func trim() {
        lock.lock()
        let released = cache
        cache.removeAll()
        for entry in released { stats.reservedBytes -= entry.size }
        lock.unlock()
        for entry in released { allocator.deallocate(entry.pointer, bytes: entry.size) }
    }
}
