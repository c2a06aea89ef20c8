import Foundation
import TensorCore

/// Host memory with a cap on the bytes held at once, like a GPU that other processes share: a request beyond it is
/// `allocationFailed`.
public final class CappedAllocator: MemoryAllocator, @unchecked Sendable {
    // SAFETY: `held` is read and written under `lock`.
    public let capacity: Int?
    private let host = HostAllocator()
    private let lock = NSLock()
    private var held = 0

    /// `capacity` nil: no cap.
    public init(capacity: Int?) { self.capacity = capacity }

    public func allocate(bytes: Int) throws -> UnsafeMutableRawPointer {
        try lock.withLock {
            if let capacity, held + bytes > capacity {
                throw TensorError.allocationFailed(bytes: bytes, detail: "the test device holds \(held) of \(capacity) bytes")
            }
            held += bytes
        }
        return try host.allocate(bytes: bytes)
    }

    public func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        lock.withLock { held -= bytes }
        host.deallocate(pointer, bytes: bytes)
    }

    public func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int) { host.zero(pointer, bytes: bytes) }
}
