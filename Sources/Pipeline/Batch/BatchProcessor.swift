// The per-image work a batch runs, as three stages the runner can overlap: load → compute → store.

import TensorCore

/// Facts a processor reports about one image; the runner copies them into the record.
public struct BatchNotes: Sendable, Equatable {
    /// Extra stage timings in seconds (for example `detect`, `restore`); the runner adds `load`/`compute`/`store`.
    public var timings: [String: Double] = [:]
    /// Number of faces found, if the processor detects faces.
    public var faces: Int?
    /// Input width in pixels.
    public var width: Int?
    /// Input height in pixels.
    public var height: Int?
    /// Memory figures in bytes, named `*_bytes` (for example the engine's `tensor_peak_bytes`, `weights_bytes`).
    public var memory: [String: Int] = [:]
    /// How the image was tiled when it was (for example "256×400, 2 passes").
    public var tiles: String?
    /// Why the image was computed again another way, when it was (for example "fp16 → fp32: GPEN-512: 12 of 786432
    /// output values are NaN or infinite").
    public var fallback: String?
    /// Which device computed the image, when a run spreads over several ("cuda:1").
    public var device: String?

    /// Records the compute engine's figures: its tensor peak (the largest of the values reported for this image)
    /// and the bytes its prepared weights hold; on a GPU also the device memory as PyTorch counts it
    /// (`vram_allocated_peak_bytes` = live peak + weights + workspace, like `max_memory_allocated`;
    /// `vram_reserved_peak_bytes` = the pool's high-water mark + weights + workspace, like `max_memory_reserved`).
    public mutating func recordEngine(_ stats: MemoryStats, tensorPeak: Int? = nil) {
        memory["tensor_peak_bytes"] = max(memory["tensor_peak_bytes"] ?? 0, tensorPeak ?? stats.peakLiveBytes)
        memory["weights_bytes"] = stats.weightBytes
        if stats.onDevice {
            memory["vram_allocated_peak_bytes"] = max(memory["vram_allocated_peak_bytes"] ?? 0, stats.allocatedPeakBytes)
            memory["vram_reserved_peak_bytes"] = max(memory["vram_reserved_peak_bytes"] ?? 0, stats.reservedPeakBytes)
        }
    }

    /// Creates empty notes.
    public init() {}

    /// Takes what a later stage noted in notes of its own (a service runs each stage apart): its timings and memory
    /// figures, and each of its other fields it set.
    public mutating func take(_ later: BatchNotes) {
        timings.merge(later.timings) { $1 }
        memory.merge(later.memory) { $1 }
        faces = later.faces ?? faces
        width = later.width ?? width
        height = later.height ?? height
        tiles = later.tiles ?? tiles
        fallback = later.fallback ?? fallback
        device = later.device ?? device
    }
}

/// Per-image work split into stages so decode and encode of neighbouring images overlap the current compute.
///
/// The runner calls `load`, then `compute` (at most `jobs` at a time, in arrival order), then `store` with a
/// temporary path in the destination folder; it renames that file onto `item.output` only after `store` returns.
/// Any stage may throw: the file is then recorded as failed and the others continue.
public protocol BatchProcessor: Sendable {
    /// What `load` produces (for example decoded pixels).
    associatedtype Loaded: Sendable
    /// What `compute` produces (for example the restored image).
    associatedtype Computed: Sendable

    /// Reads and decodes `item.input`; never modifies it.
    func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> Loaded
    /// Runs the models.
    func compute(_ loaded: Loaded, item: BatchItem, notes: inout BatchNotes) async throws -> Computed
    /// Encodes `computed` in `item.outputFormat` and writes it to `temporaryPath` (not to `item.output`).
    func store(_ computed: Computed, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws
}
