// The protocol: warm-up, N measured runs per workload × input, each in a fresh process; then the statistics.

import Foundation
import Pipeline

/// How many runs to make and how to judge memory.
public struct BenchProtocol: Sendable {
    /// Warm-up runs (not recorded) before the measured ones.
    public var warmups: Int
    /// Measured runs per workload × input.
    public var runs: Int
    /// Memory available for instances (`--memory-budget`), bytes.
    public var memoryBudgetBytes: Int64
    /// Marks the report as a `--quick` run.
    public var quick: Bool
    /// Warm up before every input (true) or only before a workload's first input (false: each run is a fresh
    /// process either way; the warm-up fills the page cache with the binary, weights and inputs).
    public var warmupEveryInput: Bool
    /// Wall-clock seconds after which passes beyond the first stop taking rows (nil: no limit).
    public var timeBudgetS: Double?
    /// When the budget started (the command's start, so scene and weight preparation count); nil: when `run` starts.
    public var budgetStart: Date?
    /// Samples the GPU's memory around every run (the VRAM "process" layer); nil: not sampled.
    public var deviceMemory: DeviceMemoryProbe? = nil
    /// The GPU's memory in bytes, for "instances per this card" (nil: unknown).
    var cardBytes: Int64? { deviceMemory.map(\.totalBytes).flatMap { $0 > 0 ? $0 : nil } }

    /// Creates a protocol; `runs` must be at least 1.
    public init(warmups: Int = 1, runs: Int = 5, memoryBudgetBytes: Int64 = 12 << 30, quick: Bool = false,
                warmupEveryInput: Bool = true, timeBudgetS: Double? = nil) {
        self.warmupEveryInput = warmupEveryInput
        self.timeBudgetS = timeBudgetS.flatMap { $0 > 0 ? $0 : nil }
        self.warmups = max(0, warmups)
        self.runs = max(1, runs)
        self.memoryBudgetBytes = memoryBudgetBytes
        self.quick = quick
    }
}

/// Runs workloads on inputs and assembles the report.
public struct BenchRunner: Sendable {
    /// Protocol settings.
    public var settings: BenchProtocol
    /// Folder that receives `runs/<workload>/<input>/` output folders.
    public var outDir: URL

    /// Creates a runner writing under `outDir`.
    public init(settings: BenchProtocol, outDir: URL) {
        self.settings = settings
        self.outDir = outDir
    }

    /// Measures every workload on every input (folder workloads once on `folder`), then derives summaries,
    /// peer ratios and the recommendation. `log` receives one line per run.
    /// Workloads with `onlyInputs` run on those names, looked up in `inputs` and `extraInputs`.
    ///
    /// Runs go round-robin: pass 1 measures every row once (after its warm-up), pass 2 every row again, and so on up
    /// to `runs` passes, so machine noise spreads evenly over the rows. With a time budget, passes after the first
    /// take a row only while its mean run time still fits in what is left (main rows and peers before the
    /// variants); the rows keep the runs they got, and a note says so.
    public func run(workloads: [WorkloadSpec], inputs: [BenchInput], extraInputs: [BenchInput] = [], folder: String?,
                    notes: [String] = [], log: (String) -> Void = { _ in }) -> BenchReport {
        let started = Date()
        var tasks: [RowTask] = []
        // A warm-up only fills the page cache (every run is a fresh process), so variants of a workload that already
        // warmed up with the same program and weights (same name and executable) skip it.
        var warmed = Set<String>()
        func warmups(_ w: WorkloadSpec) -> Int {
            warmed.insert(w.name + "\u{1}" + w.executable).inserted || settings.warmupEveryInput ? settings.warmups : 0
        }
        for w in workloads {
            if w.input == .folder {
                guard let folder else { continue }
                tasks.append(RowTask(w: w, inputPath: folder, imageName: "all (\(inputs.count))", images: inputs.count,
                                     clean: nil, warmups: warmups(w)))
            } else {
                let targets = w.onlyInputs.map { names in (inputs + extraInputs).filter { names.contains($0.name) } } ?? inputs
                for input in targets {
                    tasks.append(RowTask(w: w, inputPath: input.path, imageName: input.name, images: 1, clean: input.cleanPath,
                                         warmups: warmups(w)))
                }
            }
        }
        tasks = BenchRunner.peersBesideTheirRows(tasks)
        var states = tasks.map { _ in RowState() }
        // Later passes: main rows first, then variants; a peer ranks with the row it mirrors.
        let rank = tasks.map { t in (tasks.first { t.mirrors($0) } ?? t).isVariant ? 1 : 0 }
        for pass in 0..<settings.runs {
            var order = tasks.indices.filter { states[$0].failure == nil && !states[$0].stopped && states[$0].measurements.count == pass }
            if pass > 0 { order.sort { (rank[$0], $0) < (rank[$1], $1) } }
            for i in order {
                if pass > 0, let budget = settings.timeBudgetS {
                    let walls = states[i].measurements.map(\.wallSeconds)
                    let estimate = walls.reduce(0, +) / Double(max(1, walls.count))
                    if Date().timeIntervalSince(settings.budgetStart ?? started) + estimate > budget {
                        states[i].stopped = true
                        continue
                    }
                }
                runOnce(tasks[i], state: &states[i], warmups: pass == 0 ? tasks[i].warmups : 0)
                let t = tasks[i], st = states[i]
                log(st.failure.map { "\(t.w.label) on \(t.imageName): FAILED \($0)" }
                    ?? String(format: "run %d/%d %@ on %@: %.3f s, peak %@", pass + 1, settings.runs, t.w.label, t.imageName,
                              st.measurements.last?.wallSeconds ?? 0, ByteSize.format(st.measurements.last?.peakRSSBytes ?? 0)))
            }
        }
        let rows = tasks.indices.map { row(tasks[$0], states[$0]) }
        var allNotes = notes
        let short = rows.filter { $0.error == nil && !$0.runs.isEmpty && $0.runs.count < settings.runs }
        if let budget = settings.timeBudgetS, !short.isEmpty {
            let counts = rows.filter { $0.error == nil }.map(\.runs.count)
            allNotes.append(String(format: "time budget %.0f min: %d of %d rows got fewer than %d runs (%d to %d); "
                                   + "--time-budget 0 runs the whole protocol", budget / 60, short.count, rows.count,
                                   settings.runs, counts.min() ?? 0, counts.max() ?? 0))
        }
        let used = extraInputs.filter { e in workloads.contains { $0.onlyInputs?.contains(e.name) == true } }
        return BenchRunner.assemble(rows: rows, inputs: inputs + used, settings: settings, notes: allNotes, started: started,
                                    duration: Date().timeIntervalSince(started))
    }

