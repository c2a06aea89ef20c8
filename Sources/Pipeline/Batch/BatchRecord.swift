// The per-file record (results.jsonl) and the run summary.

import Foundation

/// What happened to one input file.
public enum BatchStatus: String, Sendable, Codable, CaseIterable {
    case ok, skipped, failed
    case notImage = "not-image"
}

/// One line of `results.jsonl`.
public struct BatchRecord: Sendable, Codable, Equatable {
    /// Input path.
    public var input: String
    /// Output path (nil for non-images).
    public var output: String?
    /// Outcome.
    public var status: BatchStatus
    /// Error or warning message (failed, not-image, or the reason for a skip).
    public var error: String?
    /// Seconds per stage: `load`, `compute`, `store` (measured by the runner) plus any the processor adds.
    public var timings: [String: Double]?
    /// Number of faces found, for processors that detect faces.
    public var faces: Int?
    /// Input width in pixels, when the processor reports it.
    public var width: Int?
    /// Input height in pixels, when the processor reports it.
    public var height: Int?
    /// Memory figures in bytes (`tensor_peak_bytes`: the engine's largest live tensor bytes while this image was
    /// computed — process-wide, so with `--jobs` above 1 it covers the images in flight together; `weights_bytes`).
    public var memory: [String: Int]?
    /// How the image was tiled, when it was (for example "256×400, 2 passes": tile width × height in input pixels).
    public var tiles: String?
    /// Why the image was computed again another way, when it was ("fp16 → fp32: …": an fp16 overflow).
    public var fallback: String?
    /// Which device computed the image, when a run spreads over several GPUs ("cuda:1").
    public var device: String?

    /// Creates a record.
    public init(input: String, output: String?, status: BatchStatus, error: String? = nil,
                timings: [String: Double]? = nil, faces: Int? = nil, width: Int? = nil, height: Int? = nil,
                memory: [String: Int]? = nil, tiles: String? = nil, fallback: String? = nil, device: String? = nil) {
        self.input = input
        self.output = output
        self.status = status
        self.error = error
        self.timings = timings
        self.faces = faces
        self.width = width
        self.height = height
        self.memory = memory
        self.tiles = tiles
        self.fallback = fallback
        self.device = device
    }

    /// The record of `item` with what its stages noted (empty timings and memory left out).
    public init(item: BatchItem, status: BatchStatus, error: String? = nil, notes: BatchNotes) {
        self.init(input: item.input, output: item.output, status: status, error: error,
                  timings: notes.timings.isEmpty ? nil : notes.timings, faces: notes.faces, width: notes.width,
                  height: notes.height, memory: notes.memory.isEmpty ? nil : notes.memory, tiles: notes.tiles,
                  fallback: notes.fallback, device: notes.device)
    }

    /// The record as one JSON line (sorted keys, no trailing newline).
    public func jsonLine() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(self), let s = String(data: data, encoding: .utf8) else {
            return #"{"status":"failed","error":"record encoding failed"}"#
        }
        return s
    }

    /// Parses every line of a `results.jsonl` file; throws naming the file and line on malformed content.
    public static func readAll(from path: String) throws(BatchError) -> [BatchRecord] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8)
        else { throw .io(path: path, operation: "read record", reason: "cannot read file as UTF-8") }
        var records: [BatchRecord] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            do { records.append(try JSONDecoder().decode(BatchRecord.self, from: Data(line.utf8))) } catch {
                throw .io(path: path, operation: "parse record line \(n + 1) of", reason: "\(error)")
            }
        }
        return records
    }
}

/// Counts and throughput of a finished (or running) batch.
public struct BatchSummary: Sendable, Codable, Equatable {
    /// Files considered in this shard (images and non-images).
    public var total: Int = 0
    /// Images written.
    public var ok: Int = 0
    /// Images whose output already existed.
    public var skipped: Int = 0
    /// Images that failed.
    public var failed: Int = 0
    /// Files that are not images.
    public var notImage: Int = 0
    /// Wall-clock seconds of the run.
    public var wallSeconds: Double = 0
    /// Why the run stopped starting images, when it did (every device lost: "cuda:0 is lost: …").
    public var stopped: String?
    /// Images the run never started because it stopped (a rerun, which skips existing outputs, does them).
    public var notStarted: Int?

    /// Creates an empty summary.
    public init() {}

    /// Images written per minute of wall time (0 when nothing ran).
    public var imagesPerMinute: Double { wallSeconds > 0 ? Double(ok) * 60 / wallSeconds : 0 }

    /// Process exit status: 69 (EX_UNAVAILABLE, as for "CUDA unavailable") when the run stopped because its devices
    /// were lost, else 0 when no file failed, 1 otherwise (non-images and skips are not failures).
    public var exitCode: Int32 { stopped != nil ? 69 : failed == 0 ? 0 : 1 }

    /// Adds one record to the counts.
    public mutating func count(_ status: BatchStatus) {
        total += 1
        switch status {
        case .ok: ok += 1
        case .skipped: skipped += 1
        case .failed: failed += 1
        case .notImage: notImage += 1
        }
    }

    /// One human line: `12 ok, 3 skipped, 1 failed, 2 not images in 4.2 s (171.4 images/min)`.
    public var line: String {
        let rate = imagesPerMinute
        let counts = "\(ok) ok, \(skipped) skipped, \(failed) failed, \(notImage) not images"
            + (stopped != nil ? ", \(notStarted ?? 0) not started" : "")
        return counts + String(format: " in %.1f s (%.1f images/min)", wallSeconds, rate)
            + (stopped.map { "; stopped: \($0) (run again: existing outputs are skipped)" } ?? "")
    }
}

/// Appends records to a JSON-lines file with one `write(2)` per line on an `O_APPEND` descriptor, so
/// concurrent shards sharing a local output folder never interleave inside a line.
final class BatchRecordFile: @unchecked Sendable {
    // SAFETY: `fd` is immutable after init and write(2) on O_APPEND is safe from any thread.
    private let fd: Int32
    let path: String

    init(path: String) throws(BatchError) {
        let dir = (path as NSString).deletingLastPathComponent
        if !dir.isEmpty {
            do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                throw .io(path: dir, operation: "create record folder", reason: (error as NSError).localizedDescription)
            }
        }
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .io(path: path, operation: "open record", reason: String(cString: strerror(errno))) }
        self.path = path
    }

    deinit { close(fd) }

    func append(_ record: BatchRecord) {
        let bytes = Array((record.jsonLine() + "\n").utf8)
        _ = bytes.withUnsafeBytes { raw in write(fd, raw.baseAddress, raw.count) }
    }
}
