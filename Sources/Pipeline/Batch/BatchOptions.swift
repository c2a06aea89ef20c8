// Plain batch settings; the CLI layer maps its flags onto this struct (no ArgumentParser here).

import Foundation

/// Output file format choice: `auto` keeps the input's (sniffed) format.
public enum BatchOutputExtension: String, Sendable, CaseIterable {
    case auto, png, jpg, webp

    /// The fixed format, or nil for `auto`.
    public var format: BatchImageFormat? {
        switch self {
        case .auto: nil
        case .png: .png
        case .jpg: .jpeg
        case .webp: .webp
        }
    }
}

/// How progress is shown: `auto` picks a live line on a terminal and plain lines otherwise.
public enum BatchProgressMode: String, Sendable, CaseIterable {
    case auto, tty, plain, quiet, json
}

/// Everything that controls a batch run, independent of the per-image processor.
public struct BatchOptions: Sendable {
    /// Output folder; nil writes each output next to its input.
    public var outputDirectory: String?
    /// Descend into sub-folders of folder inputs and mirror the tree under `outputDirectory`.
    public var recursive: Bool = false
    /// Appended to the input's stem: `<stem><suffix>.<ext>`.
    public var suffix: String = ""
    /// Output format (`auto` = the input's format).
    public var outputExtension: BatchOutputExtension = .auto
    /// Skip inputs whose output already exists (resume); on by default.
    public var skipExisting: Bool = true
    /// Redo inputs whose output already exists (wins over `skipExisting`).
    public var overwrite: Bool = false
    /// Images computing at the same time (compute slots), at least 1.
    public var jobs: Int = 1
    /// Overlap decode of the next image and encode of the previous one with the current compute.
    public var pipelined: Bool = true
    /// Budget in bytes for the summed memory estimates of images in flight; nil = unlimited.
    public var maxMemory: Int?
    /// Process only this shard of the sorted input list; nil = everything.
    public var shard: BatchShard?
    /// Where the JSON-lines record goes; nil = `<outputDirectory>/results.jsonl` (no record without an output folder).
    public var recordPath: String?
    /// Progress display.
    public var progress: BatchProgressMode = .auto

    /// Default options (non-recursive, skip-existing, one job, pipelined).
    public init() {}

    /// The record path actually used: `recordPath`, else `<outputDirectory>/results.jsonl`, else nil.
    public var effectiveRecordPath: String? {
        if let recordPath { return recordPath }
        guard let outputDirectory else { return nil }
        return joinPath(outputDirectory, "results.jsonl")
    }

    /// Throws if a setting is out of range (jobs < 1, non-positive memory budget, suffix with a path separator).
    public func validate() throws(BatchError) {
        guard jobs >= 1 else { throw .invalidOption(name: "--jobs", reason: "must be at least 1, got \(jobs)") }
        if let maxMemory, maxMemory <= 0 {
            throw .invalidOption(name: "--max-memory", reason: "must be positive, got \(maxMemory)")
        }
        guard !suffix.contains("/") && !suffix.contains("\0") else {
            throw .invalidOption(name: "--suffix", reason: "must not contain '/' ('\(suffix)')")
        }
    }
}

/// Joins two path components with exactly one `/`.
func joinPath(_ a: String, _ b: String) -> String {
    if a.isEmpty { return b }
    if b.isEmpty { return a }
    return a.hasSuffix("/") ? a + b : a + "/" + b
}

