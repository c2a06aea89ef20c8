// The measured results: one row per workload × input, one summary per workload, and the run's context.

import Foundation

/// The measured runs of one workload on one input (or on the whole folder for folder workloads).
public struct BenchRow: Sendable, Codable, Equatable {
    /// Workload name.
    public var workload: String
    /// `restore`, `upscale`, `chain`, `peer`, …
    public var family: String
    /// Optimisation variant (`default` for the baseline).
    public var variant: String
    /// Input name (scene) or `all (N)` for folder runs.
    public var image: String
    /// Threads the workload was told to use.
    public var threads: Int
    /// Images processed per run (1, or the folder size).
    public var imagesPerRun: Int
    /// True when the weights were synthetic.
    public var synthetic: Bool
    /// For peers, the workload they mirror.
    public var peerOf: String?
    /// Wall seconds of each measured run, in order (warm-up excluded).
    public var runs: [Double]
    /// Median of `runs`.
    public var medianS: Double?
    /// 95th percentile of `runs` (linear interpolation).
    public var p95S: Double?
    /// Everything measured per run.
    public var measurements: [RunMeasurement]
    /// Largest whole-process peak RSS over the runs, bytes.
    public var peakRSSBytes: Int64
    /// Largest engine tensor peak the records reported, bytes (nil when the command reports none).
    public var tensorPeakBytes: Double?
    /// Median CPU utilisation (user + sys) / (wall × threads).
    public var utilisation: Double
    /// Median CPU seconds per run.
    public var cpuS: Double
    /// Median seconds per stage over the runs.
    public var stagesS: [String: Double]
    /// floor(memory budget / peak RSS).
    public var capacity: Int
    /// 3600 · images / median CPU seconds.
    public var imagesPerHourPerCore: Double
    /// PSNR/SSIM of the last run's output against the clean source (nil without a reference).
    public var quality: QualityScore?
    /// Peer label (`name [variant]`) → peer median / this row's median (above 1: this implementation is faster).
    public var peerRatios: [String: Double]
    /// Input path.
    public var input: String
    /// Output image of the last run.
    public var output: String?
    /// Faces the last run reported (sum over its records), when the command reports them.
    public var faces: Int?
    /// Why the row has no (or fewer) measurements.
    public var error: String?
    /// GPU memory, field-wise largest over the runs (nil off the GPU).
    public var vram: VRAMPeaks? = nil
    /// How many instances fit on a card (nil off the GPU).
    public var gpuCapacity: GPUCapacity? = nil
    /// Median GPU busy fraction over the runs (nil without NVML).
    public var gpuUtilisation: Double? = nil

    enum CodingKeys: String, CodingKey {
        case workload, family, variant, image, threads, synthetic, runs, measurements, capacity, utilisation, quality
        case input, output, error, faces, vram, gpuCapacity = "gpu_capacity", gpuUtilisation = "gpu_utilisation"
        case imagesPerRun = "images_per_run", peerOf = "peer_of", medianS = "median_s", p95S = "p95_s"
        case peakRSSBytes = "peak_rss_bytes", tensorPeakBytes = "tensor_peak_bytes", cpuS = "cpu_s"
        case stagesS = "stages_s", imagesPerHourPerCore = "images_per_hour_per_core", peerRatios = "peer_ratios"
    }

    /// `workload [variant]`.
    public var label: String { variant == "default" ? workload : "\(workload) [\(variant)]" }
}

/// One workload × variant over all its inputs.
public struct BenchSummary: Sendable, Codable, Equatable {
    /// Workload name.
    public var workload: String
    /// Family.
    public var family: String
    /// Variant.
    public var variant: String
    /// Threads.
    public var threads: Int
    /// Synthetic weights.
    public var synthetic: Bool
    /// Mirrored workload for peers.
    public var peerOf: String?
    /// Inputs with measurements.
    public var images: Int
    /// Every measured wall time of every input, pooled.
    public var runs: [Double]
    /// Median of the pooled runs.
    public var medianS: Double?
    /// 95th percentile of the pooled runs.
    public var p95S: Double?
    /// Seconds per image (median wall / images per run).
    public var perImageS: Double?
    /// Largest peak RSS, bytes.
    public var peakRSSBytes: Int64
    /// Largest tensor peak reported, bytes.
    public var tensorPeakBytes: Double?
    /// Mean of the rows' median utilisation.
    public var utilisation: Double
    /// floor(budget / peak RSS).
    public var capacity: Int
    /// Pooled images per hour per core.
    public var imagesPerHourPerCore: Double
    /// Mean PSNR over inputs whose output differs from its reference (identical ones, +inf, are left out;
    /// +inf only when every output equals its reference; nil without references).
    public var psnr: Double?
    /// Mean SSIM over inputs with a reference.
    public var ssim: Double?
    /// Median per-stage seconds over the pooled runs.
    public var stagesS: [String: Double]
    /// Peer label → peer median / this median.
    public var peerRatios: [String: Double]
    /// Errors of any row.
    public var errors: [String]
    /// Faces restored per run summed over the inputs (nil when the command reports none).
    public var faces: Int?
    /// For variants: seconds per image of the same workload's default variant on the same inputs.
    public var baselinePerImageS: Double?
    /// GPU memory, field-wise largest over the rows (nil off the GPU).
    public var vram: VRAMPeaks? = nil
    /// How many instances fit on a card (nil off the GPU).
    public var gpuCapacity: GPUCapacity? = nil
    /// Mean of the rows' median GPU busy fraction (nil without NVML).
    public var gpuUtilisation: Double? = nil

