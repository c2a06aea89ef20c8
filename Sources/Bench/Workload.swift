// A workload is data: a program, an argument template and how to read what it wrote.

import Foundation

/// Whether a workload takes one image file or a folder of images per run.
public enum WorkloadInput: String, Sendable, Codable {
    case file, folder
}

/// One command the bench runs in a fresh process per measurement.
///
/// Argument placeholders, replaced inside every argument: `{input}` (the image file, or the folder for
/// folder workloads), `{output}` (an empty-per-run output folder), `{threads}`. The command must write its
/// image(s) into `{output}` and one JSON line per image to `{output}/results.jsonl` (the batch record:
/// `input`, `output`, `status`, `timings` in seconds per stage, optional `*_bytes` memory figures).
public struct WorkloadSpec: Sendable, Codable, Equatable {
    /// Short name shown in tables, e.g. `gpen-512` or `realesrgan-x2plus`.
    public var name: String
    /// Kind of work: `restore`, `upscale`, `chain`, or anything else for user workloads.
    public var family: String
    /// The optimisation variant, `default` for the baseline.
    public var variant: String
    /// Absolute path of the program.
    public var executable: String
    /// Argument template (see the type's documentation for placeholders).
    public var arguments: [String]
    /// Extra environment variables for the child.
    public var environment: [String: String]
    /// Threads the workload is told to use (the utilisation denominator).
    public var threads: Int
    /// File or folder input.
    public var input: WorkloadInput
    /// True when the weights are synthetic (timing and memory valid, images meaningless).
    public var synthetic: Bool
    /// For peer implementations: the label (`name`, or `name [variant]`) of the workload this one mirrors;
    /// ratios are taken against it on the same input.
    public var peerOf: String?
    /// Seconds after which a run is killed.
    public var timeout: Double
    /// Names of the only inputs this workload runs on (nil: every scene).
    public var onlyInputs: [String]?

    /// Creates a spec.
    public init(name: String, family: String, variant: String = "default", executable: String, arguments: [String],
                environment: [String: String] = [:], threads: Int = 2, input: WorkloadInput = .file,
                synthetic: Bool = false, peerOf: String? = nil, timeout: Double = 1800, onlyInputs: [String]? = nil) {
        self.name = name
        self.family = family
        self.variant = variant
        self.executable = executable
        self.arguments = arguments
        self.environment = environment
        self.threads = threads
        self.input = input
        self.synthetic = synthetic
        self.peerOf = peerOf
        self.timeout = timeout
        self.onlyInputs = onlyInputs
    }

    /// `name` plus the variant unless it is `default`.
    public var label: String { variant == "default" ? name : "\(name) [\(variant)]" }

    /// The arguments with placeholders filled in.
    public func expandedArguments(input: String, output: String) -> [String] {
        arguments.map {
            $0.replacingOccurrences(of: "{input}", with: input)
                .replacingOccurrences(of: "{output}", with: output)
                .replacingOccurrences(of: "{threads}", with: String(threads))
        }
    }
}

/// One image's line of `results.jsonl`, read leniently so commands can add fields.
public struct WorkloadRecord: Sendable, Equatable {
    /// Input path as the command wrote it.
    public var input: String
    /// Output path as the command wrote it (absolute, or relative to the output folder or the working folder).
    public var output: String?
    /// `ok`, `skipped`, `failed`, `not-image`.
    public var status: String
    /// Error text, when any.
    public var error: String?
    /// Seconds per stage.
    public var timings: [String: Double]
    /// Memory figures in bytes: every numeric `*_bytes` field at the top level, in `timings` or in `memory`.
    public var memory: [String: Double]
    /// Faces the command restored, when it reports them.
    public var faces: Int?

    /// The engine's own tensor peak when the command reports one: the largest `*peak*_bytes` figure that is not a
    /// process RSS (a peer's own `peak_rss_bytes` is whole-process memory, measured from outside anyway).
    public var tensorPeakBytes: Double? {
        RunMeasurement.tensorPeak(memory)
    }

