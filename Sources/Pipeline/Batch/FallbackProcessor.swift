import Foundation
import TensorCore

/// Runs `primary`; an image whose networks give NaN or infinite values (`TensorError.nonFinite`: an fp16 overflow)
/// is computed again by a fallback processor — the same models another way, e.g. in fp32 on the same device — built
/// on first need and kept for later images, and its notes say why (`fallback`, in the record and the progress line).
/// Without a fallback (`make` nil) the error stands. Decoding and encoding are the primary's.
public final class FallbackProcessor<P: BatchProcessor>: BatchProcessor, @unchecked Sendable {
    // SAFETY: `fallback` is built and read under `lock`; the processors are Sendable.
    public let primary: P
    /// What the fallback is, for the notes ("fp16 → fp32").
    public let name: String
    private let make: (@Sendable () throws -> P)?
    private let lock = NSLock()
    private var fallback: P?
    private var images = 0

    public init(_ primary: P, name: String, fallback make: (@Sendable () throws -> P)?) {
        self.primary = primary
        self.name = name
        self.make = make
    }

    /// Images computed by the fallback so far.
    public var fallbackCount: Int { lock.withLock { images } }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> P.Loaded {
        try await primary.load(item, notes: &notes)
    }

    public func compute(_ loaded: P.Loaded, item: BatchItem, notes: inout BatchNotes) async throws -> P.Computed {
        do {
            return try await primary.compute(loaded, item: item, notes: &notes)
        } catch let e as TensorError where e.isNonFinite && make != nil {
            let other = try lock.withLock { () throws -> P in
                if let f = fallback { return f }
                let f = try make!()
                fallback = f
                return f
            }
            notes.fallback = "\(name): \(e)"
            let out = try await other.compute(loaded, item: item, notes: &notes)
            lock.withLock { images += 1 }
            return out
        }
    }

    public func store(_ computed: P.Computed, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        try await primary.store(computed, item: item, temporaryPath: temporaryPath, notes: &notes)
    }
}
