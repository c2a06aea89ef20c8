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

    public var description: String {
        return "live \(liveBytes) B, peak live \(peakLiveBytes) B, reserved \(reservedBytes) B, peak reserved \(peakReservedBytes) B, \(allocationCount) allocations, \(reuseCount) reuses, weights \(weightBytes) B"
    }
}

/// A 64-byte-aligned raw allocation owned by a `BufferPool`; it goes back to the pool when released.
public final class DeviceBuffer: @unchecked Sendable {
    /// Start of the memory (64-byte aligned).
    public let pointer: UnsafeMutableRawPointer
    /// Usable size in bytes.
    public let byteCount: Int
    let pool: BufferPool?

    init(pointer: UnsafeMutableRawPointer, byteCount: Int, pool: BufferPool?) {
        self.pointer = pointer
        self.byteCount = byteCount
        self.pool = pool
    }

    deinit {
        if let pool { pool.recycle(pointer: pointer, byteCount: byteCount) } else { free(pointer) }
    }

    /// The memory as float32 elements.
    public var floats: UnsafeMutablePointer<Float> { pointer.assumingMemoryBound(to: Float.self) }
}

/// A size-bucketed pool of aligned buffers with live/peak accounting. Freed buffers are kept per exact
/// (64-byte-rounded) size and handed out again, so a network's peak is close to its widest point.
public final class BufferPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [Int: [UnsafeMutableRawPointer]] = [:]
    private var stats = MemoryStats()
    /// Largest single allocation accepted (bytes).
    public let maxAllocationBytes: Int

    /// Creates an empty pool; requests above `maxAllocationBytes` throw instead of allocating.
    public init(maxAllocationBytes: Int = 1 << 36) {
        self.maxAllocationBytes = maxAllocationBytes
    }

    deinit {
        for (_, list) in free { for p in list { Foundation.free(p) } }
    }

    /// Hands out a buffer of at least `bytes` bytes (contents undefined unless `zeroed`).
    public func allocate(bytes: Int, zeroed: Bool = false) throws -> DeviceBuffer {
        guard bytes >= 0, bytes <= maxAllocationBytes else { throw TensorError.allocationFailed(bytes: bytes) }
        let size = max(64, (bytes + 63) & ~63)
        lock.lock()
        var pointer: UnsafeMutableRawPointer?
        if var list = free[size], let p = list.popLast() {
            free[size] = list.isEmpty ? nil : list
            pointer = p
            stats.reuseCount += 1
            stats.liveBytes += size
        }
        lock.unlock()
        if pointer == nil {
            var raw: UnsafeMutableRawPointer?
            guard posix_memalign(&raw, 64, size) == 0, let raw else { throw TensorError.allocationFailed(bytes: size) }
            pointer = raw
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
        if zeroed { memset(pointer!, 0, size) }
        return DeviceBuffer(pointer: pointer!, byteCount: size, pool: self)
    }

    func recycle(pointer: UnsafeMutableRawPointer, byteCount: Int) {
        lock.lock()
        free[byteCount, default: []].append(pointer)
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
        for (size, list) in free {
            for p in list { Foundation.free(p) }
            stats.reservedBytes -= size * list.count
        }
        free.removeAll()
        lock.unlock()
    }
}
