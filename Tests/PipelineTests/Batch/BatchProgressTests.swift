import Foundation
import Testing

@testable import Pipeline

@Suite struct BatchProgressTests {
    @Test func snapshotRateAndETA() {
        let s = BatchProgressSnapshot(done: 12, total: 40, processed: 10, remaining: 30, elapsed: 20)
        #expect(s.imagesPerMinute == 30)
        #expect(s.etaSeconds == 60)
        let start = BatchProgressSnapshot(done: 3, total: 40, processed: 0, remaining: 37, elapsed: 2)
        #expect(start.imagesPerMinute == nil && start.etaSeconds == nil)
        #expect(formatBatchDuration(42) == "42s")
        #expect(formatBatchDuration(185) == "3m05s")
        #expect(formatBatchDuration(3720) == "1h02m")
    }

    @Test func terminalLineShowsCountRateETAAndCurrentFile() {
        let sink = TextSink()
        let tty = TerminalBatchProgress(sink: sink.write, columns: 60)
        let s = BatchProgressSnapshot(done: 12, total: 40, processed: 10, remaining: 30, elapsed: 20)
        let line = tty.statusLine(s, current: "sub/c.png")
        #expect(line == "[12/40] 30.0 img/min ETA 1m00s sub/c.png")
        let long = tty.statusLine(s, current: String(repeating: "x", count: 200))
        #expect(long.count == 59)
        #expect(long.hasSuffix("…"))
    }

    @Test func reportersDuringARun() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)

        let plain = TextSink()
        _ = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: PlainBatchProgress(sink: plain.write))
            .run(plan)
        let lines = plain.text.split(separator: "\n")
        #expect(lines.count == 11)  // start + 9 files + summary
        #expect(lines.filter { $0.hasPrefix("[") && $0.contains("/9] ") }.count == 9)
        #expect(lines.contains { $0.contains("failed") && $0.contains("corrupt.png") })
        #expect(lines.last?.contains("7 ok, 0 skipped, 1 failed, 1 not images") == true)

        let json = TextSink()
        var o2 = o
        o2.overwrite = true
        _ = try await BatchRunner(processor: CopyProcessor(), options: o2, reporter: JSONBatchProgress(sink: json.write))
            .run(plan)
        let events = try json.text.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(events.first?["event"] as? String == "start")
        #expect(events.last?["event"] as? String == "summary")
        #expect(events.filter { $0["event"] as? String == "file" }.count == 9)
        let summary = try #require(events.last?["summary"] as? [String: Any])
        #expect(summary["ok"] as? Int == 7 && summary["failed"] as? Int == 1)
        #expect((events.last?["imagesPerMinute"] as? Double ?? 0) > 0)

        let term = TextSink()
        _ = try await BatchRunner(processor: CopyProcessor(), options: o2, reporter: TerminalBatchProgress(sink: term.write, columns: 80))
            .run(plan)
        #expect(term.text.contains("\r\u{1B}[2K[9/9]"))
        #expect(term.text.contains("failed \(t.url("in/sub/corrupt.png"))"))
        #expect(term.text.contains("\r\u{1B}[2Kbatch: 7 ok, 0 skipped, 1 failed, 1 not images"))
        #expect(term.text.hasSuffix("images/min)\n"))
    }

    @Test func quietPrintsOnlyFailures() async throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        let o = options(out: t.url("out"))
        let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let sink = TextSink()
        _ = try await BatchRunner(processor: CopyProcessor(), options: o, reporter: QuietBatchProgress(sink: sink.write))
            .run(plan)
        #expect(sink.text == "failed \(t.url("in/sub/corrupt.png")): corrupt image \(t.url("in/sub/corrupt.png")): bad PNG chunks\n")
    }

    @Test func recordLineRoundTrips() throws {
        let r = BatchRecord(input: "/a/b.png", output: nil, status: .notImage, error: "x")
        let line = r.jsonLine()
        #expect(line == #"{"error":"x","input":"/a/b.png","status":"not-image"}"#)
        #expect(try JSONDecoder().decode(BatchRecord.self, from: Data(line.utf8)) == r)
        var s = BatchSummary()
        for st in [BatchStatus.ok, .ok, .skipped, .notImage] { s.count(st) }
        s.wallSeconds = 30
        #expect(s.imagesPerMinute == 4)
        #expect(s.exitCode == 0)
        s.count(.failed)
        #expect(s.exitCode == 1 && s.total == 5)
    }

    @Test func perImageTimeCountsEachSecondOnce() {
        // restore and parse happen inside compute: the line shows load + compute + store.
        let t = imageSeconds(["load": 0.5, "compute": 9.0, "restore": 5.0, "parse": 4.0, "detect": 0.1, "store": 0.5])
        #expect(abs(t - 10.0) < 1e-12)
        #expect(abs(imageSeconds(["upscale": 2.0, "encode": 0.25]) - 2.25) < 1e-12)
    }
}
