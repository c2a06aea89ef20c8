import Foundation
import TensorCore

/// Runs `primary`; an image it cannot compute for a reason a fallback covers is computed again by that fallback's
/// processor — the same models another way: in fp32 on the same device after an fp16 overflow (NaN or infinite
/// values), on the CPU when the GPU cannot hold even the smallest tile (`--device auto`) — built on first need and
/// kept for later images; its notes say why (`fallback`, in the record and the progress line). Without a fallback
/// that applies the error stands. Decoding and encoding are the primary's.
public final class FallbackProcessor<P: BatchProcessor>: BatchProcessor, @unchecked Sendable {
    // SAFETY: `built` and `counts` are read and written under `lock`; the processors are Sendable.

    /// Another way to compute an image, and when it applies.
    public struct Fallback: Sendable {
        /// What it is, for the notes ("fp16 → fp32").
        public let name: String
        /// Why an image went to it, for the closing line ("NaN or infinite values in the first run").
        public let why: String
        /// Whether it applies to the primary's error.
        public let applies: @Sendable (any Error) -> Bool
        /// Builds its processor (on first need).
        public let make: @Sendable () throws -> P

        public init(name: String, why: String, applies: @escaping @Sendable (any Error) -> Bool, make: @escaping @Sendable () throws -> P) {
            self.name = name; self.why = why; self.applies = applies; self.make = make
        }

        /// An fp16 overflow (`TensorError.nonFinite`) computed again by `make`'s processor (the models in fp32).
        public static func overflow(name: String, make: @escaping @Sendable () throws -> P) -> Fallback {
            Fallback(name: name, why: "NaN or infinite values in the first run",
                     applies: { ($0 as? TensorError)?.isNonFinite == true }, make: make)
        }

        /// An image GPU `device` ("cuda:0") cannot hold even with the smallest tile or one face per pass, computed
        /// again by `make`'s processor (the models on the CPU: `--device auto`).
        public static func onTheCPU(from device: String, make: @escaping @Sendable () throws -> P) -> Fallback {
            Fallback(name: "\(device) → cpu", why: "out of GPU memory even with the smallest tile or face batch",
                     applies: { ($0 as? TensorError)?.isAllocationFailure == true }, make: make)
        }
    }

    public let primary: P
    public let fallbacks: [Fallback]
    private let lock = NSLock()
    private var built: [Int: P] = [:]
    private var counts: [Int]

    public init(_ primary: P, fallbacks: [Fallback]) {
        self.primary = primary
        self.fallbacks = fallbacks
        counts = Array(repeating: 0, count: fallbacks.count)
    }

    /// An fp16 overflow computed again by `make`'s processor; without `make`, no fallback.
    public convenience init(_ primary: P, name: String, fallback make: (@Sendable () throws -> P)?) {
        self.init(primary, fallbacks: make.map { [.overflow(name: name, make: $0)] } ?? [])
    }

    /// Images computed by each fallback so far (in `fallbacks` order).
    public var fallbackCounts: [(fallback: Fallback, images: Int)] { lock.withLock { Array(zip(fallbacks, counts)) } }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> P.Loaded {
        try await primary.load(item, notes: &notes)
    }

    public func compute(_ loaded: P.Loaded, item: BatchItem, notes: inout BatchNotes) async throws -> P.Computed {
        do {
            return try await primary.compute(loaded, item: item, notes: &notes)
        } catch {
            guard let i = fallbacks.firstIndex(where: { $0.applies(error) }) else { throw error }
            let other = try lock.withLock { () throws -> P in
                if let f = built[i] { return f }
                let f = try fallbacks[i].make()
                built[i] = f
                return f
            }
            notes.fallback = "\(fallbacks[i].name): \(error)"
            let out = try await other.compute(loaded, item: item, notes: &notes)
            lock.withLock { counts[i] += 1 }
            return out
        }
    }

    public func store(_ computed: P.Computed, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        try await primary.store(computed, item: item, temporaryPath: temporaryPath, notes: &notes)
    }
}
