// Plain-language advice computed from the summaries, in the study's "choose X if …" form.

import Foundation
import Pipeline

/// Turns measured summaries into sentences; every number in them comes from the summaries.
public enum Recommendation {
    /// Sentences for the report, most important first. `inputs` maps a summary's label to the images its rows
    /// measured; the fastest-versus-slowest comparison is made only between workloads measured on the same images.
    public static func make(summaries: [BenchSummary], budget: Int64, inputs: [String: Set<String>] = [:]) -> [String] {
        var out: [String] = []
        let baselines = summaries.filter { $0.variant == "default" && $0.peerOf == nil && $0.medianS != nil }
        let budgetText = ByteSize.format(budget)
        func facts(_ s: BenchSummary) -> String {
            var t = String(format: "%.2f s per image (p95 %.2f s), peak %@, %d instance%@ in %@, %.0f images/hour/core",
                           s.perImageS ?? 0, (s.p95S ?? 0) * (s.perImageS ?? 0) / max(s.medianS ?? 1, 1e-12),
                           ByteSize.format(s.peakRSSBytes), s.capacity, s.capacity == 1 ? "" : "s", budgetText,
                           s.imagesPerHourPerCore)
            if let p = s.psnr, let q = s.ssim, !s.synthetic {
                t += String(format: ", PSNR %@ dB / SSIM %.3f against the clean source", p.isFinite ? String(format: "%.2f", p) : "inf", q)
            }
            return t
        }
        let purpose = ["restore": "faces are what matters (it rebuilds detected faces and pastes them back)",
                       "upscale": "the whole picture needs more pixels or less noise",
                       "chain": "you need both a larger image and restored faces"]
        for s in baselines {
            let why = purpose[s.family] ?? "its output is what you need"
            var line = "Choose \(s.workload) if \(why): \(facts(s))."
            if let f = s.faces {
                line += f == 0 ? " No face was detected in any input, so this is the cost of detection (and the background) alone."
                    : " \(f) face\(f == 1 ? "" : "s") restored over \(s.images) image\(s.images == 1 ? "" : "s")."
            }
            out.append(line)
        }
        if baselines.count >= 2 {
            // The largest group of baselines measured on the same images (all of them when `inputs` is empty).
            var groups: [Set<String>: [BenchSummary]] = [:]
            for b in baselines { groups[inputs[b.label] ?? [], default: []].append(b) }
            func width(_ g: [BenchSummary]) -> Int { inputs[g[0].label]?.count ?? 0 }
            let same = groups.values.max { ($0.count, width($0)) < ($1.count, width($1)) } ?? baselines
            let fastest = same.min { ($0.perImageS ?? .infinity) < ($1.perImageS ?? .infinity) }!
            let leanest = baselines.min { $0.peakRSSBytes < $1.peakRSSBytes }!
            let slowest = same.max { ($0.perImageS ?? 0) < ($1.perImageS ?? 0) }!
            if fastest.workload != slowest.workload, let f = fastest.perImageS, let sl = slowest.perImageS, f > 0 {
                let n = inputs[fastest.label]?.count ?? 0
                out.append(String(format: "%@ is %.1f× faster per image than %@%@.", fastest.workload, sl / f, slowest.workload,
                                  n > 0 ? " on the same \(n) input\(n == 1 ? "" : "s")" : ""))
            }
            if leanest.capacity > 0 {
                out.append("Under a \(budgetText) budget the most instances fit with \(leanest.workload) (\(leanest.capacity)).")
            }
        }
        // Variants against their own baseline.
        for v in summaries where v.variant != "default" && v.peerOf == nil {
            guard let base = summaries.first(where: { $0.workload == v.workload && $0.variant == "default" }),
                  let bt = v.baselinePerImageS ?? base.perImageS, let vt = v.perImageS, bt > 0, vt > 0 else { continue }
            let speed = bt / vt
            let mem = Double(v.peakRSSBytes) / Double(max(1, base.peakRSSBytes))
            var s = String(format: "%@ [%@]: %.2f s per image vs %.2f s for the default on the same inputs (%@), peak %@ vs %@",
                           v.workload, v.variant, vt, bt,
                           speed >= 1 ? String(format: "%.2f× faster", speed) : String(format: "%.2f× slower", 1 / speed),
                           ByteSize.format(v.peakRSSBytes), ByteSize.format(base.peakRSSBytes))
            s += String(format: ", capacity %d vs %d, %.0f vs %.0f images/hour/core.", v.capacity, base.capacity,
                        v.imagesPerHourPerCore, base.imagesPerHourPerCore)
            if mem < 0.9 && speed > 0.8 { s += " Use it when memory is the limit." }
            else if speed > 1.1 && mem < 1.1 { s += " Prefer it where it applies." }
            else if v.imagesPerHourPerCore > base.imagesPerHourPerCore * 1.1 {
                s += " On a busy host, more instances of this setting give more images per core."
            }
            out.append(s)
        }
        // Peers.
        for s in summaries where s.peerOf == nil {
            for (peer, ratio) in s.peerRatios.sorted(by: { $0.key < $1.key }) {
                out.append(String(format: "%@ runs %.2f× %@ than %@ on the same inputs.", s.label,
                                  ratio >= 1 ? ratio : 1 / ratio, ratio >= 1 ? "faster" : "slower", peer))
            }
        }
        if summaries.contains(where: { $0.synthetic }) {
            out.append("Rows marked synthetic used \(BenchReport.syntheticWords).")
        }
        if out.isEmpty { out.append("No workload produced measurements, so there is nothing to recommend.") }
        return out
    }
}
