import ArgumentParser
import EnhanceKit
import Foundation
import Pipeline
import TensorCore

/// Batch flags shared by `upscale`, `restore` and `chain`: `--recursive`, `--skip-existing`, `--overwrite`,
/// `--jobs`, `--image-batch`, `--shard`, `--quiet`, `--json`.
struct BatchFlags: ParsableArguments {
    @Flag(help: "Descend into sub-folders and mirror the tree under the output folder.")
    var recursive = false
    @Flag(inversion: .prefixedNo, help: "Skip inputs whose output exists (resume).")
    var skipExisting = true
    @Flag(help: "Redo inputs whose output exists.")
    var overwrite = false
    @Option(help: "Images computing at once.")
    var jobs: Int = 1
    @Option(help: "Images of a folder share network passes: same-shape inputs (tiles, faces, parser inputs) of up to N images computing at once go through the network as one batch of N (--jobs is raised to N). For GPU throughput (with --tile-batch/--face-batch it multiplies); on the CPU no faster. Default 1.")
    var imageBatch: Int = 1
    @Option(help: "Process only shard K/N of the sorted inputs (0-based K), or auto (Slurm/Kubernetes variables).")
    var shard: String?
    @Flag(help: "Print only failures.")
    var quiet = false
    @Flag(help: "JSON-lines progress and summary on stdout.")
    var json = false

    func validate() throws {
        if jobs < 1 { throw ValidationError("--jobs must be at least 1") }
        if !(1...64).contains(imageBatch) { throw ValidationError("--image-batch must be 1...64, got \(imageBatch)") }
    }

    /// Closing lines on stderr: how many images each fallback computed again (fp32 after an fp16 overflow, the CPU
    /// when the GPU is out of memory; said per file too), and with `--image-batch` > 1 how many network runs shared a pass with another image's.
    func report<P>(_ command: String, _ devices: DeviceProcessors<P>) {
        guard !json else { return }
        let lost = devices.pool.lostMembers
        if !lost.isEmpty, lost.count < devices.pool.members.count {
            for (_, e) in lost {
                FileHandle.standardError.write(Data("\(command): \(e); its images went to the other GPUs\n".utf8))
            }
        }
        for (name, why, n) in devices.fallbackCounts {
            FileHandle.standardError.write(Data("\(command): \(n) image\(n == 1 ? "" : "s") computed again (\(name)): \(why)\n".utf8))
        }
        guard imageBatch > 1, !quiet else { return }
        let merged = devices.replays.reduce(0) { $0 + $1.statistics.merged }
        FileHandle.standardError.write(Data("\(command): --image-batch \(imageBatch): \(merged) network run\(merged == 1 ? "" : "s") shared a pass with another image's\n".utf8))
    }

    /// The runner's options for these flags and the command's output naming; with several GPUs, enough images at once
    /// to keep every one busy (`--image-batch` each).
    func options(output: String, suffix: String, ext: BatchOutputExtension, gpus: Int = 1) throws -> BatchOptions {
        var b = BatchOptions()
        b.outputDirectory = output
        b.recursive = recursive
        b.suffix = suffix
        b.outputExtension = ext
        b.skipExisting = skipExisting
        b.overwrite = overwrite
        b.jobs = max(jobs, imageBatch * gpus)
        if let shard {
            do { b.shard = try BatchShard.parse(shard, environment: ProcessInfo.processInfo.environment) }
            catch { throw ValidationError(error.description) }
        }
        b.progress = json ? .json : quiet ? .quiet : .auto
        return b
    }

    /// Plans and runs the batch; a setup failure (bad inputs, unwritable output) exits 2 naming the problem.
    /// The caller exits with `summary.exitCode`: 1 when a file failed (after the other files finished), 69 when the
    /// run stopped because its GPUs were lost.
    func run<P: BatchProcessor>(_ command: String, inputs: [String], processor: P, options b: BatchOptions,
                                memoryEstimate: (@Sendable (BatchItem) -> Int)? = nil) async throws -> BatchSummary {
        do {
            let plan = try BatchPlan.make(inputs: inputs, options: b)
            return try await BatchRunner(processor: processor, options: b, memoryEstimate: memoryEstimate).run(plan)
        } catch {
            FileHandle.standardError.write(Data("enhance \(command): \(error)\n".utf8))
            throw ExitCode(2)
        }
    }
}

/// Where and how `upscale`, `restore` and `chain` write their outputs: `-o/--output`, `--ext`, `--quality`.
struct OutputFlags: ParsableArguments {
    @Option(name: [.customShort("o"), .long], help: "Output folder (created if missing).")
    var output: String = "results"

    @Option(help: "Output format: auto (the input's), png, jpg or webp.")
    var ext: BatchOutputExtension = .auto

    @Option(help: "JPEG/WebP quality 1-100.")
    var quality: Int?

    func validate() throws {
        if let q = quality, !(1...100).contains(q) { throw ValidationError("--quality must be 1-100, got \(q)") }
    }

    /// The encoder settings these flags ask for.
    var encoding: UpscaleEncoding { UpscaleEncoding(quality: quality) }
}
