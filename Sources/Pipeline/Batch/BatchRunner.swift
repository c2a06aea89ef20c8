// Runs a BatchProcessor over a plan: bounded concurrency, overlapped stages, memory budget, atomic outputs.

import Foundation
import TensorCore

/// A FIFO counting semaphore for async tasks; a request larger than the capacity is clamped so it runs alone.
actor BatchGate {
    private let capacity: Int
    private var available: Int
    private var waiters: [(weight: Int, continuation: CheckedContinuation<Void, Never>)] = []

    init(capacity: Int) {
        self.capacity = max(1, capacity)
        self.available = max(1, capacity)
    }

    /// The weight actually taken for a request of `weight`.
    func clamped(_ weight: Int) -> Int { min(max(weight, 0), capacity) }

    func acquire(_ weight: Int = 1) async {
        let w = clamped(weight)
        if waiters.isEmpty && available >= w {
            available -= w
            return
        }
        await withCheckedContinuation { waiters.append((w, $0)) }
    }

    func release(_ weight: Int = 1) {
        available += clamped(weight)
        while let first = waiters.first, available >= first.weight {
            available -= first.weight
            waiters.removeFirst()
            first.continuation.resume()
        }
    }
}

/// Serialises bookkeeping: counts, the record file and progress events.
actor BatchTracker {
    private var summary = BatchSummary()
    private let record: BatchRecordFile?
    private let reporter: any BatchProgressReporter
    private let total: Int
    private let images: Int
    private var imagesDone = 0
    private let start: ContinuousClock.Instant

    init(total: Int, images: Int, record: BatchRecordFile?, reporter: any BatchProgressReporter,
         start: ContinuousClock.Instant) {
        self.total = total
        self.images = images
        self.record = record
        self.reporter = reporter
        self.start = start
    }

    func itemStarted(_ item: BatchItem) { reporter.itemStarted(item) }

    /// Why the run stops starting images (the first device loss that no other device could take over), if it does.
    private(set) var stopReason: String?

    func stop(_ reason: String) { stopReason = stopReason ?? reason }

    func finish(_ entry: BatchRecord) {
        summary.count(entry.status)
        if entry.status != .notImage { imagesDone += 1 }
        record?.append(entry)
        let snapshot = BatchProgressSnapshot(
            done: summary.total, total: total, processed: summary.ok + summary.failed,
            remaining: images - imagesDone, elapsed: seconds(since: start))
        reporter.itemFinished(entry, snapshot: snapshot)
    }

    func finalSummary() -> BatchSummary {
        var s = summary
        s.wallSeconds = seconds(since: start)
        if let stopReason {
            s.stopped = stopReason
            s.notStarted = images - imagesDone   // every image started was recorded, once the run is over
        }
        return s
    }
}

private func seconds(since start: ContinuousClock.Instant) -> Double {
    secondsSince(start)
}

/// Runs a processor over every image of a plan and records each file's outcome.
///
/// Concurrency: `jobs` images compute at once; with `pipelined`, two more images may be in flight so the next
/// one decodes and the previous one encodes while the current one computes. With `maxMemory`, the summed
/// `memoryEstimate` of images in flight stays within the budget (a single larger image runs alone).
public struct BatchRunner<Processor: BatchProcessor>: Sendable {
    /// The per-image work.
    public let processor: Processor
    /// Run settings.
    public let options: BatchOptions
    /// Progress sink.
    public let reporter: any BatchProgressReporter
    /// Estimated peak bytes for one image in flight (used with `options.maxMemory`).
    public let memoryEstimate: (@Sendable (BatchItem) -> Int)?
    /// Process id used in temporary names.
    public let pid: Int32

    /// Creates a runner; the reporter defaults to the one `options.progress` selects.
    public init(processor: Processor, options: BatchOptions, reporter: (any BatchProgressReporter)? = nil,
                memoryEstimate: (@Sendable (BatchItem) -> Int)? = nil) {
        self.processor = processor
        self.options = options
        self.reporter = reporter ?? makeBatchProgressReporter(options.progress)
        self.memoryEstimate = memoryEstimate
        self.pid = getpid()
    }

    /// Images allowed in flight at once (loading, computing or storing).
    public var inFlightLimit: Int { max(1, options.jobs) + (options.pipelined ? 2 : 0) }

