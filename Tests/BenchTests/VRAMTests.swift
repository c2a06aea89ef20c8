import Foundation
import Testing
@testable import Bench

/// GPU memory in the bench: the records' counters and the sampled process peak become one `VRAMPeaks` per run, the
/// largest per field per row and workload, and instances per card from the process figure (else reserved, else allocated).
@Suite struct VRAMTests {
    /// A run whose one results.jsonl line carries `memory` (as top-level `*_bytes` fields), measured with the device
    /// at `idle` before and `peak` during the run.
    func run(_ memory: [String: Double], idle: Int64?, peak: Int64?) throws -> RunMeasurement {
        let process = ProcessMeasurement(wallSeconds: 1, userSeconds: 1, systemSeconds: 0, peakRSSBytes: 1 << 20,
                                         ruMaxRSSBytes: 1 << 20, exitCode: 0, timedOut: false,
                                         deviceIdleBytes: idle, deviceUsedPeakBytes: peak)
        var obj: [String: Any] = ["input": "a.png", "output": "a_out.png", "status": "ok", "timings": ["compute": 0.5]]
        for (k, v) in memory { obj[k] = v }
        let line = String(decoding: try JSONSerialization.data(withJSONObject: obj), as: UTF8.self)
        let record = try WorkloadRecord(line: line, path: "results.jsonl", lineNumber: 1)
        return WorkloadRun(process: process, records: [record], outputs: [], failure: nil).measurement(threads: 2)
    }

    @Test func runsRowsAndSummariesCarryTheThreeLayers() throws {
        let w = WorkloadSpec(name: "gpen-512", family: "restore", executable: "/bin/true", arguments: [])
        let runs = [try run(["vram_allocated_peak_bytes": 300e6, "vram_reserved_peak_bytes": 400e6, "tensor_peak_bytes": 200e6],
                        idle: 1_000_000_000, peak: 1_700_000_000),
                    try run(["vram_allocated_peak_bytes": 310e6, "vram_reserved_peak_bytes": 390e6, "tensor_peak_bytes": 210e6],
                        idle: 1_000_000_000, peak: 1_650_000_000)]
        #expect(runs[0].vram == VRAMPeaks(allocatedBytes: 300_000_000, reservedBytes: 400_000_000, processBytes: 700_000_000))
        // The device figures are not the engine's tensor peak.
        #expect(RunMeasurement.tensorPeak(runs[1].memory) == 210e6)
        let row = BenchRunner.makeRow(w, image: "frontal", images: 1, input: "/in/f.png", output: nil, measurements: runs,
                                      quality: nil, error: nil, budget: 12 << 30, cardBytes: 80 << 30)
        #expect(row.vram == VRAMPeaks(allocatedBytes: 310_000_000, reservedBytes: 400_000_000, processBytes: 700_000_000))
        let cap = try #require(row.gpuCapacity)
        #expect(cap.basis == "process" && cap.perInstanceBytes == 700_000_000)
        #expect(cap.studyCard == 36 && cap.thisCard == Int((Int64(80) << 30) / 700_000_000))
        let summary = BenchRunner.summarize([row], budget: 12 << 30, cardBytes: nil)
        #expect(summary.vram == row.vram && summary.gpuCapacity?.thisCard == nil && summary.gpuCapacity?.studyCard == 36)
    }

    @Test func capacityFallsBackToReservedThenAllocated() {
        #expect(GPUCapacity(VRAMPeaks(allocatedBytes: 1_000_000_000, reservedBytes: 2_000_000_000), cardBytes: nil)
            .map { ($0.basis, $0.studyCard) } ?? ("", 0) == ("reserved", 12))
        #expect(GPUCapacity(VRAMPeaks(allocatedBytes: 5_000_000_000), cardBytes: 24_000_000_000)
            .map { ($0.basis, $0.studyCard, $0.thisCard ?? -1) } ?? ("", 0, 0) == ("allocated", 5, 4))
        #expect(GPUCapacity(VRAMPeaks(), cardBytes: 1) == nil)
        #expect(GPUCapacity(nil, cardBytes: 1) == nil)
    }

    @Test func cpuRunsHaveNoVRAMAndNoGPUTable() throws {
        let r = try run(["tensor_peak_bytes": 1e6], idle: nil, peak: nil)
        #expect(r.vram == nil)
        #expect(ReportWriter.gpuTable(sampleReport()) == nil)
        // A peak below the idle level (the device released memory meanwhile) counts as 0, not negative.
        let p = ProcessMeasurement(wallSeconds: 1, userSeconds: 0, systemSeconds: 0, peakRSSBytes: 0, ruMaxRSSBytes: 0,
                                   exitCode: 0, timedOut: false, deviceIdleBytes: 500, deviceUsedPeakBytes: 400)
        #expect(p.deviceProcessPeakBytes == 0)
    }
}