    /// One row to measure: a workload on one input (or on the folder).
    struct RowTask {
        let w: WorkloadSpec
        let inputPath: String
        let imageName: String
        let images: Int
        let clean: String?
        let warmups: Int
        var isVariant: Bool { w.variant != "default" && w.peerOf == nil }
        /// True when this is a peer row of `row`: the workload it mirrors, on the same image.
        func mirrors(_ row: RowTask) -> Bool { w.peerOf != nil && row.w.label == w.peerOf && row.imageName == imageName }
    }

    /// What the runs of one row have produced so far.
    struct RowState {
        var measurements: [RunMeasurement] = []
        var failure: String? = nil
        var lastOutput: String? = nil
        var faces: Int? = nil
        /// Left out of later passes by the time budget.
        var stopped = false
    }

    /// Peer rows moved right after the rows they mirror (same label and image), so a pass the time budget ends early
    /// leaves a peer and its counterpart with the same number of runs.
    static func peersBesideTheirRows(_ tasks: [RowTask]) -> [RowTask] {
        var out = tasks.filter { $0.w.peerOf == nil }
        for p in tasks where p.w.peerOf != nil {
            if let k = out.lastIndex(where: { p.mirrors($0) }) {
                out.insert(p, at: k + 1)
            } else {
                out.append(p)
            }
        }
        return out
    }

    /// Warm-ups (not recorded), then one measured run of a row.
    func runOnce(_ t: RowTask, state: inout RowState, warmups: Int) {
        let dir = outDir.appendingPathComponent("runs").appendingPathComponent(slug(t.w.label))
            .appendingPathComponent(slug(t.imageName)).path
        for i in 0...warmups {
            do {
                let r = try t.w.runOnce(input: t.inputPath, outputDir: dir, deviceMemory: settings.deviceMemory)
                if let f = r.failure { state.failure = f; return }
                if i == warmups { state.measurements.append(r.measurement(threads: t.w.threads)) }
                state.lastOutput = r.outputs.first
                let counts = r.records.compactMap(\.faces)
                state.faces = counts.isEmpty ? nil : counts.reduce(0, +)
            } catch {
                state.failure = error.description
                return
            }
        }
    }