    /// Processes the plan; per-file failures are recorded, not thrown.
    /// - Throws: `BatchError` only for setup problems (invalid options, record file not writable).
    public func run(_ plan: BatchPlan) async throws(BatchError) -> BatchSummary {
        try options.validate()
        let start = ContinuousClock.now
        let record = try options.effectiveRecordPath.map { path throws(BatchError) in try BatchRecordFile(path: path) }
        BatchTemporaryFiles.cleanLeftovers(of: plan.items, currentPid: pid)
        let tracker = BatchTracker(
            total: plan.items.count + plan.rejected.count, images: plan.items.count, record: record,
            reporter: reporter, start: start)
        reporter.started(total: plan.items.count + plan.rejected.count, toProcess: plan.items.count)

        for rejected in plan.rejected {
            await tracker.finish(BatchRecord(input: rejected.input, output: nil, status: .notImage, error: rejected.reason))
        }

        let slots = BatchGate(capacity: inFlightLimit)
        let computeSlots = BatchGate(capacity: options.jobs)
        let memory = options.maxMemory.map { BatchGate(capacity: $0) }

        await withTaskGroup(of: Void.self) { group in
            for item in plan.items {
                // A cancelled run stops starting new images, and so does one whose devices are lost; those already
                // in flight finish and are recorded.
                if Task.isCancelled { break }
                if await tracker.stopReason != nil { break }
                if let decided = existingOutputDecision(item) {
                    await tracker.finish(decided)
                    continue
                }
                let weight = await memory?.clamped(memoryEstimate?(item) ?? 0) ?? 0
                await slots.acquire()
                await memory?.acquire(weight)
                if await tracker.stopReason != nil {
                    await memory?.release(weight)
                    await slots.release()
                    break
                }
                group.addTask {
                    let entry = await process(item, computeSlots: computeSlots, tracker: tracker)
                    await memory?.release(weight)
                    await slots.release()
                    if let entry { await tracker.finish(entry) }
                }
            }
        }
        let summary = await tracker.finalSummary()
        reporter.finished(summary)
        return summary
    }

    /// The record for an item whose output already exists and must not be redone; nil to process it.
    func existingOutputDecision(_ item: BatchItem) -> BatchRecord? {
        var st = stat()
        guard stat(item.output, &st) == 0 else { return nil }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            return BatchRecord(input: item.input, output: item.output, status: .failed,
                               error: BatchError.outputNotAFile(path: item.output).description)
        }
        if options.overwrite || st.st_size == 0 { return nil }
        if options.skipExisting {
            return BatchRecord(input: item.input, output: item.output, status: .skipped, error: "output exists")
        }
        return BatchRecord(input: item.input, output: item.output, status: .failed,
                           error: BatchError.outputExists(path: item.output).description)
    }

    /// The item's record; nil when the run stopped (its devices lost) before the item's compute began: it is left
    /// for a rerun, neither written nor recorded.
    private func process(_ item: BatchItem, computeSlots: BatchGate, tracker: BatchTracker) async -> BatchRecord? {
        var notes = BatchNotes()
        let temporary = item.temporaryPath(pid: pid)
        await tracker.itemStarted(item)
        do {
            do {
                try FileManager.default.createDirectory(atPath: item.outputDirectory, withIntermediateDirectories: true)
            } catch {
                throw BatchError.io(path: item.outputDirectory, operation: "create output folder",
                                    reason: (error as NSError).localizedDescription)
            }
            var t = ContinuousClock.now
            let loaded = try await processor.load(item, notes: &notes)
            notes.timings["load"] = seconds(since: t)

            await computeSlots.acquire()
            if await tracker.stopReason != nil {
                await computeSlots.release()
                return nil
            }
            t = ContinuousClock.now
            let computed: Processor.Computed
            do { computed = try await processor.compute(loaded, item: item, notes: &notes) } catch {
                // a device broken for the rest of the process (no other device took the image): start nothing more
                // (said before the slot goes to the next image, which then stays unstarted)
                if isDeviceLoss(error) { await tracker.stop(String(describing: error)) }
                await computeSlots.release()
                throw error
            }
            await computeSlots.release()
            notes.timings["compute"] = seconds(since: t)

            t = ContinuousClock.now
            try await processor.store(computed, item: item, temporaryPath: temporary, notes: &notes)
            var st = stat()
            guard lstat(temporary, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                throw BatchError.processorWroteNothing(item: item.input, temporaryPath: temporary)
            }
            guard rename(temporary, item.output) == 0 else {
                throw BatchError.io(path: item.output, operation: "rename \(temporary) to",
                                    reason: String(cString: strerror(errno)))
            }
            notes.timings["store"] = seconds(since: t)
            return BatchRecord(item: item, status: .ok, notes: notes)
        } catch {
            unlink(temporary)
            return BatchRecord(item: item, status: .failed, error: String(describing: error), notes: notes)
        }
    }
}
