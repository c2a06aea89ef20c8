// bench.json, bench.csv, radar.svg, report.html and the terminal table, all from one BenchReport.

import Foundation
import Pipeline

/// Renders a report in every output form.
public enum ReportWriter {
    /// Writes bench.json, bench.csv, radar.svg and report.html into `dir`; returns their paths.
    @discardableResult
    public static func writeAll(_ report: BenchReport, to dir: URL) throws(BenchError) -> [String] {
        do { try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true) } catch {
            throw .io(path: dir.path, reason: "cannot create folder: \(error.localizedDescription)")
        }
        let json: Data
        do { json = try BenchReport.encoder().encode(report) } catch {
            throw .io(path: dir.appendingPathComponent("bench.json").path, reason: "cannot encode: \(error)")
        }
        let files: [(String, Data)] = [
            ("bench.json", json),
            ("bench.csv", Data(csv(report).utf8)),
            ("radar.svg", Data(radarSVG(report).utf8)),
            ("report.html", Data(html(report, relativeTo: dir).utf8)),
        ]
        var paths: [String] = []
        for (name, data) in files {
            let url = dir.appendingPathComponent(name)
            do { try data.write(to: url, options: .atomic) } catch {
                throw .io(path: url.path, reason: "cannot write: \(error.localizedDescription)")
            }
            paths.append(url.path)
        }
        return paths
    }

    // MARK: number formats shared by every output (tests compare HTML and JSON through them)

    /// Seconds with three decimals, or `n/a`.
    public static func seconds(_ v: Double?) -> String { v.map { String(format: "%.3f", $0) } ?? "n/a" }
    /// PSNR with two decimals, `inf`, or `n/a`.
    public static func psnr(_ v: Double?) -> String {
        guard let v else { return "n/a" }
        return v.isFinite ? String(format: "%.2f", v) : "inf"
    }
    /// SSIM with four decimals, or `n/a`.
    public static func ssim(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "n/a" }
    /// Utilisation as a percentage with one decimal.
    public static func percent(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
    /// Peer ratios as `name ×1.23`, joined.
    public static func ratios(_ r: [String: Double]) -> String {
        r.isEmpty ? "n/a" : r.sorted { $0.key < $1.key }.map { String(format: "%@ ×%.2f", $0.key, $0.value) }
            .joined(separator: "; ")
    }

    // MARK: terminal

    /// Rows as text columns: the first two left-aligned, the rest right-aligned, a rule under the header (row 0).
    static func aligned(_ lines: [[String]]) -> String {
        let widths = lines[0].indices.map { c in lines.map { $0[c].count }.max() ?? 0 }
        return lines.enumerated().map { i, row in
            let line = row.enumerated().map { c, cell in
                c < 2 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[c] - cell.count) + cell
            }.joined(separator: "  ")
            return i == 0 ? line + "\n" + String(repeating: "-", count: line.count) : line
        }.joined(separator: "\n")
    }

    /// The study-shaped table, one line per workload × variant, plus notes and the recommendation.
    public static func terminalTable(_ report: BenchReport) -> String {
        let header = ["model", "variant", "thr", "runs", "median s", "p95 s", "s/image", "peak RSS", "tensor peak", "util",
                      "capacity", "img/h/core", "PSNR", "SSIM", "peer ratio"]
        var lines: [[String]] = [header]
        for s in report.summaries {
            lines.append([s.workload + (s.synthetic ? " *" : ""), s.variant, String(s.threads), String(s.runs.count), seconds(s.medianS),
                          seconds(s.p95S), seconds(s.perImageS), ByteSize.format(s.peakRSSBytes),
                          s.tensorPeakBytes.map { ByteSize.format(Int64($0)) } ?? "n/a", percent(s.utilisation),
                          String(s.capacity), String(format: "%.0f", s.imagesPerHourPerCore), psnr(s.psnr), ssim(s.ssim),
                          ratios(s.peerRatios)])
        }
        var out = aligned(lines)
        out += "\n\nmemory budget \(ByteSize.format(report.memoryBudgetBytes)); capacity = floor(budget / peak RSS); "
            + "\(report.warmups) warm-up + \(report.runsPerInput) runs per input"
            + (report.timeBudgetS.map { String(format: " (at most; time budget %.0f min)", $0 / 60) } ?? "")
            + "; runs = measured runs pooled over the inputs; util = (user+sys)/(wall×threads)"
        if let note = report.syntheticNote { out += "\n* \(note)" }
        if let gpu = gpuTable(report) {
            out += "\n\nGPU" + (report.gpu.map { ": \($0.name), \(ByteSize.format($0.totalBytes))" } ?? "") + "\n"
            out += aligned([gpu.header] + gpu.rows) + "\n" + gpuLegend(report)
        }
        for s in report.summaries where !s.errors.isEmpty {
            out += "\n! \(s.label): " + s.errors.prefix(2).joined(separator: "; ")
        }
        for n in report.notes { out += "\nnote: \(n)" }
        out += "\n\n" + report.recommendation.map { "- " + $0 }.joined(separator: "\n")
        return out
    }

    // MARK: GPU memory (the study's table)

    /// The GPU table — seconds per image, the three VRAM layers and instances per card, beside the peers — or nil when
    /// no summary has GPU memory.
    public static func gpuTable(_ report: BenchReport) -> (header: [String], rows: [[String]], summaries: [BenchSummary])? {
        let summaries = report.summaries.filter { $0.vram != nil }
        guard !summaries.isEmpty else { return nil }
        let card = report.gpu.map { "fit \(ByteSize.format($0.totalBytes))" } ?? "fit card"
        let header = ["model", "variant", "median s", "p95 s", "s/image", "GPU util", "VRAM alloc", "VRAM resv", "VRAM proc", "basis",
                      "fit 24 GiB", card, "PSNR", "peer ratio"]
        let rows = summaries.map { s -> [String] in
            [s.workload + (s.synthetic ? " *" : ""), s.variant, seconds(s.medianS), seconds(s.p95S), seconds(s.perImageS),
             s.gpuUtilisation.map(percent) ?? "n/a", bytes(s.vram?.allocatedBytes), bytes(s.vram?.reservedBytes), bytes(s.vram?.processBytes),
             s.gpuCapacity?.basis ?? "n/a", s.gpuCapacity.map { String($0.studyCard) } ?? "n/a",
             s.gpuCapacity?.thisCard.map(String.init) ?? "n/a", psnr(s.psnr), ratios(s.peerRatios)]
        }
        return (header, rows, summaries)
    }

    /// What the GPU table's columns mean.
    public static func gpuLegend(_ report: BenchReport) -> String {
        "GPU util = mean share of time a kernel ran while the process ran (NVML, start-up and host work included); "
            + "VRAM alloc = live peak + weights + workspace (PyTorch: max_memory_allocated after loading); VRAM resv = the "
            + "allocator's high-water mark, weights included (max_memory_reserved); VRAM proc = device memory in use at "
            + "the run's peak minus the idle level before it (\(report.gpu?.sampler ?? "not sampled"); context and "
            + "libraries included); fit = floor(card / per-instance bytes of the basis column); 24 GiB = the study's 24 GB A10"
    }

    /// Bytes in the tables' unit, or `n/a`.
    public static func bytes(_ v: Int64?) -> String { v.map { ByteSize.format($0) } ?? "n/a" }

    // MARK: CSV

    /// One line per workload × input.
    public static func csv(_ report: BenchReport) -> String {
        let stageNames = Array(Set(report.rows.flatMap { $0.stagesS.keys })).sorted()
        var header: [String] = ["workload", "family", "variant", "image", "threads", "images_per_run", "synthetic",
                                "runs_s", "median_s", "p95_s", "peak_rss_bytes", "tensor_peak_bytes", "utilisation",
                                "cpu_s", "capacity", "images_per_hour_per_core", "psnr", "ssim", "peer_ratios",
                                "vram_allocated_bytes", "vram_reserved_bytes", "vram_process_bytes", "gpu_capacity_basis",
                                "instances_24gb", "instances_this_card", "gpu_utilisation"]
        header += stageNames.map { "stage_\($0)_s" }
        header.append("error")
        var lines: [String] = [header.joined(separator: ",")]
        for r in report.rows {
            var cells: [String] = [r.workload, r.family, r.variant, r.image, String(r.threads), String(r.imagesPerRun),
                                   String(r.synthetic)]
            cells.append(r.runs.map { String(format: "%.6f", $0) }.joined(separator: ";"))
            cells.append(r.medianS.map { String(format: "%.6f", $0) } ?? "")
            cells.append(r.p95S.map { String(format: "%.6f", $0) } ?? "")
            cells.append(String(r.peakRSSBytes))
            cells.append(r.tensorPeakBytes.map { String(Int64($0)) } ?? "")
            cells.append(String(format: "%.4f", r.utilisation))
            cells.append(String(format: "%.4f", r.cpuS))
            cells.append(String(r.capacity))
            cells.append(String(format: "%.2f", r.imagesPerHourPerCore))
            cells.append(psnr(r.quality?.psnr))
            cells.append(ssim(r.quality?.ssim))
            cells.append(ratios(r.peerRatios))
            cells.append(r.vram?.allocatedBytes.map { String($0) } ?? "")
            cells.append(r.vram?.reservedBytes.map { String($0) } ?? "")
            cells.append(r.vram?.processBytes.map { String($0) } ?? "")
            cells.append(r.gpuCapacity?.basis ?? "")
            cells.append(r.gpuCapacity.map { String($0.studyCard) } ?? "")
            cells.append(r.gpuCapacity?.thisCard.map(String.init) ?? "")
            cells.append(r.gpuUtilisation.map { String(format: "%.4f", $0) } ?? "")
            for st in stageNames { cells.append(r.stagesS[st].map { String(format: "%.6f", $0) } ?? "") }
            cells.append(r.error ?? "")
            lines.append(cells.map(csvEscape).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvEscape(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    // MARK: radar

    /// The five radar axes, each scored 0…1 where 1 is best among the plotted workloads.
    public static let radarAxes = ["latency", "memory", "utilisation", "capacity", "quality"]

    /// Normalised radar scores of the default-variant, non-peer summaries: latency and memory as best/value,
    /// utilisation as is, capacity as value/best, quality as SSIM (0 when there is no reference).
    public static func radarScores(_ report: BenchReport) -> [(label: String, scores: [Double])] {
        let plotted = report.summaries.filter { $0.variant == "default" && $0.medianS != nil }
        guard !plotted.isEmpty else { return [] }
        let bestLatency = plotted.compactMap(\.perImageS).filter { $0 > 0 }.min() ?? 1
        let bestPeak = Double(plotted.map(\.peakRSSBytes).filter { $0 > 0 }.min() ?? 1)
        let bestCap = Double(max(1, plotted.map(\.capacity).max() ?? 1))
        return plotted.map { s in
            let lat = (s.perImageS ?? 0) > 0 ? bestLatency / s.perImageS! : 0
            let mem = s.peakRSSBytes > 0 ? bestPeak / Double(s.peakRSSBytes) : 0
            let scores = [lat, mem, min(1, max(0, s.utilisation)), Double(s.capacity) / bestCap, max(0, min(1, s.ssim ?? 0))]
            return (s.label + (s.synthetic ? " (synthetic)" : ""), scores)
        }
    }

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    /// An SVG radar chart of `radarScores`.
    public static func radarSVG(_ report: BenchReport) -> String {
        let data = radarScores(report)
        let w = 700.0, h = 440.0, cx = 220.0, cy = 220.0, radius = 160.0
        let n = radarAxes.count
        func point(_ axis: Int, _ v: Double) -> (Double, Double) {
            let a = -Double.pi / 2 + 2 * Double.pi * Double(axis) / Double(n)
            return (cx + radius * v * cos(a), cy + radius * v * sin(a))
        }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" viewBox=\"0 0 \(Int(w)) \(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        for ring in [0.25, 0.5, 0.75, 1.0] {
            let pts = (0..<n).map { point($0, ring) }.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
            s += "<polygon points=\"\(pts)\" fill=\"none\" stroke=\"#ccc\"/>\n"
        }
        for (i, name) in radarAxes.enumerated() {
            let (x, y) = point(i, 1)
            let (lx, ly) = point(i, 1.14)
            s += String(format: "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\"/>\n", cx, cy, x, y)
            s += String(format: "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" dominant-baseline=\"middle\">%@</text>\n", lx, ly, name)
        }
        for (k, d) in data.enumerated() {
            let color = palette[k % palette.count]
            let pts = d.scores.enumerated().map { point($0.offset, $0.element) }
                .map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
            s += "<polygon points=\"\(pts)\" fill=\"\(color)\" fill-opacity=\"0.15\" stroke=\"\(color)\" stroke-width=\"2\" data-label=\"\(escape(d.label))\" data-scores=\"\(d.scores.map { String(format: "%.4f", $0) }.joined(separator: ","))\"/>\n"
            s += String(format: "<rect x=\"410\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%@\"/>", 30 + 20 * k, color)
            s += "<text x=\"428\" y=\"\(40 + 20 * k)\">\(escape(d.label))</text>\n"
        }
        if data.isEmpty { s += "<text x=\"20\" y=\"30\">no measurements</text>\n" }
        s += "<text x=\"10\" y=\"\(Int(h) - 10)\" fill=\"#555\">outer ring = best measured; latency, memory: best/value; capacity: value/best; quality: SSIM</text>\n"
        return s + "</svg>\n"
    }

    /// Stages to draw without double counting: the batch runner's `compute` encloses the command's own stages
    /// (detect, restore, upscale, …), so when those exist `compute` is replaced by its unexplained remainder.
    public static func displayStages(_ stages: [String: Double]) -> [String: Double] {
        let inner = stages.filter { !["load", "compute", "store"].contains($0.key) }
        guard let compute = stages["compute"], !inner.isEmpty else { return stages }
        var out = stages
        out["compute"] = nil
        let rest = compute - inner.values.reduce(0, +)
        if rest > 0.0005 { out["other compute"] = rest }
        return out
    }

    /// Stage colours: enough distinct ones that no two stages of the report share one.
    static let stagePalette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                               "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd"]

    /// Horizontal stacked bars of median seconds per stage and image, one bar per summary with stage timings
    /// (a folder run's stage times are summed over its images, so they are divided by the images per run).
    public static func stageBarsSVG(_ report: BenchReport) -> String {
        let rows = report.summaries.filter { !$0.stagesS.isEmpty }.map { sum -> (String, [String: Double]) in
            let perRun = Double(max(1, report.rows.first { $0.workload == sum.workload && $0.variant == sum.variant }?.imagesPerRun ?? 1))
            return (sum.label, displayStages(sum.stagesS).mapValues { $0 / perRun })
        }
        let stages = Array(Set(rows.flatMap { $0.1.keys })).sorted()
        let maxTotal = rows.map { $0.1.values.reduce(0, +) }.max() ?? 1
        let barW = 420.0, left = 260.0
        let h = 40 + 26 * rows.count + 24 * ((stages.count + 3) / 4)
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"760\" height=\"\(h)\" font-family=\"sans-serif\" font-size=\"12\">\n"
        for (i, (label, values)) in rows.enumerated() {
            let y = 20 + 26 * i
            s += "<text x=\"\(Int(left) - 6)\" y=\"\(y + 13)\" text-anchor=\"end\">\(escape(label))</text>\n"
            var x = left
            for (k, st) in stages.enumerated() {
                guard let v = values[st], v > 0 else { continue }
                let wpx = barW * v / max(maxTotal, 1e-9)
                s += String(format: "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"18\" fill=\"%@\"><title>%@ %.3f s</title></rect>\n",
                            x, y, wpx, stagePalette[k % stagePalette.count], st, v)
                x += wpx
            }
            s += String(format: "<text x=\"%.1f\" y=\"%d\">%.2f s</text>\n", x + 4, y + 13, values.values.reduce(0, +))
        }
        for (k, st) in stages.enumerated() {
            let x = 20 + 160 * (k % 4), y = 30 + 26 * rows.count + 24 * (k / 4)
            s += "<rect x=\"\(x)\" y=\"\(y)\" width=\"12\" height=\"12\" fill=\"\(stagePalette[k % stagePalette.count])\"/>"
            s += "<text x=\"\(x + 16)\" y=\"\(y + 10)\">\(escape(st))</text>\n"
        }
        return s + "</svg>\n"
    }

    // MARK: HTML

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func relative(_ path: String, to dir: URL) -> String {
        let base = dir.standardizedFileURL.path + "/"
        let p = URL(fileURLWithPath: path).standardizedFileURL.path
        return p.hasPrefix(base) ? String(p.dropFirst(base.count)) : "file://" + p
    }

    /// The HTML report: summary table, recommendation, radar, stage bars, per-input table, image grid.
    /// Every table row carries its numbers as `data-*` attributes in the same formats as the cells.
    public static func html(_ report: BenchReport, relativeTo dir: URL) -> String {
        var h = "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>enhance bench</title><style>"
        h += "body{font-family:sans-serif;margin:24px;color:#222}table{border-collapse:collapse;margin:12px 0}"
        h += "td,th{border:1px solid #ccc;padding:3px 7px;font-size:13px;text-align:right}th{background:#f3f3f3}"
        h += "td.l,th.l{text-align:left}.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}"
        h += ".grid img{width:160px;height:auto;display:block}.grid td{vertical-align:top;text-align:center}</style></head><body>\n"
        h += "<h1>enhance bench</h1>\n<p>Started \(escape(report.startedAt)), \(String(format: "%.0f", report.durationS)) s, "
        h += "\(report.hostCores) cores (\(escape(report.host))); \(report.warmups) warm-up + \(report.runsPerInput) runs per input"
            + (report.timeBudgetS.map { String(format: " (at most: time budget %.0f min)", $0 / 60) } ?? "")
        h += report.quick ? " (quick)" : ""
        h += "; memory budget \(ByteSize.format(report.memoryBudgetBytes)).</p>\n"
        if let note = report.syntheticNote { h += "<p class=\"warn\" id=\"synthetic\">\(escape(note))</p>\n" }
        h += "<h2>Summary</h2>\n<table id=\"summary\"><tr><th class=\"l\">model</th><th class=\"l\">variant</th><th>threads</th>"
        h += "<th>runs</th><th>median s</th><th>p95 s</th><th>s / image</th><th>peak RSS</th><th>tensor peak</th><th>utilisation</th>"
        h += "<th>capacity</th><th>images/h/core</th><th>PSNR</th><th>SSIM</th><th class=\"l\">peer ratio</th></tr>\n"
        for s in report.summaries {
            h += "<tr data-workload=\"\(escape(s.workload))\" data-variant=\"\(escape(s.variant))\" data-median-s=\"\(seconds(s.medianS))\" "
            h += "data-p95-s=\"\(seconds(s.p95S))\" data-peak-rss-bytes=\"\(s.peakRSSBytes)\" data-capacity=\"\(s.capacity)\">"
            h += "<td class=\"l\">\(escape(s.workload))\(s.synthetic ? " <b title=\"\(BenchReport.syntheticWords)\">synthetic</b>" : "")</td>"
            h += "<td class=\"l\">\(escape(s.variant))</td><td>\(s.threads)</td><td>\(s.runs.count)</td><td>\(seconds(s.medianS))</td><td>\(seconds(s.p95S))</td>"
            h += "<td>\(seconds(s.perImageS))</td><td>\(ByteSize.format(s.peakRSSBytes))</td>"
            h += "<td>\(s.tensorPeakBytes.map { ByteSize.format(Int64($0)) } ?? "n/a")</td><td>\(percent(s.utilisation))</td>"
            h += "<td>\(s.capacity)</td><td>\(String(format: "%.0f", s.imagesPerHourPerCore))</td><td>\(psnr(s.psnr))</td>"
            h += "<td>\(ssim(s.ssim))</td><td class=\"l\">\(escape(ratios(s.peerRatios)))</td></tr>\n"
        }
        h += "</table>\n<p>capacity = floor(budget / peak RSS); images/h/core = 3600 · images / CPU seconds; "
        h += "utilisation = (user + sys) / (wall × threads). PSNR over RGB, SSIM on Rec. 601 luma with an 11×11 Gaussian window (σ 1.5).</p>\n"
        if let gpu = gpuTable(report) {
            h += "<h2>GPU memory" + (report.gpu.map { ": \(escape($0.name)), \(ByteSize.format($0.totalBytes))" } ?? "") + "</h2>\n"
            h += "<table id=\"gpu\"><tr>" + gpu.header.enumerated().map { c, t in "<th\(c < 2 || c == gpu.header.count - 1 ? " class=\"l\"" : "")>\(escape(t))</th>" }.joined() + "</tr>\n"
            for (row, s) in zip(gpu.rows, gpu.summaries) {
                h += "<tr data-workload=\"\(escape(s.workload))\" data-variant=\"\(escape(s.variant))\" "
                h += "data-vram-allocated-bytes=\"\(s.vram?.allocatedBytes.map(String.init) ?? "")\" "
                h += "data-vram-reserved-bytes=\"\(s.vram?.reservedBytes.map(String.init) ?? "")\" "
                h += "data-vram-process-bytes=\"\(s.vram?.processBytes.map(String.init) ?? "")\">"
                h += row.enumerated().map { c, t in "<td\(c < 2 || c == row.count - 1 ? " class=\"l\"" : "")>\(escape(t))</td>" }.joined() + "</tr>\n"
            }
            h += "</table>\n<p>\(escape(gpuLegend(report))).</p>\n"
        }
        h += "<h2>Recommendation</h2>\n<ul id=\"recommendation\">" + report.recommendation.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"
        if !report.notes.isEmpty {
            h += "<h2>Notes</h2>\n<ul id=\"notes\">" + report.notes.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"
        }
        h += "<h2>Radar</h2>\n" + radarSVG(report)
        h += "<h2>Time per stage (median s per image)</h2>\n" + stageBarsSVG(report)
        h += "<h2>Per input</h2>\n<table id=\"rows\"><tr><th class=\"l\">model</th><th class=\"l\">variant</th><th class=\"l\">image</th>"
        h += "<th>faces</th><th class=\"l\">runs (s)</th><th>median s</th><th>p95 s</th><th>peak RSS</th><th>utilisation</th><th>capacity</th>"
        h += "<th>PSNR</th><th>SSIM</th><th class=\"l\">stages (median s)</th><th class=\"l\">peer ratio</th><th class=\"l\">error</th></tr>\n"
        for r in report.rows {
            h += "<tr data-workload=\"\(escape(r.workload))\" data-variant=\"\(escape(r.variant))\" data-image=\"\(escape(r.image))\" "
            h += "data-median-s=\"\(seconds(r.medianS))\" data-p95-s=\"\(seconds(r.p95S))\" data-peak-rss-bytes=\"\(r.peakRSSBytes)\" "
            h += "data-capacity=\"\(r.capacity)\" data-psnr=\"\(psnr(r.quality?.psnr))\" data-ssim=\"\(ssim(r.quality?.ssim))\">"
            h += "<td class=\"l\">\(escape(r.workload))\(r.synthetic ? " <b>synthetic</b>" : "")</td><td class=\"l\">\(escape(r.variant))</td>"
            h += "<td class=\"l\">\(escape(r.image))</td><td>\(r.faces.map(String.init) ?? "n/a")</td><td class=\"l\">\(r.runs.map { seconds($0) }.joined(separator: " "))</td>"
            h += "<td>\(seconds(r.medianS))</td><td>\(seconds(r.p95S))</td><td>\(ByteSize.format(r.peakRSSBytes))</td>"
            h += "<td>\(percent(r.utilisation))</td><td>\(r.capacity)</td><td>\(psnr(r.quality?.psnr))</td><td>\(ssim(r.quality?.ssim))</td>"
            h += "<td class=\"l\">\(escape(r.stagesS.sorted { $0.key < $1.key }.map { String(format: "%@ %.3f", $0.key, $0.value) }.joined(separator: ", ")))</td>"
            h += "<td class=\"l\">\(escape(ratios(r.peerRatios)))</td><td class=\"l\">\(escape(r.error ?? ""))</td></tr>\n"
        }
        h += "</table>\n"
        // Before/after grid: one row per input; columns: input, clean, then each default workload's output.
        let columns = report.summaries.filter { $0.variant == "default" }.map(\.workload)
        if !report.inputs.isEmpty {
            h += "<h2>Before / after</h2>\n<table class=\"grid\" id=\"grid\"><tr><th>input</th><th>clean</th>"
            h += columns.map { "<th>\(escape($0))</th>" }.joined() + "</tr>\n"
            for input in report.inputs {
                h += "<tr><td><img src=\"\(escape(relative(input.path, to: dir)))\" alt=\"\(escape(input.name))\">\(escape(input.name))</td>"
                h += "<td>" + (input.cleanPath.map { "<img src=\"\(escape(relative($0, to: dir)))\" alt=\"clean\">" } ?? "n/a") + "</td>"
                for c in columns {
                    let row = report.rows.first { $0.workload == c && $0.variant == "default" && $0.image == input.name }
                    if let out = row?.output {
                        let q = row?.quality.map { "PSNR \(psnr($0.psnr)) / SSIM \(ssim($0.ssim))" } ?? ""
                        h += "<td><img src=\"\(escape(relative(out, to: dir)))\" alt=\"\(escape(c))\">\(escape(q))</td>"
                    } else {
                        h += "<td>\(escape(row?.error ?? "n/a"))</td>"
                    }
                }
                h += "</tr>\n"
            }
            h += "</table>\n"
        }
        if let serve = report.serve { h += serveSection(serve) }
        return h + "</body></html>\n"
    }
}