    /// The row of a task's runs, with the quality of its last output.
    func row(_ t: RowTask, _ st: RowState) -> BenchRow {
        var failure = st.failure
        var quality: QualityScore? = nil
        if let clean = t.clean, let out = st.lastOutput, failure == nil {
            do {
                quality = try Quality.score(output: RGBImage(contentsOf: URL(fileURLWithPath: out)),
                                            reference: RGBImage(contentsOf: URL(fileURLWithPath: clean)))
            } catch { recordError(&failure, "quality: \(error.description)") }
        }
        var row = BenchRunner.makeRow(t.w, image: t.imageName, images: t.images, input: t.inputPath, output: st.lastOutput,
                                      measurements: st.measurements, quality: quality, error: failure,
                                      budget: settings.memoryBudgetBytes, cardBytes: settings.cardBytes)
        row.faces = st.faces
        return row
    }

    private func recordError(_ slot: inout String?, _ message: String) { slot = slot ?? message }

    /// Builds a row's statistics from its measurements.
    public static func makeRow(_ w: WorkloadSpec, image: String, images: Int, input: String, output: String?,
                               measurements: [RunMeasurement], quality: QualityScore?, error: String?,
                               budget: Int64, cardBytes: Int64? = nil) -> BenchRow {
        let walls = measurements.map(\.wallSeconds)
        let peak = measurements.map(\.peakRSSBytes).max() ?? 0
        let cpu = Stats.median(measurements.map(\.cpuSeconds)) ?? 0
        var stageNames = Set<String>()
        for m in measurements { stageNames.formUnion(m.stages.keys) }
        var stages: [String: Double] = [:]
        for s in stageNames { stages[s] = Stats.median(measurements.map { $0.stages[s] ?? 0 }) }
        let tensorPeak = measurements.compactMap { RunMeasurement.tensorPeak($0.memory) }.max()
        let vram = VRAMPeaks.largest(measurements.compactMap(\.vram))
        return BenchRow(workload: w.name, family: w.family, variant: w.variant, image: image, threads: w.threads,
                        imagesPerRun: images, synthetic: w.synthetic, peerOf: w.peerOf, runs: walls,
                        medianS: Stats.median(walls), p95S: Stats.percentile(walls, 95), measurements: measurements,
                        peakRSSBytes: peak, tensorPeakBytes: tensorPeak,
                        utilisation: Stats.median(measurements.map(\.utilisation)) ?? 0, cpuS: cpu, stagesS: stages,
                        capacity: Stats.capacity(budgetBytes: budget, peakBytes: peak),
                        imagesPerHourPerCore: Stats.imagesPerHourPerCore(images: images, cpuSeconds: cpu),
                        quality: quality, peerRatios: [:], input: input, output: output, faces: nil, error: error,
                        vram: vram, gpuCapacity: GPUCapacity(vram, cardBytes: cardBytes),
                        gpuUtilisation: Stats.median(measurements.compactMap(\.gpuUtilisation)))
    }

    /// Adds peer ratios, per-workload summaries and the recommendation to measured rows.
    public static func assemble(rows inRows: [BenchRow], inputs: [BenchInput], settings: BenchProtocol, notes: [String],
                                started: Date, duration: Double) -> BenchReport {
        var rows = inRows
        // Peer ratios per row: the peer's median over the mirrored workload's median (matched by label), same image.
        for (pi, peer) in rows.enumerated() {
            guard let target = peer.peerOf, let pm = peer.medianS else { continue }
            for i in rows.indices where rows[i].label == target && rows[i].peerOf == nil && rows[i].image == rows[pi].image {
                if let m = rows[i].medianS, m > 0 { rows[i].peerRatios[peer.label] = pm / m }
            }
        }
        var order: [String] = []
        var groups: [String: [BenchRow]] = [:]
        for r in rows {
            let key = r.workload + "\u{1}" + r.variant
            if groups[key] == nil { order.append(key) }
            groups[key, default: []].append(r)
        }
        var summaries = order.map { summarize(groups[$0]!, budget: settings.memoryBudgetBytes, cardBytes: settings.cardBytes) }
        for (pi, peer) in summaries.enumerated() {
            guard let target = peer.peerOf, let pm = peer.medianS else { continue }
            for i in summaries.indices where summaries[i].label == target && summaries[i].peerOf == nil {
                if let m = summaries[i].medianS, m > 0 { summaries[i].peerRatios[summaries[pi].label] = pm / m }
            }
        }
        // Variants are compared with their default on the same inputs (a folder run with all of them).
        for i in summaries.indices where summaries[i].variant != "default" {
            let mine = rows.filter { $0.workload == summaries[i].workload && $0.variant == summaries[i].variant }
            let names = Set(mine.map(\.image))
            let base = rows.filter { $0.workload == summaries[i].workload && $0.variant == "default" && $0.peerOf == summaries[i].peerOf
                && (mine.contains { $0.imagesPerRun > 1 } || names.contains($0.image)) }
            summaries[i].baselinePerImageS = Stats.median(base.flatMap(\.runs))
        }
        var inputsByLabel: [String: Set<String>] = [:]
        for r in rows where !r.runs.isEmpty { inputsByLabel[r.label, default: []].insert(r.image) }
        let synthetic = rows.contains { $0.synthetic }
        let fmt = ISO8601DateFormatter()
        var uts = utsname()
        uname(&uts)
        let host = [uts.sysname, uts.release, uts.machine].map { field in
            withUnsafeBytes(of: field) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }.joined(separator: " ")
        return BenchReport(startedAt: fmt.string(from: started), durationS: duration,
                           hostCores: ProcessInfo.processInfo.activeProcessorCount, host: host, quick: settings.quick,
                           warmups: settings.warmups, runsPerInput: settings.runs, timeBudgetS: settings.timeBudgetS,
                           memoryBudgetBytes: settings.memoryBudgetBytes,
                           syntheticNote: synthetic ? BenchReport.syntheticWords : nil, inputs: inputs, rows: rows,
                           summaries: summaries,
                           recommendation: Recommendation.make(summaries: summaries, budget: settings.memoryBudgetBytes,
                                                               inputs: inputsByLabel),
                           notes: notes,
                           gpu: settings.deviceMemory.map { BenchGPU(name: $0.deviceName, totalBytes: $0.totalBytes,
                                                                     sampler: "NVML used − idle level, every 5 ms") })
    }

