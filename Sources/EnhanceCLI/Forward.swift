import ArgumentParser
import BackendCUDA
import Checkpoint
import EnhanceKit
import Foundation
import Pipeline
import Models
import TensorCore

/// Raw-network runners of `enhance forward`, one per architecture key.
///
/// To add an architecture, add a closure to `runners` that builds the network from the loaded checkpoint on
/// `backend` and returns its forward: on device tensors when the network stays on the device (`ForwardNetwork(device:)`:
/// uploaded input → named device outputs), else input (float32 **N, C, H, W**) uploaded, run, outputs downloaded,
/// named by file stem (each becomes `<stem>.npy`, float32).
enum ForwardRegistry {
    /// One forward of a built network: input → named outputs.
    typealias Forward = (_ input: HostTensor) throws -> [(name: String, tensor: HostTensor)]
    /// Builds a network: (checkpoint, detected architecture, backend) → its forward.
    typealias Runner = @Sendable (_ checkpoint: LoadedCheckpoint, _ architecture: DetectedArchitecture,
                                  _ backend: any Backend) throws -> ForwardNetwork

    /// Architecture keys accepted by `--arch` (besides `auto`).
    static let keys = ["rrdbnet", "srvgg", "gpen", "retinaface", "parsenet"]

    static let runners: [String: Runner] = [
        "rrdbnet": superResolution,
        "srvgg": superResolution,
        "gpen": FaceForwardRunners.gpen,
        "retinaface": FaceForwardRunners.retinaFace,
        "parsenet": FaceForwardRunners.parseNet,
    ]

    /// The `--arch` key of a detected architecture.
    static func key(of arch: DetectedArchitecture) -> String? {
        switch arch {
        case .rrdbNet: "rrdbnet"
        case .srvggNet: "srvgg"
        case .gpen: "gpen"
        case .retinaFace: "retinaface"
        case .parseNet: "parsenet"
        case .unrecognised: nil
        }
    }

    static let superResolution: Runner = { ckpt, arch, backend in
        let net = try RealESRGANLoader.network(arch, weights: ckpt.stateDict, backend: backend, file: ckpt.path)
        return ForwardNetwork(backend: backend) { x in [("output", try net.forward(x))] }
    }
}

/// A built network as `enhance forward` runs it.
struct ForwardNetwork {
    /// Uploaded input → named device outputs; nil when the forward ends on the host (RetinaFace decodes there), which
    /// rules out `--cuda-graph`.
    let device: ((Tensor) throws -> [(name: String, tensor: Tensor)])?
    /// Host input → named host outputs (upload, forward, download).
    let host: ForwardRegistry.Forward

    /// A network that stays on the device: its host forward uploads, runs and downloads.
    init(backend: any Backend, device: @escaping (Tensor) throws -> [(name: String, tensor: Tensor)]) {
        self.device = device
        host = { input in try device(backend.upload(input)).map { ($0.name, try backend.download($0.tensor)) } }
    }

    /// A network whose forward ends on the host.
    init(host: @escaping ForwardRegistry.Forward) {
        device = nil
        self.host = host
    }
}