    enum CodingKeys: String, CodingKey {
        case workload, family, variant, threads, synthetic, images, runs, utilisation, capacity, psnr, ssim, errors, faces
        case vram, gpuCapacity = "gpu_capacity", gpuUtilisation = "gpu_utilisation"
        case baselinePerImageS = "baseline_per_image_s"
        case peerOf = "peer_of", medianS = "median_s", p95S = "p95_s", perImageS = "per_image_s"
        case peakRSSBytes = "peak_rss_bytes", tensorPeakBytes = "tensor_peak_bytes"
        case imagesPerHourPerCore = "images_per_hour_per_core", stagesS = "stages_s", peerRatios = "peer_ratios"
    }

    /// `workload [variant]`.
    public var label: String { variant == "default" ? workload : "\(workload) [\(variant)]" }
}

/// Everything `enhance bench` measured in one run, as written to `bench.json`.
public struct BenchReport: Sendable, Codable, Equatable {
    /// Format version of this file.
    public var formatVersion: Int = 1
    /// UTC time the run started (ISO 8601).
    public var startedAt: String
    /// Wall seconds of the whole bench.
    public var durationS: Double
    /// Online CPU cores of the host.
    public var hostCores: Int
    /// Kernel and machine, from uname.
    public var host: String
    /// True for `--quick`.
    public var quick: Bool
    /// Warm-up runs per workload × input.
    public var warmups: Int
    /// Measured runs per workload × input.
    public var runsPerInput: Int
    /// `--time-budget` in seconds (nil: none); rows may then hold fewer than `runsPerInput` runs.
    public var timeBudgetS: Double? = nil
    /// `--memory-budget` in bytes.
    public var memoryBudgetBytes: Int64
    /// Set when any workload used synthetic weights.
    public var syntheticNote: String?
    /// The inputs.
    public var inputs: [BenchInput]
    /// Per workload × input.
    public var rows: [BenchRow]
    /// Per workload.
    public var summaries: [BenchSummary]
    /// Plain-language advice derived from the summaries.
    public var recommendation: [String]
    /// Workloads or peers that were skipped, and why.
    public var notes: [String]
    /// `enhance bench serve` run into the same folder (the "Service load" section).
    public var serve: ServeLoadReport? = nil
    /// The GPU whose memory was sampled (nil: no device probe).
    public var gpu: BenchGPU? = nil

    enum CodingKeys: String, CodingKey {
        case host, quick, warmups, inputs, rows, summaries, recommendation, notes, serve, gpu
        case formatVersion = "format_version", startedAt = "started_at", durationS = "duration_s"
        case hostCores = "host_cores", runsPerInput = "runs_per_input", timeBudgetS = "time_budget_s", memoryBudgetBytes = "memory_budget_bytes"
        case syntheticNote = "synthetic_note"
    }

    /// The words every synthetic row and the report carry.
    public static let syntheticWords = "synthetic weights: timing and memory valid, images meaningless"

    /// JSON encoder used for `bench.json` (sorted keys; infinities written as the strings "inf" / "-inf").
    public static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    /// The matching decoder.
    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}

/// Instances of one workload that fit on a card, each needing `perInstanceBytes`.
public struct GPUCapacity: Sendable, Codable, Equatable {
    /// The study's card, an NVIDIA A10 sold as "24 GB", counted as 24 GiB as scripts/device/summarise.py does (NVML
    /// reports 23,028 MiB usable on an A10, so real headroom is ≈ 6 % lower).
    public static let studyCardBytes: Int64 = 24 << 30

    /// Which layer of `VRAMPeaks` one instance is taken to need: `process`, `reserved` or `allocated`.
    public var basis: String
    /// Bytes per instance.
    public var perInstanceBytes: Int64
    /// floor(24 GB / per instance): the study's "how many fit on an A10".
    public var studyCard: Int
    /// floor(this card's memory / per instance), when the card's size is known.
    public var thisCard: Int?

    enum CodingKeys: String, CodingKey {
        case basis, perInstanceBytes = "per_instance_bytes", studyCard = "study_card", thisCard = "this_card"
    }

    /// Nil when the peaks hold no usable figure.
    public init?(_ vram: VRAMPeaks?, cardBytes: Int64?) {
        guard let (bytes, basis) = vram?.perInstance else { return nil }
        self.basis = basis
        perInstanceBytes = bytes
        studyCard = Int(Self.studyCardBytes / bytes)
        thisCard = cardBytes.flatMap { $0 > 0 ? Int($0 / bytes) : nil }
    }
}

/// The GPU the bench sampled.
public struct BenchGPU: Sendable, Codable, Equatable {
    /// Device name (NVML).
    public var name: String
    /// Device memory, bytes.
    public var totalBytes: Int64
    /// How the process layer was measured.
    public var sampler: String

    enum CodingKeys: String, CodingKey { case name, totalBytes = "total_bytes", sampler }

    /// Creates a description.
    public init(name: String, totalBytes: Int64, sampler: String) {
        self.name = name; self.totalBytes = totalBytes; self.sampler = sampler
    }
}
