import Foundation
import Testing

@testable import Pipeline

@Suite struct BatchRunnerTests {
    /// The whole tree: nested images, a non-image, a corrupt file, and an output conflict (the mirrored folder
    /// `out/other` is a regular file, so f.png and g.bin cannot be written) — those fail, the rest succeed.
    @Test func processesTreeMirrorsItAndRecordsEveryFile() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        try t.write("out/other", Array("in the way".utf8))
        let inputsBefore = t.allFiles("in").map { ($0, t.read("in/" + $0)) }

        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let summary = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)

        #expect(summary.total == 9)
        #expect(summary.ok == 5)
        #expect(summary.failed == 3)
        #expect(summary.notImage == 1)
        #expect(summary.skipped == 0)
        #expect(summary.exitCode == 1)
        #expect(summary.wallSeconds > 0)

        // Tree mirrored with identical bytes.
        for rel in ["a.png", "b.jpg", "sub/c.png", "sub/deeper/d.webp", "sub/e.jpeg"] {
            #expect(t.read("out/" + rel) == t.read("in/" + rel), "\(rel)")
        }
        #expect(!t.exists("out/sub/corrupt.png"))
        #expect(!t.exists("out/notes.txt"))
        // Nothing else in the output folder: no temp files, no partial outputs.
        #expect(t.allFiles("out") == [
            "a.png", "b.jpg", "other", "results.jsonl", "sub/c.png", "sub/deeper/d.webp", "sub/e.jpeg",
        ])
        // Inputs untouched.
        #expect(t.allFiles("in").map { ($0, t.read("in/" + $0)) }.elementsEqual(inputsBefore, by: { $0 == $1 }))

        let rec = try records(t.url("out/results.jsonl"))
        #expect(rec.count == 9)
        #expect(rec.values.allSatisfy { $0.count == 1 })
        func status(_ rel: String) -> BatchStatus? { rec[t.url("in/" + rel)]?.first?.status }
        #expect(status("a.png") == .ok)
        #expect(status("sub/deeper/d.webp") == .ok)
        #expect(status("notes.txt") == .notImage)
        #expect(status("sub/corrupt.png") == .failed)
        #expect(status("other/f.png") == .failed)
        #expect(status("other/g.bin") == .failed)
        let corrupt = try #require(rec[t.url("in/sub/corrupt.png")]?.first)
        #expect(corrupt.error?.contains("corrupt image") == true)
        #expect(corrupt.error?.contains("corrupt.png") == true)
        let blocked = try #require(rec[t.url("in/other/f.png")]?.first)
        #expect(blocked.error?.contains(t.url("out/other")) == true)
        let a = try #require(rec[t.url("in/a.png")]?.first)
        #expect(a.width == 3 && a.height == 2)
        #expect(a.faces == 0)
        #expect(a.output == t.url("out/a.png"))
        let timings = try #require(a.timings)
        #expect(Set(timings.keys) == ["load", "compute", "store", "copy"])
        #expect(timings.values.allSatisfy { $0 >= 0 })
    }

    @Test func skipExistingResumesAndOverwriteRedoes() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let first = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)
        #expect(first.ok == 7 && first.failed == 1)

        // A user edits one output; resume must not touch it.
        try t.write("out/a.png", Array("edited".utf8))
        let second = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)
        #expect(second.ok == 0)
        #expect(second.skipped == 7)
        #expect(second.failed == 1)  // the corrupt file is retried and fails again
        #expect(t.read("out/a.png") == Array("edited".utf8))

        var redo = o
        redo.overwrite = true
        let third = try await BatchRunner(processor: CopyProcessor(), options: redo, reporter: silent).run(plan)
        #expect(third.ok == 7 && third.skipped == 0)
        #expect(t.read("out/a.png") == t.read("in/a.png"))

        var strict = o
        strict.skipExisting = false
        let fourth = try await BatchRunner(processor: CopyProcessor(), options: strict, reporter: silent).run(plan)
        #expect(fourth.failed == 8 && fourth.ok == 0)

        // The record appends: 4 runs × 9 files.
        let all = try BatchRecord.readAll(from: t.url("out/results.jsonl"))
        #expect(all.count == 36)
        #expect(all[9..<18].filter { $0.status == .skipped }.count == 7)
        #expect(all.last(where: { $0.input.hasSuffix("a.png") })?.error?.contains("--overwrite") == true)
    }

    @Test func leftoverTemporaryFilesAreCleanedAndOnlyOurs() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 2, height: 2))
        try t.write("in/sub/b.png", makePNG(width: 2, height: 2))
        // A killed run left partial outputs behind; a foreign file and another output's temp must survive.
        try t.write("out/.a.png.enhance-tmp-99999", [1, 2, 3])
        try t.write("out/sub/.b.png.enhance-tmp-12", [1])
        try t.write("out/.zzz.png.enhance-tmp-7", [1])
        try t.write("out/.a.png.enhance-tmp-x", [1])
        try t.write("out/keep.me", [1])
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let summary = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)
        #expect(summary.ok == 2)
        #expect(t.allFiles("out") == [
            ".a.png.enhance-tmp-x", ".zzz.png.enhance-tmp-7", "a.png", "keep.me", "results.jsonl", "sub/b.png",
        ])
    }

    @Test func processorThatWritesNothingFailsThatFile() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 2, height: 2))
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        var p = CopyProcessor()
        p.writeNothing = true
        let summary = try await BatchRunner(processor: p, options: o, reporter: silent).run(plan)
        #expect(summary.failed == 1)
        let r = try #require(try BatchRecord.readAll(from: t.url("out/results.jsonl")).first)
        #expect(r.error?.contains("produced no output") == true)
        #expect(!t.exists("out/a.png"))
    }

    @Test func outputPathOccupiedByAFolderFails() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 2, height: 2))
        try t.write("in/b.png", makePNG(width: 2, height: 2))
        try FileManager.default.createDirectory(atPath: t.url("out/a.png"), withIntermediateDirectories: true)
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let summary = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)
        #expect(summary.ok == 1 && summary.failed == 1)
        let rec = try records(t.url("out/results.jsonl"))
        #expect(rec[t.url("in/a.png")]?.first?.error?.contains("not a regular file") == true)
    }

    @Test(.enabled(if: getuid() != 0, "root ignores folder permissions"))
    func readOnlyOutputFolderFailsOnlyItsFiles() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 2, height: 2))
        try t.write("in/ro/b.png", makePNG(width: 2, height: 2))
        try FileManager.default.createDirectory(atPath: t.url("out/ro"), withIntermediateDirectories: true)
        chmod(t.url("out/ro"), 0o555)
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let summary = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)
        #expect(summary.ok == 1 && summary.failed == 1)
        #expect(t.allFiles("out/ro").isEmpty)
    }

    @Test func noRecordWithoutOutputFolderAndOutputsNextToInputs() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try t.write("in/a.png", makePNG(width: 2, height: 2))
        var o = BatchOptions()
        o.suffix = "_up"
        o.progress = .quiet
        #expect(o.effectiveRecordPath == nil)
        let plan = try BatchPlan.make(inputs: [t.url("in/a.png")], options: o)
        let summary = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: silent).run(plan)
        #expect(summary.ok == 1 && summary.exitCode == 0)
        #expect(t.allFiles("in") == ["a.png", "a_up.png"])
    }
}

