import Foundation
import Testing

@testable import Pipeline

/// Stages that take fixed wall time (sleep), so the runner's own overhead and overlap can be measured.
struct TimedStages: BatchProcessor {
    let load: Duration
    let compute: Duration
    let store: Duration
    func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> [UInt8] {
        try await Task.sleep(for: load)
        return [UInt8](FileManager.default.contents(atPath: item.input) ?? Data())
    }
    func compute(_ loaded: [UInt8], item: BatchItem, notes: inout BatchNotes) async throws -> [UInt8] {
        try await Task.sleep(for: compute)
        return loaded
    }
    func store(_ computed: [UInt8], item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        try await Task.sleep(for: store)
        try Data(computed).write(to: URL(fileURLWithPath: temporaryPath))
    }
}

/// Benchmark (prints numbers; asserts only correctness). Run with `ENHANCE_BENCHMARKS=1 swift test --filter BatchBenchmark`.
@Suite struct BatchBenchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ENHANCE_BENCHMARKS"] != nil, "set ENHANCE_BENCHMARKS=1"))
    func runnerOverheadAndOverlap() async throws {
        let count = 50
        let stages = TimedStages(load: .milliseconds(10), compute: .milliseconds(40), store: .milliseconds(10))
        print("batch runner, \(count) images, stages load 10 ms / compute 40 ms / store 10 ms (sleep):")
        for (jobs, pipelined) in [(1, false), (1, true), (2, false), (2, true), (4, true)] {
            let t = try TempFolder()
            defer { t.remove() }
            for i in 0..<count { try t.write(String(format: "in/%03d.png", i), makePNG(width: 8, height: 8, seed: UInt8(i))) }
            var o = options(out: t.url("out"))
            o.jobs = jobs
            o.pipelined = pipelined
            let plan = try BatchPlan.make(inputs: [t.url("in")], options: o)
            let s = try await BatchRunner(processor: stages, options: o, reporter: silent).run(plan)
            #expect(s.ok == count)
            let ideal = Double(count) * 0.040 / Double(jobs)  // pure compute, perfectly overlapped
            print(String(format: "  jobs %d pipelined %-5@ %7.1f images/min  wall %.3f s  overhead over pure compute %+.1f%%",
                         jobs, "\(pipelined)", s.imagesPerMinute, s.wallSeconds, (s.wallSeconds / ideal - 1) * 100))
        }
    }
}
