import Foundation
import ImageIO
import Testing
import TestSupport

/// `enhance bench --quick` end to end, as the README's main command runs it, on a small image so CI stays fast:
/// every workload in its own `enhance` process, then the four report files, whose numbers must agree.
@Suite struct BenchCLITests {
    @Test func quickBenchWritesConsistentReports() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-bench-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("images"), withIntermediateDirectories: true)
        try ChainAndBatchCLITests.writePhoto(dir.appendingPathComponent("images/photo.png"), size: 48, seed: 3)
        let out = dir.appendingPathComponent("out")
        let r = try EnhanceBinary.run(["bench", "--quick", "--images", dir.appendingPathComponent("images").path,
                                       "--out", out.path, "--no-peers", "--detector", "synthetic", "--warmups", "0",
                                       "--memory-budget", "3G"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        for f in ["bench.json", "bench.csv", "radar.svg", "report.html"] {
            #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), "missing \(f)")
        }
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("bench.json"))) as? [String: Any])
        #expect(json["quick"] as? Bool == true && json["runs_per_input"] as? Int == 2)
        let budget = try #require(json["memory_budget_bytes"] as? Int64)
        #expect(budget == 3 << 30)
        let rows = try #require(json["rows"] as? [[String: Any]])
        let families = Set(rows.compactMap { $0["family"] as? String })
        #expect(families == ["upscale", "restore", "chain"], "\(families)")
        let html = try String(contentsOf: out.appendingPathComponent("report.html"), encoding: .utf8)
        let csv = try String(contentsOf: out.appendingPathComponent("bench.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").count == rows.count + 1)
        for row in rows {
            let label = "\(row["workload"] ?? "?") [\(row["variant"] ?? "?")]"
            #expect(row["error"] == nil, "\(label): \(String(describing: row["error"]))")
            let runs = try #require(row["runs"] as? [Double], "\(label)")
            #expect(runs.count == 2, "\(label): \(runs)")
            let median = try #require(row["median_s"] as? Double), p95 = try #require(row["p95_s"] as? Double)
            #expect(median >= runs.min()! && median <= runs.max()! && p95 >= median && p95 <= runs.max()!, "\(label)")
            let peak = try #require(row["peak_rss_bytes"] as? Int64)
            #expect(peak > 0 && row["capacity"] as? Int64 == budget / peak, "\(label)")
            // The engine's own tensor peak comes from the child's results.jsonl.
            #expect((row["tensor_peak_bytes"] as? Double ?? 0) > 0, "\(label)")
            // The HTML shows the same median the JSON holds, and the CSV the same runs.
            #expect(html.contains("data-median-s=\"\(String(format: "%.3f", median))\""), "\(label)")
            #expect(csv.contains(runs.map { String(format: "%.6f", $0) }.joined(separator: ";")), "\(label)")
        }
        let svg = try String(contentsOf: out.appendingPathComponent("radar.svg"), encoding: .utf8)
        #expect(svg.contains("<svg") && svg.contains(">latency<") && svg.contains(">quality<"))
        #expect(r.stdout.contains("median s") && r.stdout.contains("capacity"))
    }

    /// `--models restore` alone: the x2plus model is neither written nor needed (planning failed with "no synthetic
    /// RealESRGAN_x2plus file").
    @Test func restoreOnlyBenchNeedsNoUpscaleModel() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-bench-restore-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("images"), withIntermediateDirectories: true)
        try ChainAndBatchCLITests.writePhoto(dir.appendingPathComponent("images/photo.png"), size: 32, seed: 4)
        let out = dir.appendingPathComponent("out")
        let r = try EnhanceBinary.run(["bench", "--quick", "--models", "restore", "--runs", "1", "--images",
                                       dir.appendingPathComponent("images").path, "--out", out.path, "--no-peers",
                                       "--detector", "synthetic", "--warmups", "0"])
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("bench.json"))) as? [String: Any])
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(!rows.isEmpty && rows.allSatisfy { $0["family"] as? String == "restore" && $0["error"] == nil }, "\(rows)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("weights/RealESRGAN_x2plus.synthetic.safetensors").path))
    }

    @Test func badTimeBudgetFailsBeforeAnyWork() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-bench-budget-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try EnhanceBinary.run(["bench", "--time-budget", "abc", "--out", out.path])
        #expect(r.status == 64, "stderr: \(r.stderr)")
        #expect(r.stderr.contains("--time-budget 'abc'"))
        // Rejected while parsing: no scenes, no synthetic weights were written.
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