    /// Parses one JSON object line.
    public init(line: String, path: String, lineNumber: Int) throws(BenchError) {
        guard let data = line.data(using: .utf8),
              let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw .io(path: path, reason: "line \(lineNumber) is not a JSON object")
        }
        guard let input = obj["input"] as? String, let status = obj["status"] as? String else {
            throw .io(path: path, reason: "line \(lineNumber) lacks the string fields \"input\" and \"status\"")
        }
        self.input = input
        self.status = status
        self.output = obj["output"] as? String
        self.error = obj["error"] as? String
        self.faces = (obj["faces"] as? NSNumber)?.intValue
        var timings: [String: Double] = [:], memory: [String: Double] = [:]
        for (k, v) in obj where k.hasSuffix("_bytes") {
            if let n = (v as? NSNumber)?.doubleValue { memory[k] = n }
        }
        for (k, v) in (obj["timings"] as? [String: Any]) ?? [:] {
            guard let n = (v as? NSNumber)?.doubleValue else { continue }
            if k.hasSuffix("_bytes") { memory[k] = n } else { timings[k] = n }
        }
        for (k, v) in (obj["memory"] as? [String: Any]) ?? [:] {
            if let n = (v as? NSNumber)?.doubleValue { memory[k.hasSuffix("_bytes") ? k : k + "_bytes"] = n }
        }
        self.timings = timings
        self.memory = memory
    }

    /// Reads every non-empty line of a `results.jsonl`.
    public static func readAll(path: String) throws(BenchError) -> [WorkloadRecord] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw .io(path: path, reason: "the workload wrote no results.jsonl")
        }
        guard let text = String(data: data, encoding: .utf8) else { throw .io(path: path, reason: "not UTF-8") }
        var out: [WorkloadRecord] = []
        for (i, line) in text.split(separator: "\n").enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            out.append(try WorkloadRecord(line: String(line), path: path, lineNumber: i + 1))
        }
        return out
    }
}

/// One measured run of a workload on one input.
public struct RunMeasurement: Sendable, Codable, Equatable {
    /// The engine tensor peak among reported memory figures: the largest whose name contains `peak` but not `rss`
    /// or `vram` (whole-process and device figures have their own fields).
    public static func tensorPeak(_ memory: [String: Double]) -> Double? {
        memory.filter { $0.key.contains("peak") && !$0.key.contains("rss") && !$0.key.hasPrefix("vram") }.values.max()
    }

    /// Wall seconds of the whole process.
    public var wallSeconds: Double
    /// User + system CPU seconds.
    public var cpuSeconds: Double
    /// Peak RSS of the process in bytes.
    public var peakRSSBytes: Int64
    /// (user + sys) / (wall × threads).
    public var utilisation: Double
    /// Per-stage seconds summed over the run's records.
    public var stages: [String: Double]
    /// Memory figures from the records (largest per key).
    public var memory: [String: Double]
    /// GPU memory of the run (nil when neither the records nor a device probe gave any).
    public var vram: VRAMPeaks? = nil
    /// Mean GPU busy fraction while the run went (NVML; nil without a probe).
    public var gpuUtilisation: Double? = nil

    enum CodingKeys: String, CodingKey {
        case wallSeconds = "wall_s", cpuSeconds = "cpu_s", peakRSSBytes = "peak_rss_bytes", utilisation
        case stages = "stages_s", memory = "memory_bytes", vram, gpuUtilisation = "gpu_utilisation"
    }
}

/// GPU memory of a run or a workload, the three layers of ../shared/docs/gpu.md §5, bytes.
public struct VRAMPeaks: Sendable, Codable, Equatable {
    /// The engine's own count: live peak + weights + workspace (`vram_allocated_peak_bytes` of the records; PyTorch's
    /// `max_memory_allocated` after loading the model).
    public var allocatedBytes: Int64?
    /// The engine's pool high-water mark + weights + workspace (`vram_reserved_peak_bytes`; PyTorch's
    /// `max_memory_reserved`).
    public var reservedBytes: Int64?
    /// Device memory in use at the child's peak minus the idle level before it started, sampled by the bench
    /// (NVML: the CUDA context and libraries included).
    public var processBytes: Int64?

    enum CodingKeys: String, CodingKey {
        case allocatedBytes = "allocated_bytes", reservedBytes = "reserved_bytes", processBytes = "process_bytes"
    }

    /// Creates peaks.
    public init(allocatedBytes: Int64? = nil, reservedBytes: Int64? = nil, processBytes: Int64? = nil) {
        self.allocatedBytes = allocatedBytes; self.reservedBytes = reservedBytes; self.processBytes = processBytes
    }

    /// From the records' memory figures and the sampled process peak; nil when there is nothing.
    public init?(memory: [String: Double], processBytes: Int64?) {
        let a = memory["vram_allocated_peak_bytes"].map { Int64($0) }, r = memory["vram_reserved_peak_bytes"].map { Int64($0) }
        guard a != nil || r != nil || processBytes != nil else { return nil }
        self.init(allocatedBytes: a, reservedBytes: r, processBytes: processBytes)
    }