@Suite struct BatchConcurrencyTests {
    private func tree(_ t: TempFolder, count: Int) throws -> BatchPlan {
        for i in 0..<count { try t.write(String(format: "in/%02d.png", i), makePNG(width: 2, height: 2, seed: UInt8(i))) }
        return try BatchPlan.make(inputs: [t.url("in")], options: options(out: t.url("out")))
    }

    @Test func jobsBoundsConcurrentCompute() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        let plan = try tree(t, count: 8)
        var o = options(out: t.url("out"))
        o.jobs = 3
        o.pipelined = false
        let probe = StageProbe()
        let p = CopyProcessor(computeDelay: .milliseconds(25), probe: probe)
        let s = try await BatchRunner(processor: p, options: o, reporter: silent).run(plan)
        #expect(s.ok == 8)
        let maxComputing = await probe.maxComputing
        let maxInFlight = await probe.maxInFlight
        #expect(maxComputing <= 3)
        #expect(maxComputing >= 2)  // 8 × 25 ms of sleeps: several overlap
        #expect(maxInFlight <= 3)
    }

    @Test func pipelinedOverlapsLoadAndStoreWithOneCompute() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        let plan = try tree(t, count: 6)
        var o = options(out: t.url("out"))
        o.jobs = 1
        o.pipelined = true
        let probe = StageProbe()
        let p = CopyProcessor(computeDelay: .milliseconds(30), probe: probe)
        let s = try await BatchRunner(processor: p, options: o, reporter: silent).run(plan)
        #expect(s.ok == 6)
        #expect(await probe.maxComputing == 1)
        #expect(await probe.maxInFlight <= 3)
        #expect(await probe.loadsDuringCompute >= 3)  // next image decoded while the current one computes
        // Every image computes once. Images compute in the order their loads finish (the compute gate is FIFO in
        // arrival): two loads in flight may finish out of order on a busy machine, so the order is not asserted.
        #expect(await probe.computeOrder.sorted() == Array(0..<6))
    }

    @Test func unpipelinedSingleJobIsSequential() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        let plan = try tree(t, count: 4)
        var o = options(out: t.url("out"))
        o.pipelined = false
        let probe = StageProbe()
        let s = try await BatchRunner(processor: CopyProcessor(computeDelay: .milliseconds(5), probe: probe), options: o, reporter: silent)
            .run(plan)
        #expect(s.ok == 4)
        #expect(await probe.maxInFlight == 1)
        #expect(await probe.loadsDuringCompute == 0)
    }

    @Test func memoryBudgetLimitsImagesInFlight() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        let plan = try tree(t, count: 8)
        var o = options(out: t.url("out"))
        o.jobs = 4
        o.pipelined = true
        o.maxMemory = 2_000_000
        let probe = StageProbe()
        let p = CopyProcessor(computeDelay: .milliseconds(20), probe: probe)
        let runner = BatchRunner(processor: p, options: o, reporter: silent, memoryEstimate: { _ in 1_000_000 })
        #expect(runner.inFlightLimit == 6)
        let s = try await runner.run(plan)
        #expect(s.ok == 8)
        #expect(await probe.maxInFlight <= 2)
        #expect(await probe.maxInFlight >= 1)

        // An image bigger than the whole budget still runs, alone.
        let t2 = try TempFolder()
        defer { t2.remove() }
        let plan2 = try tree(t2, count: 3)
        var o2 = options(out: t2.url("out"))
        o2.jobs = 3
        o2.maxMemory = 100
        let probe2 = StageProbe()
        let s2 = try await BatchRunner(
            processor: CopyProcessor(computeDelay: .milliseconds(10), probe: probe2), options: o2, reporter: silent,
            memoryEstimate: { _ in 1 << 40 }
        ).run(plan2)
        #expect(s2.ok == 3)
        #expect(await probe2.maxInFlight == 1)
    }
}
