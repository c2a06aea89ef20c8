import Foundation
import Testing
import TensorCore

@testable import Pipeline

/// A GPU that breaks: from its `breakAt`-th compute on, every compute throws `TensorError.deviceLost` (a CUDA
/// context with a sticky error fails every later call), as the CUDA backend reports it.
final class BreakingDevice: BatchProcessor, @unchecked Sendable {
    // SAFETY: `computes` is read and written under `lock`.
    let name: String
    let breakAt: Int?
    private let lock = NSLock()
    private var computes = 0
    private let copy = CopyProcessor()

    init(_ name: String, breakAt: Int?) { self.name = name; self.breakAt = breakAt }

    var computeCount: Int { lock.withLock { computes } }

    func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> [UInt8] { try await copy.load(item, notes: &notes) }

    func compute(_ loaded: [UInt8], item: BatchItem, notes: inout BatchNotes) async throws -> [UInt8] {
        let n = lock.withLock { computes += 1; return computes }
        if let breakAt, n >= breakAt {
            throw TensorError.deviceLost(device: name, message: "CUDA_ERROR_ILLEGAL_ADDRESS (700): an illegal memory access was encountered")
        }
        return try await copy.compute(loaded, item: item, notes: &notes)
    }

    func store(_ computed: [UInt8], item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        try await copy.store(computed, item: item, temporaryPath: temporaryPath, notes: &notes)
    }
}

@Suite struct DeviceLossTests {
    static func folder(_ t: TempFolder, images: Int) throws {
        for i in 0..<images { try t.write("in/\(String(format: "%02d", i)).png", makePNG(width: 3, height: 2, seed: UInt8(i + 1))) }
    }

    /// One GPU lost at its third image: that image fails, nothing after it starts (not even images already decoded
    /// and waiting for the GPU), the summary says why and how many were left, the exit status is 69, and a rerun on a
    /// working device does exactly the images left.
    @Test func aLostDeviceStopsTheBatchAndARerunFinishesIt() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try Self.folder(t, images: 8)
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let gpu = BreakingDevice("cuda:0", breakAt: 3)
        let sink = TextSink()
        let summary = try await BatchRunner(processor: DevicePoolProcessor([("cuda:0", gpu)]), options: o,
                                            reporter: PlainBatchProgress(sink: sink.write)).run(plan)
        #expect(summary.ok == 2 && summary.failed == 1, "\(summary)")
        #expect(summary.notStarted == 5, "\(summary)")
        #expect(summary.stopped?.hasPrefix("cuda:0 is lost: CUDA_ERROR_ILLEGAL_ADDRESS") == true, "\(summary)")
        #expect(summary.exitCode == 69)
        #expect(gpu.computeCount == 3, "images were handed to a lost GPU after it broke")
        #expect(sink.text.contains("5 not started") && sink.text.contains("stopped: cuda:0 is lost"), "\(sink.text)")
        let rec = try records(t.url("out/results.jsonl"))
        #expect(rec.count == 3, "only the images that ran are recorded: \(rec.keys.sorted())")
        #expect(t.allFiles("out").filter { $0.hasSuffix(".png") }.count == 2)

        let again = try await BatchRunner(processor: DevicePoolProcessor([("cuda:0", BreakingDevice("cuda:0", breakAt: nil))]),
                                          options: o, reporter: silent).run(plan)
        #expect(again.ok == 6 && again.skipped == 2 && again.failed == 0 && again.stopped == nil && again.exitCode == 0, "\(again)")
        for i in 0..<8 {
            let name = String(format: "%02d.png", i)
            #expect(t.read("out/" + name) == t.read("in/" + name), "\(name)")
        }
    }

    /// Two GPUs, the second lost at its second image: that image is computed again on the first, which takes every
    /// later image; nothing fails, the record says where the image went and why. Both lost: the batch stops.
    @Test func anotherGPUTakesOverALostOnesImages() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try Self.folder(t, images: 8)
        var o = options(out: t.url("out"))
        o.jobs = 2
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let good = BreakingDevice("cuda:0", breakAt: nil), bad = BreakingDevice("cuda:1", breakAt: 2)
        let pool = DevicePoolProcessor([("cuda:0", good), ("cuda:1", bad)])
        let summary = try await BatchRunner(processor: pool, options: o, reporter: silent).run(plan)
        #expect(summary.ok == 8 && summary.failed == 0 && summary.stopped == nil && summary.exitCode == 0, "\(summary)")
        #expect(bad.computeCount == 2, "the lost GPU was handed \(bad.computeCount) images")
        #expect(good.computeCount == 7)
        #expect(pool.lostMembers.map(\.name) == ["cuda:1"])
        let moved = try BatchRecord.readAll(from: t.url("out/results.jsonl")).filter { $0.fallback != nil }
        #expect(moved.count == 1 && moved[0].device == "cuda:0", "\(moved)")
        #expect(moved.first?.fallback?.hasPrefix("cuda:1 is lost: CUDA_ERROR_ILLEGAL_ADDRESS") == true)
        #expect(moved.first?.fallback?.hasSuffix("computed again on cuda:0") == true, "\(moved)")

        let t2 = try TempFolder()
        defer { t2.remove() }
        try Self.folder(t2, images: 8)
        var o2 = options(out: t2.url("out"))
        o2.jobs = 2
        let both = DevicePoolProcessor([("cuda:0", BreakingDevice("cuda:0", breakAt: 3)), ("cuda:1", BreakingDevice("cuda:1", breakAt: 2))])
        let stopped = try await BatchRunner(processor: both, options: o2, reporter: silent)
            .run(try BatchPlan.make(inputs: [t2.url("in")], options: o2))
        #expect(stopped.stopped != nil && stopped.exitCode == 69 && (stopped.notStarted ?? 0) > 0, "\(stopped)")
        #expect(stopped.ok + stopped.failed + (stopped.notStarted ?? 0) == 8, "\(stopped)")
        #expect(Set(both.lostMembers.map(\.name)) == ["cuda:0", "cuda:1"])
    }
}