    /// Field-wise largest of several peaks (nil when none has any).
    public static func largest(_ all: [VRAMPeaks]) -> VRAMPeaks? {
        guard !all.isEmpty else { return nil }
        return VRAMPeaks(allocatedBytes: all.compactMap(\.allocatedBytes).max(), reservedBytes: all.compactMap(\.reservedBytes).max(),
                         processBytes: all.compactMap(\.processBytes).max())
    }

    /// The figure one instance needs on a card, and which layer it is: the process peak (each instance is a process
    /// with its own context), else reserved, else allocated.
    public var perInstance: (bytes: Int64, basis: String)? {
        if let p = processBytes, p > 0 { return (p, "process") }
        if let r = reservedBytes, r > 0 { return (r, "reserved") }
        if let a = allocatedBytes, a > 0 { return (a, "allocated") }
        return nil
    }
}

/// The outcome of one process run: the measurement plus the records and output images it produced.
public struct WorkloadRun: Sendable {
    /// Measured from outside.
    public var process: ProcessMeasurement
    /// Parsed records (empty when the command wrote none).
    public var records: [WorkloadRecord]
    /// Absolute paths of the output images of `ok` records.
    public var outputs: [String]
    /// Why the run is unusable, or nil when it succeeded.
    public var failure: String?

    /// The run as a measurement row entry.
    public func measurement(threads: Int) -> RunMeasurement {
        var stages: [String: Double] = [:], memory: [String: Double] = [:]
        for r in records {
            for (k, v) in r.timings { stages[k, default: 0] += v }
            for (k, v) in r.memory { memory[k] = max(memory[k] ?? 0, v) }
        }
        return RunMeasurement(wallSeconds: process.wallSeconds, cpuSeconds: process.cpuSeconds,
                              peakRSSBytes: process.peakRSSBytes,
                              utilisation: Stats.utilisation(cpuSeconds: process.cpuSeconds,
                                                             wallSeconds: process.wallSeconds, threads: threads),
                              stages: stages, memory: memory,
                              vram: VRAMPeaks(memory: memory, processBytes: process.deviceProcessPeakBytes),
                              gpuUtilisation: process.deviceBusy)
    }
}

extension WorkloadSpec {
    /// Runs the workload once on `input`, writing into `outputDir` (its `results.jsonl` is removed first so only
    /// this run's records are read), and collects the measurement, records and output images.
    public func runOnce(input: String, outputDir: String,
                        deviceMemory: DeviceMemoryProbe? = nil) throws(BenchError) -> WorkloadRun {
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: outputDir, withIntermediateDirectories: true) } catch {
            throw .io(path: outputDir, reason: "cannot create output folder: \(error.localizedDescription)")
        }
        let resultsPath = (outputDir as NSString).appendingPathComponent("results.jsonl")
        unlink(resultsPath)
        let stdoutPath = (outputDir as NSString).appendingPathComponent("stdout.txt")
        let stderrPath = (outputDir as NSString).appendingPathComponent("stderr.txt")
        let proc = try ChildProcess.run(executable: executable, arguments: expandedArguments(input: input, output: outputDir),
                                        environment: environment, stdoutPath: stdoutPath, stderrPath: stderrPath,
                                        timeout: timeout, deviceMemory: deviceMemory)
        var failure: String? = nil
        if proc.timedOut {
            failure = "killed after \(Int(timeout)) s"
        } else if proc.exitCode != 0 {
            let tail = (try? String(contentsOfFile: stderrPath, encoding: .utf8))?
                .split(separator: "\n").suffix(3).joined(separator: " | ") ?? ""
            failure = "exit status \(proc.exitCode)\(tail.isEmpty ? "" : ": " + tail)"
        }
        var records: [WorkloadRecord] = []
        if failure == nil {
            do { records = try WorkloadRecord.readAll(path: resultsPath) } catch { failure = error.description }
        }
        var outputs: [String] = []
        for r in records {
            if r.status == "failed" {
                failure = failure ?? "\(r.input): \(r.error ?? "failed")"
                continue
            }
            guard r.status == "ok", let out = r.output else { continue }
            let candidates = out.hasPrefix("/") ? [out]
                : [(outputDir as NSString).appendingPathComponent(out), (fm.currentDirectoryPath as NSString).appendingPathComponent(out)]
            if let found = candidates.first(where: { fm.fileExists(atPath: $0) }) {
                outputs.append(found)
            } else {
                failure = failure ?? "record names output \(out), which does not exist"
            }
        }
        if failure == nil && outputs.isEmpty { failure = "no image was written (no ok record in results.jsonl)" }
        return WorkloadRun(process: proc, records: records, outputs: outputs, failure: failure)
    }
}
