import ArgumentParser
import BackendDNNL
import Foundation
import Pipeline
import TensorCore

/// Which compute backend runs the networks.
enum BackendKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    /// oneDNN (fast; the default).
    case dnnl
    /// The plain-Swift reference backend (slow; the test oracle, for parity checks).
    case reference
}

/// `--precision`.
enum PrecisionKind: String, ExpressibleByArgument, CaseIterable, Sendable {
    case fp32, bf16
}

/// Engine flags shared by the model commands: `--backend`, `--threads`, `--no-winograd`, `--precision`, `--verbose`.
struct EngineOptions: ParsableArguments {
    @Option(help: "Compute backend: dnnl (oneDNN, default) or reference (plain Swift, slow; for parity checks).")
    var backend: BackendKind = .dnnl

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Disable Winograd 3×3 convolutions (oneDNN direct convolution only; closer to PyTorch's numerics).")
    var noWinograd = false

    @Option(help: "Compute precision: fp32, or bf16 where the CPU has native bf16 (otherwise an error says it is unavailable).")
    var precision: PrecisionKind = .fp32

    @Flag(help: "Report engine decisions on stderr (e.g. a layer whose preferred convolution could not be built and fell back).")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024, got \(t)") }
    }

    /// Creates the chosen backend.
    func makeBackend() throws -> any Backend {
        switch backend {
        case .reference: return ReferenceBackend()
        case .dnnl:
            let be = try DNNLBackend(options: DNNLBackend.Options(threads: threads, winograd: !noWinograd,
                                                                  precision: precision == .bf16 ? .bf16 : .fp32))
            if verbose {
                be.diagnostics = { FileHandle.standardError.write(Data(("engine: " + $0 + "\n").utf8)) }
            }
            return be
        }
    }
}

/// `--max-memory SIZE` (12G, 512M, 1.5GiB; powers of 1024).
struct MemoryOption: ParsableArguments {
    @Option(name: .customLong("max-memory"), help: "Memory cap such as 2G or 512M: picks the tile size automatically so the run stays under it.")
    var maxMemory: String?

    /// The cap in bytes, or nil.
    func bytes() throws -> Int? {
        guard let m = maxMemory else { return nil }
        do { return try BatchOptions.parseMemorySize(m) } catch { throw ValidationError(error.description) }
    }
}

/// `--models-dir`: where models are looked up by name.
struct ModelsDirectoryOption: ParsableArguments {
    @Option(help: "Folder of model files (default: $ENHANCE_MODELS_DIR, else ~/.cache/enhance/models).")
    var modelsDir: String?

    /// Folders searched in order: the chosen models folder, then the offline assets ($ENHANCE_ASSETS or ./.cache/assets).
    func searchPath() -> [URL] {
        let env = ProcessInfo.processInfo.environment
        var dirs: [URL] = []
        if let d = modelsDir { dirs.append(URL(fileURLWithPath: (d as NSString).expandingTildeInPath)) }
        else if let d = env["ENHANCE_MODELS_DIR"], !d.isEmpty { dirs.append(URL(fileURLWithPath: (d as NSString).expandingTildeInPath)) }
        else { dirs.append(FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/enhance/models")) }
        if let a = env["ENHANCE_ASSETS"], !a.isEmpty { dirs.append(URL(fileURLWithPath: a)) }
        dirs.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".cache/assets"))
        return dirs
    }
}

/// Seconds elapsed since `start`.
func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// Peak resident set size of this process in bytes (Linux `VmHWM`), or nil.
func peakRSSBytes() -> Int? {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return nil
}