/// `enhance forward`: the raw network on a float32 NCHW `.npy`, for parity checks against PyTorch.
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run a raw network on a float32 NCHW .npy and write its outputs as .npy (parity checks).",
        discussion: "Writes one float32 .npy per network output into the output folder (output.npy for RRDBNet and SRVGGNetCompact).")

    @Option(help: "Weights file (.pth, .safetensors or ncnn .param).")
    var weights: String

    @Option(help: "Architecture: auto (detected from the keys), rrdbnet, srvgg, gpen, retinaface or parsenet.")
    var arch: String = "auto"

    @Option(help: "Input .npy: float32, N×C×H×W.")
    var input: String

    @Option(help: "Output folder (created if missing).")
    var output: String

    @OptionGroup var engine: EngineOptions

    @Option(help: "Untimed forwards before the timed ones (warm-up: plans, algorithm choice, kernel caches).")
    var warmup = 0

    @Option(help: "Timed forwards (the outputs of the last are written).")
    var runs = 1

    @Option(help: "Write a JSON report: device, backend, precision, seconds per run (whole forward incl. upload and download), median/p95, memory after the warm-up (weights, live peak, workspace, allocated peak = live peak + weights + workspace, reserved peak = the activation pool's high-water mark + weights + workspace).")
    var report: String?

    @Flag(help: "After the timed runs, one more forward (eager, also with --cuda-graph) with every op timed on the device — CUDA events around each kernel, cuDNN call and copy; the host clock around each oneDNN primitive and loop of the CPU backend's own — and a table of where its time went (in --report too, under \"profile\").")
    var profile = false

    func validate() throws {
        try engine.requireOneDevice("forward")
        guard warmup >= 0, runs >= 1 else { throw ValidationError("--warmup must be ≥ 0 and --runs ≥ 1") }
        guard arch == "auto" || ForwardRegistry.keys.contains(arch) else {
            throw ValidationError("--arch must be auto or one of \(ForwardRegistry.keys.joined(separator: ", ")), got '\(arch)'")
        }
    }

    func run() throws {
        do {
            try execute()
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("enhance forward: \(error)\n".utf8))
            throw ExitCode(isDeviceLoss(error) ? 69 : 1)   // a lost GPU: unavailable, as for the batch commands
        }
    }

    func execute() throws {
        let inURL = URL(fileURLWithPath: input)
        let npy: NPYArray
        do { npy = try NPYArray(contentsOf: inURL) } catch { throw CommandError("\(input): \(error)") }
        guard npy.dtype == .float32 else { throw CommandError("\(input): expected float32, got \(npy.dtype.rawValue)") }
        guard npy.shape.count == 4 else { throw CommandError("\(input): expected an N×C×H×W array, got shape \(npy.shape)") }
        let host = try HostTensor(shape: npy.shape, data: npy.floats())
        let ckpt = try CheckpointLoader.load(URL(fileURLWithPath: weights))
        let detected = ArchitectureDetector.detect(ckpt.stateDict)
        let key: String
        if arch == "auto" {
            guard let k = ForwardRegistry.key(of: detected) else {
                throw CommandError("\(weights): architecture not recognised (first keys: \(ckpt.stateDict.keys.prefix(5).joined(separator: ", "))); pass --arch")
            }
            key = k
        } else {
            key = arch
            if let k = ForwardRegistry.key(of: detected), k != key {
                throw CommandError("\(weights): --arch \(arch) but the file holds a \(detected.name) network")
            }
        }
        guard let runner = ForwardRegistry.runners[key] else { throw CommandError("--arch \(key): no runner") }
        let c = engine.configuration
        let backend = try engine.makeBackend()
        do {
            try measure(runner, ckpt, detected, key, input: host, on: backend)
        } catch let e as TensorError where e.isAllocationFailure {
            // auto: a network (weights, or activations at this input size) that does not fit the GPU's free memory
            // runs on the CPU, as upscale, restore and chain do; nothing was written yet (outputs and report come
            // after the timed runs)
            guard let cpu = ModelFactory.cpuFallback(c, for: backend) else { throw e }
            c.warnings?("--device auto: \(detected.name) at \(npy.shape.map(String.init).joined(separator: "×")) does not fit cuda:\(c.deviceOrdinal) (\(e)); running on the CPU")
            try measure(runner, ckpt, detected, key, input: host, on: try engine.makeBackend(cpu))
        }
    }

    /// Builds the network on `backend`, runs the warm-up and the timed forwards, writes the outputs and the report,
    /// then profiles one more forward when asked.
    private func measure(_ runner: ForwardRegistry.Runner, _ ckpt: LoadedCheckpoint, _ detected: DetectedArchitecture,
                         _ key: String, input host: HostTensor, on backend: any Backend) throws {
        let network = try runner(ckpt, detected, backend)
        var forward = network.host
        var outputs: [(name: String, tensor: HostTensor)] = []
        for _ in 0..<warmup { outputs = try forward(host) }
        var graph: CUDAGraph?
        if engine.cudaGraph {
            guard let cuda = backend as? CUDABackend else {
                throw CommandError("--cuda-graph needs the cuda device (this run is on \(backend.name))")
            }
            guard let device = network.device else {
                throw CommandError("--cuda-graph: the \(key) forward ends on the host (decoding), so it cannot be captured; give rrdbnet, srvgg, gpen or parsenet")
            }
            // The capture records work, it does not plan it: plans, workspace, constants and buffers come from an
            // eager forward on the same shape first.
            if warmup == 0 { outputs = try forward(host) }
            var names: [String] = []
            let g = try cuda.captureGraph(input: host) { x in
                let named = try device(x)
                names = named.map(\.name)
                return named.map(\.tensor)
            }
            graph = g
            forward = { input in Array(zip(names, try g.run(input))) }
        }
        backend.resetPeak()
        var times: [Double] = []
        for _ in 0..<runs {
            let start = ContinuousClock.now
            outputs = try forward(host)
            times.append(secondsSince(start))
        }
        let seconds = times.last ?? 0
        let memory = backend.memoryStats
        let dir = URL(fileURLWithPath: output)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, t) in outputs {
            let url = dir.appendingPathComponent("\(name).npy")
            try NPYArray(shape: t.shape, floats: t.data).write(to: url)
            print("\(url.path): \(t.shape.map(String.init).joined(separator: "×")) float32")
        }
        print(String(format: "%@ on %@: %.3f s%@", detected.name, backend.name, seconds,
                     times.count > 1 ? String(format: " (last of %d; median %.3f s)", times.count, times.sorted()[times.count / 2]) : ""))
        func writeReport(profile: Result<(profile: OpProfile, wall: Double), Error>?) throws {
            guard let report else { return }
            try self.writeReport(report, backend: backend, key: key, input: host.shape, times: times, graph: graph != nil, memory: memory, profile: profile)
        }
        // The outputs and the timed runs' report are written before the profiled forward: scripts/device keeps a row
        // whose profile took the process down.
        try writeReport(profile: nil)
        if profile {
            guard try backend.startProfile() else { throw CommandError("--profile: \(backend.name) cannot time its ops") }
            // A profile that fails (an event the driver refuses) is said and reported, and the run still succeeds
            // with its timings; a lost device is not a profiling matter.
            let measured: Result<(profile: OpProfile, wall: Double), Error>
            do {
                let start = ContinuousClock.now
                _ = try network.host(host)
                let wall = secondsSince(start)
                guard let p = try backend.finishProfile() else { throw CommandError("no profile came back") }
                measured = .success((p, wall))
                ProfileTable.lines(p, wall: wall).forEach { print($0) }
            } catch where !isDeviceLoss(error) {
                _ = try? backend.finishProfile()
                FileHandle.standardError.write(Data("enhance forward: --profile failed (the timed runs stand): \(error)\n".utf8))
                measured = .failure(error)
            }
            try writeReport(profile: measured)
        }
        withExtendedLifetime(graph) {}
    }

    /// The `--report` JSON (the contract scripts/device reads). Each run is the input upload, the forward and the
    /// download (the network is built once, before the warm-up).
    func writeReport(_ path: String, backend: any Backend, key: String, input: [Int], times: [Double], graph: Bool,
                     memory m: MemoryStats, profile: Result<(profile: OpProfile, wall: Double), Error>?) throws {
        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let p95 = sorted[min(sorted.count - 1, Int((Double(sorted.count) * 0.95).rounded(.up)) - 1)]
        var diagnostics: [String] = []
        if let cuda = backend as? CUDABackend { diagnostics = cuda.planNotes }
        let object: [String: Any] = [
            "device": backend is CUDABackend ? "cuda" + (engine.configuration.deviceOrdinal > 0 ? ":\(engine.configuration.deviceOrdinal)" : "")
                : engine.configuration.device == .auto ? "cpu" : engine.configuration.device.rawValue,
            "backend": backend.name, "precision": engine.precision.rawValue, "arch": key, "input_shape": input,
            "warmup": warmup, "runs": times.count, "seconds": times, "median_s": median, "p95_s": p95, "cuda_graph": graph,
            "layout": (backend as? CUDABackend)?.options.layout.rawValue ?? "native",
            // reserved, like PyTorch's max_memory_reserved: everything the engine holds — the activation pool's
            // high-water mark (cached free buffers included), the weights and the workspace
            "memory": ["weight_bytes": m.weightBytes, "live_peak_bytes": m.peakLiveBytes,
                       "reserved_peak_bytes": m.reservedPeakBytes,
                       "activation_reserved_peak_bytes": m.peakReservedBytes,
                       "workspace_peak_bytes": m.workspaceBytes, "allocated_peak_bytes": m.allocatedPeakBytes],
            "diagnostics": diagnostics,
        ].merging(profile.map { r in
            switch r {
            case let .success(p): ["profile": ProfileTable.json(p.profile, wall: p.wall)]
            case let .failure(e): ["profile": ["error": "\(e)"]]
            }
        } ?? [:]) { a, _ in a }
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        let url = URL(fileURLWithPath: path)
        let tmp = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        try data.write(to: tmp)
        guard rename(tmp.path, url.path) == 0 else { throw CommandError("\(path): cannot write the report (rename failed)") }
    }
}

