// Progress display: a live terminal line, plain lines, nothing, or JSON lines for machines.

import Foundation

/// Counts, rate and ETA at one moment of a run.
public struct BatchProgressSnapshot: Sendable, Equatable {
    /// Files finished so far (any status).
    public var done: Int
    /// Files in this run (this shard).
    public var total: Int
    /// Images actually processed so far (ok + failed; skips and non-images excluded).
    public var processed: Int
    /// Images still to process (not yet finished, excluding files known to need no work).
    public var remaining: Int
    /// Seconds since the run started.
    public var elapsed: Double

    /// Creates a snapshot.
    public init(done: Int, total: Int, processed: Int, remaining: Int, elapsed: Double) {
        self.done = done
        self.total = total
        self.processed = processed
        self.remaining = remaining
        self.elapsed = elapsed
    }

    /// Processed images per minute (nil before the first one).
    public var imagesPerMinute: Double? {
        processed > 0 && elapsed > 0 ? Double(processed) * 60 / elapsed : nil
    }

    /// Estimated seconds left at the current rate (nil before the first processed image).
    public var etaSeconds: Double? {
        guard let rate = imagesPerMinute, rate > 0 else { return nil }
        return Double(remaining) * 60 / rate
    }
}

/// Receives run events; calls are serialised by the runner but may come from any thread.
public protocol BatchProgressReporter: Sendable {
    /// The run starts with `total` files (this shard) of which `toProcess` are images to consider.
    func started(total: Int, toProcess: Int)
    /// An image enters processing.
    func itemStarted(_ item: BatchItem)
    /// A file is finished (any status).
    func itemFinished(_ record: BatchRecord, snapshot: BatchProgressSnapshot)
    /// The run is over.
    func finished(_ summary: BatchSummary)
}