    /// Pools the rows of one workload × variant.
    static func summarize(_ rows: [BenchRow], budget: Int64, cardBytes: Int64? = nil) -> BenchSummary {
        let first = rows[0]
        let measured = rows.filter { !$0.runs.isEmpty }
        let pooled = measured.flatMap(\.runs)
        let all = measured.flatMap(\.measurements)
        let peak = measured.map(\.peakRSSBytes).max() ?? 0
        let images = measured.map(\.imagesPerRun).reduce(0, +)
        let cpuTotal = measured.map { $0.cpuS }.reduce(0, +)
        var stageNames = Set<String>()
        for m in all { stageNames.formUnion(m.stages.keys) }
        var stages: [String: Double] = [:]
        for s in stageNames { stages[s] = Stats.median(all.map { $0.stages[s] ?? 0 }) }
        let scored = measured.compactMap(\.quality)
        let finitePSNR = scored.map(\.psnr).filter(\.isFinite)
        let median = Stats.median(pooled)
        let vram = VRAMPeaks.largest(measured.compactMap(\.vram))
        return BenchSummary(workload: first.workload, family: first.family, variant: first.variant,
                            threads: first.threads, synthetic: first.synthetic, peerOf: first.peerOf,
                            images: images, runs: pooled, medianS: median, p95S: Stats.percentile(pooled, 95),
                            perImageS: median.map { $0 / Double(max(1, first.imagesPerRun)) },
                            peakRSSBytes: peak, tensorPeakBytes: measured.compactMap(\.tensorPeakBytes).max(),
                            utilisation: measured.isEmpty ? 0 : measured.map(\.utilisation).reduce(0, +) / Double(measured.count),
                            capacity: Stats.capacity(budgetBytes: budget, peakBytes: peak),
                            imagesPerHourPerCore: Stats.imagesPerHourPerCore(images: images, cpuSeconds: cpuTotal),
                            psnr: scored.isEmpty ? nil : finitePSNR.isEmpty ? .infinity
                                : finitePSNR.reduce(0, +) / Double(finitePSNR.count),
                            ssim: scored.isEmpty ? nil : scored.map(\.ssim).reduce(0, +) / Double(scored.count),
                            stagesS: stages, peerRatios: [:], errors: rows.compactMap { r in r.error.map { "\(r.image): \($0)" } },
                            faces: measured.contains { $0.faces != nil } ? measured.compactMap(\.faces).reduce(0, +) : nil,
                            vram: vram, gpuCapacity: GPUCapacity(vram, cardBytes: cardBytes),
                            gpuUtilisation: { let u = measured.compactMap(\.gpuUtilisation); return u.isEmpty ? nil : u.reduce(0, +) / Double(u.count) }())
    }
}

/// A file-name-safe form of a label: letters, digits, `-`, `_`, `.`; everything else becomes `-`.
func slug(_ s: String) -> String {
    let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
    var out = String(s.map { allowed.contains($0) ? $0 : "-" })
    while out.contains("--") { out = out.replacingOccurrences(of: "--", with: "-") }
    return out.trimmingCharacters(in: CharacterSet(charactersIn: "-"))
}