/// `forward --profile`'s table and JSON.
enum ProfileTable {
    /// Rows shown in the terminal (the report has them all).
    static let shown = 20

    static func lines(_ p: OpProfile, wall: Double) -> [String] {
        let busy = p.busySeconds
        func ms(_ s: Double) -> String { String(format: "%9.3f", s * 1000) }
        func share(_ s: Double) -> String { busy > 0 ? String(format: "%5.1f %%", 100 * s / busy) : "    –" }
        var out = ["profile of one more forward (\(p.clock)):",
                   "        ms   share   calls  op"]
        for e in p.entries.prefix(shown) {
            out.append("\(ms(e.seconds))  \(share(e.seconds))  \(String(format: "%6d", e.calls))  \(e.name)")
        }
        if p.entries.count > shown {
            let rest = p.entries.dropFirst(shown)
            let s = rest.reduce(0) { $0 + $1.seconds }, c = rest.reduce(0) { $0 + $1.calls }
            out.append("\(ms(s))  \(share(s))  \(String(format: "%6d", c))  (\(rest.count) more rows: --report has them)")
        }
        let kinds = OpProfile.Kind.allCases.map { "\($0.rawValue) \(String(format: "%.3f", p.seconds(of: $0) * 1000)) ms" }
        out.append("timed ops \(String(format: "%.3f", busy * 1000)) ms (\(kinds.joined(separator: ", "))) of \(String(format: "%.3f", wall * 1000)) ms wall; not in any op: \(String(format: "%.3f", max(0, wall - busy) * 1000)) ms")
        return out
    }

    static func json(_ p: OpProfile, wall: Double) -> [String: Any] {
        [
            "clock": p.clock, "wall_s": wall, "timed_s": p.busySeconds,
            "by_kind": Dictionary(uniqueKeysWithValues: OpProfile.Kind.allCases.map { ($0.rawValue, p.seconds(of: $0)) }),
            "entries": p.entries.map { ["kind": $0.kind.rawValue, "name": $0.name, "calls": $0.calls, "seconds": $0.seconds] as [String: Any] },
        ]
    }
}