/// Writes text to standard error (unbuffered, one write per call).
public let batchStandardError: @Sendable (String) -> Void = { text in
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Writes text to standard output (one write per call).
public let batchStandardOutput: @Sendable (String) -> Void = { text in
    let bytes = Array(text.utf8)
    _ = bytes.withUnsafeBytes { write(STDOUT_FILENO, $0.baseAddress, $0.count) }
}

/// Builds the reporter for `mode`; `auto` is the live line when standard error is a terminal, plain lines otherwise.
public func makeBatchProgressReporter(_ mode: BatchProgressMode) -> any BatchProgressReporter {
    switch mode {
    case .auto: isatty(STDERR_FILENO) != 0 ? TerminalBatchProgress() : PlainBatchProgress()
    case .tty: TerminalBatchProgress()
    case .plain: PlainBatchProgress()
    case .quiet: QuietBatchProgress()
    case .json: JSONBatchProgress()
    }
}

/// Formats seconds as `1h02m`, `3m05s` or `42s`.
public func formatBatchDuration(_ seconds: Double) -> String {
    guard seconds.isFinite, seconds >= 0 else { return "?" }
    let s = Int(seconds.rounded())
    if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
    if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
    return "\(s)s"
}

/// Seconds one image took: the runner's own stages (load, compute, store) when present — the processor's stages
/// (detect, restore, upscale, …) happen inside them and are not added again — else the sum of what is there.
func imageSeconds(_ timings: [String: Double]) -> Double {
    let own = ["load", "compute", "store"].compactMap { timings[$0] }
    return own.isEmpty ? timings.values.reduce(0, +) : own.reduce(0, +)
}

private func describe(_ record: BatchRecord) -> String {
    var s = "\(record.status.rawValue) \(record.input)"
    if let out = record.output, record.status == .ok || record.status == .skipped { s += " -> \(out)" }
    if let t = record.timings.map(imageSeconds), record.status == .ok {
        let extra = [record.device, record.tiles.map { "tiles \($0)" }, record.fallback].compactMap { $0 }
        s += String(format: " (%.2f s", t) + extra.map { "; " + $0 }.joined() + ")"
    }
    if let e = record.error, record.status != .skipped { s += ": \(e)" }
    return s
}

/// Prints only failed files (one line each); no progress, no summary.
public struct QuietBatchProgress: BatchProgressReporter {
    private let sink: @Sendable (String) -> Void
    /// Creates a reporter writing failures to `sink` (standard error by default).
    public init(sink: @escaping @Sendable (String) -> Void = batchStandardError) { self.sink = sink }
    public func started(total: Int, toProcess: Int) {}
    public func itemStarted(_ item: BatchItem) {}
    public func itemFinished(_ record: BatchRecord, snapshot: BatchProgressSnapshot) {
        if record.status == .failed { sink(describe(record) + "\n") }
    }
    public func finished(_ summary: BatchSummary) {}
}

/// One line per finished file and a summary line (for logs and pipes).
public struct PlainBatchProgress: BatchProgressReporter {
    private let sink: @Sendable (String) -> Void
    /// Creates a reporter writing to `sink` (standard error by default).
    public init(sink: @escaping @Sendable (String) -> Void = batchStandardError) { self.sink = sink }
    public func started(total: Int, toProcess: Int) { sink("batch: \(total) files\n") }
    public func itemStarted(_ item: BatchItem) {}
    public func itemFinished(_ record: BatchRecord, snapshot: BatchProgressSnapshot) {
        let width = String(snapshot.total).count
        let done = String(repeating: " ", count: max(0, width - String(snapshot.done).count)) + String(snapshot.done)
        sink("[\(done)/\(snapshot.total)] \(describe(record))\n")
    }
    public func finished(_ summary: BatchSummary) { sink("batch: \(summary.line)\n") }
}

/// A single updating terminal line: count/total, rate, ETA and the current file; failures are printed above it.
public final class TerminalBatchProgress: BatchProgressReporter, @unchecked Sendable {
    // SAFETY: all mutable state is guarded by `lock`.
    private let lock = NSLock()
    private let sink: @Sendable (String) -> Void
    private let columns: Int
    private var current: [(input: String, name: String)] = []
    private var last = BatchProgressSnapshot(done: 0, total: 0, processed: 0, remaining: 0, elapsed: 0)

    /// Creates a reporter writing to `sink` (standard error by default), truncating the line to `columns`.
    public init(sink: @escaping @Sendable (String) -> Void = batchStandardError, columns: Int? = nil) {
        self.sink = sink
        var size = winsize()
        if let columns {
            self.columns = columns
        } else if ioctl(STDERR_FILENO, UInt(TIOCGWINSZ), &size) == 0 && size.ws_col > 20 {
            self.columns = Int(size.ws_col)
        } else {
            self.columns = 100
        }
    }

    /// The status line for a snapshot and current file (exposed for tests).
    public func statusLine(_ s: BatchProgressSnapshot, current: String?) -> String {
        var line = "[\(s.done)/\(s.total)]"
        if let rate = s.imagesPerMinute { line += String(format: " %.1f img/min", rate) }
        if let eta = s.etaSeconds { line += " ETA \(formatBatchDuration(eta))" }
        if let current { line += " " + current }
        if line.count > columns - 1 { line = String(line.prefix(columns - 2)) + "…" }
        return line
    }

    private func redraw() {
        sink("\r\u{1B}[2K" + statusLine(last, current: current.last?.name))
    }

    public func started(total: Int, toProcess: Int) {
        lock.withLock {
            last.total = total
            redraw()
        }
    }
    public func itemStarted(_ item: BatchItem) {
        lock.withLock {
            current.append((item.input, item.relativePath))
            redraw()
        }
    }
    public func itemFinished(_ record: BatchRecord, snapshot: BatchProgressSnapshot) {
        lock.withLock {
            if let i = current.lastIndex(where: { $0.input == record.input }) { current.remove(at: i) }
            last = snapshot
            if record.status == .failed || record.status == .notImage {
                sink("\r\u{1B}[2K" + describe(record) + "\n")
            }
            redraw()
        }
    }
    public func finished(_ summary: BatchSummary) {
        lock.withLock { sink("\r\u{1B}[2K" + "batch: \(summary.line)\n") }
    }
}

/// JSON lines for machines: `{"event":"start",...}`, one `"file"` event per file, then `"summary"`.
public struct JSONBatchProgress: BatchProgressReporter {
    private let sink: @Sendable (String) -> Void
    /// Creates a reporter writing to `sink` (standard output by default).
    public init(sink: @escaping @Sendable (String) -> Void = batchStandardOutput) { self.sink = sink }

    private struct Event: Encodable {
        var event: String
        var total: Int?
        var done: Int?
        var etaSeconds: Double?
        var imagesPerMinute: Double?
        var record: BatchRecord?
        var summary: BatchSummary?
    }

    private func emit(_ event: Event) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(event), let text = String(data: data, encoding: .utf8) else { return }
        sink(text + "\n")
    }

    public func started(total: Int, toProcess: Int) { emit(Event(event: "start", total: total)) }
    public func itemStarted(_ item: BatchItem) {}
    public func itemFinished(_ record: BatchRecord, snapshot: BatchProgressSnapshot) {
        emit(Event(event: "file", total: snapshot.total, done: snapshot.done, etaSeconds: snapshot.etaSeconds,
                   imagesPerMinute: snapshot.imagesPerMinute, record: record))
    }
    public func finished(_ summary: BatchSummary) {
        var s = summary
        s.wallSeconds = (s.wallSeconds * 1000).rounded() / 1000
        emit(Event(event: "summary", imagesPerMinute: summary.imagesPerMinute, summary: s))
    }
}
