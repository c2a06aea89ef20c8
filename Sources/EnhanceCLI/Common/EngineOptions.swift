import ArgumentParser
import BackendCUDA
import BackendDNNL
import EnhanceKit
import Foundation
import Models
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
    case fp32, tf32, fp16, bf16
}

extension EngineConfiguration.Device: ExpressibleByArgument {}

/// `--device auto|cpu|reference|cuda|cuda:N|cuda:N,M,…` (N: the CUDA ordinal of a GPU, as Real-ESRGAN's
/// `--gpu-id`; several: a folder's images spread over those GPUs, as realesrgan-ncnn-vulkan's `-g 0,1`).
struct DeviceArgument: ExpressibleByArgument, Sendable, Equatable {
    let device: EngineConfiguration.Device
    /// The GPUs named (one for everything but `cuda:N,M,…`).
    let ordinals: [Int]
    var ordinal: Int { ordinals[0] }

    init?(argument: String) {
        let parts = argument.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).map(String.init)
        guard let d = EngineConfiguration.Device(rawValue: parts[0]) else { return nil }
        if parts.count == 2 {
            let list = parts[1].split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
            guard d == .cuda, !list.isEmpty, list.allSatisfy({ $0.map { (0...63).contains($0) } ?? false }) else { return nil }
            let ordinals = list.map { $0! }
            guard Set(ordinals).count == ordinals.count else { return nil }
            self.ordinals = ordinals
        } else {
            ordinals = [0]
        }
        device = d
    }

    static var allValueStrings: [String] { EngineConfiguration.Device.allCases.map(\.rawValue) + ["cuda:N", "cuda:N,M"] }
    var defaultValueDescription: String {
        device == .cuda && ordinals != [0] ? "cuda:" + ordinals.map(String.init).joined(separator: ",") : device.rawValue
    }
}
extension EngineConfiguration.Layout: ExpressibleByArgument {}

/// `-g/--gpu-id`: a GPU ordinal (`0`), a list (`0,1`) or `-1` for the CPU, as Real-ESRGAN and realesrgan-ncnn-vulkan
/// spell it; the same devices as `--device cuda:N` / `cuda:N,M` / `cpu`.
struct GPUIDArgument: ExpressibleByArgument, Sendable {
    let device: DeviceArgument

    init?(argument: String) {
        guard let d = DeviceArgument(argument: argument == "-1" ? "cpu" : "cuda:" + argument) else { return nil }
        device = d
    }
}

/// Engine flags shared by the model commands: `--device`, `--backend`, `--threads`, `--no-winograd`, `--precision`,
/// `--verbose`.
struct EngineOptions: ParsableArguments {
    @Option(help: "Compute device: auto (default: cuda when an NVIDIA GPU with the driver, cuDNN 9 and NVRTC 13 can be used here, else cpu), cpu (oneDNN), reference (plain Swift, slow; for parity checks), cuda (the first GPU), cuda:N (GPU N in CUDA's order after CUDA_VISIBLE_DEVICES; `enhance info` lists them) or, for upscale, restore and chain, cuda:N,M,… (the models on each of those GPUs, the images spread over them). `enhance info` says why a device is unavailable; cuDNN/NVRTC are looked up in ENHANCE_CUDA_LIBS (colon-separated folders, e.g. a PyTorch venv's site-packages/nvidia/{cudnn,cu13}/lib), then system folders.")
    var device: DeviceArgument?

    @Option(name: [.customShort("g"), .customLong("gpu-id")], parsing: .unconditional,
            help: "Real-ESRGAN's -g/--gpu-id and realesrgan-ncnn-vulkan's -g: N is --device cuda:N, N,M,… is cuda:N,M,…, -1 is the CPU.")
    var gpuID: GPUIDArgument?

    @Option(help: "Older spelling of --device: dnnl (= cpu) or reference.")
    var backend: BackendKind?

    @Option(help: "Compute threads (default: all cores).")
    var threads: Int?

    @Flag(help: "Disable Winograd 3×3 convolutions (oneDNN direct convolution only; closer to PyTorch's numerics).")
    var noWinograd = false

    @Option(help: "Compute precision: fp32 (default; on cuda with TF32 off), tf32 (cuda: TF32 tensor cores in convolutions, PyTorch's default), fp16 (cuda: half storage, float accumulation), bf16 (cpu: bf16 convolution inputs and weights, f32 accumulation, every other op in f32; needs avx512_bf16 or AMX, e.g. AMD Zen 4 or Intel Sapphire Rapids; on other AVX-512 CPUs ENHANCE_BF16_EMULATION=1 runs oneDNN's slower emulation for accuracy checks).")
    var precision: PrecisionKind = .fp32

    @Flag(help: "Real-ESRGAN's --fp32 (its GPU default is fp16): compute in fp32, which is already the default here.")
    var fp32 = false

    @Flag(help: "cuda: time cuDNN's convolution algorithms once per shape and keep the fastest (PyTorch's cudnn.benchmark=True); default: cuDNN's heuristics.")
    var cudnnBenchmark = false

    @Option(help: "cuda: activation layout, nchw (default, PyTorch's) or nhwc (PyTorch's channels_last; cuDNN's tensor-core kernels read it without transposing, filters stored KRSC). The CPU picks oneDNN's blocked layout itself.")
    var layout: EngineConfiguration.Layout = .nchw

    @Flag(help: "cuda: record each network's forward once per input shape into a CUDA graph (after one eager forward of that shape) and replay it from then on — PyTorch's CUDA graphs, the study's \"compile\" knob. upscale: per tile shape; restore: GPEN and the parser (RetinaFace stays eager); forward: the timed runs. Each recording keeps one forward's activations for the rest of the run.")
    var cudaGraph = false

    @Flag(help: "Report engine decisions on stderr (e.g. a layer whose preferred convolution could not be built and fell back).")
    var verbose = false

    func validate() throws {
        if let t = threads, t < 1 || t > 1024 { throw ValidationError("--threads must be between 1 and 1024, got \(t)") }
        if [device != nil, gpuID != nil, backend != nil].filter({ $0 }).count > 1 {
            throw ValidationError("give one of --device, -g/--gpu-id and --backend")
        }
        if fp32 && precision != .fp32 { throw ValidationError("--fp32 and --precision \(precision.rawValue) contradict each other") }
    }

    /// `--device`, or what `-g/--gpu-id` names.
    var chosenDevice: DeviceArgument? { device ?? gpuID?.device }

    /// One configuration per GPU of `--device cuda:N,M,…` (else just `configuration`).
    var configurations: [EngineConfiguration] {
        (chosenDevice?.ordinals ?? [0]).map { n in var c = configuration; c.deviceOrdinal = n; return c }
    }

    /// Commands that run on one device refuse a list of GPUs (usage error).
    func requireOneDevice(_ command: String) throws {
        if let d = chosenDevice, d.ordinals.count > 1 {
            throw ValidationError("--device \(d.defaultValueDescription): \(command) runs on one GPU (upscale, restore and chain spread a folder over several); give cuda:N")
        }
    }

    /// The typed engine configuration (with `--verbose`, engine decisions go to stderr).
    var configuration: EngineConfiguration {
        var e = EngineConfiguration()
        e.device = chosenDevice?.device ?? (backend == .reference ? .reference : backend == .dnnl ? .cpu : .auto)
        e.deviceOrdinal = chosenDevice?.ordinal ?? 0
        e.threads = threads
        e.winograd = !noWinograd
        e.precision = EngineConfiguration.Precision(rawValue: precision.rawValue) ?? .fp32
        e.cudnnBenchmark = cudnnBenchmark
        e.layout = layout
        if verbose { e.diagnostics = { FileHandle.standardError.write(Data(("engine: " + $0 + "\n").utf8)) } }
        e.warnings = { FileHandle.standardError.write(Data(("enhance: " + $0 + "\n").utf8)) }
        return e
    }

    /// `--cuda-graph`: turns on recording and replay in `replays` (engine decisions to stderr with `--verbose`); where
    /// the backend cannot record, one line on stderr and exit status 69, like an unavailable device. `--image-batch`:
    /// runs of up to `imageBatch` images merge.
    func enableGraphReplay(_ command: String, _ replays: [ReplayedForward], imageBatch: Int = 1) throws {
        for r in replays { r.mergeLimit = imageBatch }
        guard cudaGraph else { return }
        let diagnostics = configuration.diagnostics
        do {
            for r in replays {
                try r.enableCapture()
                r.diagnostics = diagnostics
            }
        } catch let TensorError.unsupported(_, m) {
            FileHandle.standardError.write(Data("enhance \(command): --cuda-graph: \(m)\n".utf8))
            throw ExitCode(69)
        }
    }

    /// The processors of a batch command: one on each device `--device` names (one, or every GPU of `cuda:N,M,…`),
    /// each made by `make` (told whether to say what it loads: the first only) with its forwards set up for
    /// `--cuda-graph` / `--image-batch`; with `--precision fp16` each with its fp32 fallback for overflowing images,
    /// made by the same `make` on an fp32 backend of the same GPU when one of its images first needs it.
    func processors<P: BatchProcessor>(_ command: String, imageBatch: Int, replays: (P) -> [ReplayedForward],
                                       _ make: @escaping @Sendable (_ backend: any Backend, _ say: Bool) throws -> P) throws
        -> DeviceProcessors<P> {
        var members: [(name: String, processor: FallbackProcessor<P>)] = [], forwards: [ReplayedForward] = [], names: [String] = []
        let diagnostics = configuration.diagnostics
        for c in configurations {
            let (backend, p) = try load(c, say: members.isEmpty, make)
            try enableGraphReplay(command, replays(p), imageBatch: imageBatch)
            let name = c.device == .cuda ? "cuda:\(c.deviceOrdinal)" : backend.name
            var fallbacks: [FallbackProcessor<P>.Fallback] = []
            if let twin = c.overflowFallback {
                let at = twin.device == .cuda ? "cuda:\(twin.deviceOrdinal)" : name   // where the fallback computes
                fallbacks.append(.overflow(name: EngineConfiguration.overflowFallbackName) { @Sendable () throws -> P in
                    let f = try make(try ModelFactory.makeBackend(twin), false)
                    diagnostics?("\(at): \(EngineConfiguration.overflowFallbackName) fallback models loaded")
                    return f
                })
            }
            if let cpu = ModelFactory.cpuFallback(c, for: backend) {
                // auto: an image the GPU cannot hold even with the smallest tile or one face per pass (other processes
                // fill it) is computed on the CPU, whose models load when one first needs them
                let gpu = "cuda:\(c.deviceOrdinal)"
                fallbacks.append(.onTheCPU(from: gpu) { @Sendable () throws -> P in
                    let f = try make(try ModelFactory.makeBackend(cpu), false)
                    diagnostics?("\(gpu): CPU fallback models loaded (--device auto)")
                    return f
                })
            }
            members.append((name, FallbackProcessor(p, fallbacks: fallbacks)))
            forwards += replays(p)
            names.append(backend.name)
        }
        return DeviceProcessors(pool: DevicePoolProcessor(members), replays: forwards, backends: names)
    }

    /// The backend `c` asks for and `make`'s processor on it. With `--device auto`, models that do not fit the GPU's
    /// free memory (other processes hold it, or the card is small) load on the CPU instead, said once on stderr — as
    /// a GPU that will not start does (`ModelFactory.makeBackend`); `--device cuda` keeps the error.
    private func load<P>(_ c: EngineConfiguration, say: Bool, _ make: (_ backend: any Backend, _ say: Bool) throws -> P) throws
        -> (any Backend, P) {
        let backend = try makeBackend(c)
        do {
            return (backend, try make(backend, say))
        } catch let e as TensorError where e.isAllocationFailure {
            guard let cpu = ModelFactory.cpuFallback(c, for: backend) else { throw e }
            c.warnings?("--device auto: the models do not fit cuda:\(c.deviceOrdinal) (\(e)); running on the CPU")
            let b = try makeBackend(cpu)
            return (b, try make(b, say))
        }
    }

    /// Creates the chosen backend. A device this build or machine cannot provide is one line on stderr and exit
    /// status 69 (EX_UNAVAILABLE), whichever command asked.
    func makeBackend(_ c: EngineConfiguration? = nil) throws -> any Backend {
        do { return try ModelFactory.makeBackend(c ?? configuration) }
        catch let e as EnhanceError where e.category == .unsupported {
            FileHandle.standardError.write(Data("enhance: \(e.message)\n".utf8))
            throw ExitCode(69)
        }
    }
}

/// The first value offered from builder closures that may run on several threads (the first device's loaded model).
final class FirstValue<T: Sendable>: @unchecked Sendable {
    // SAFETY: `stored` is read and written under `lock`.
    private let lock = NSLock()
    private var stored: T?

    func offer(_ v: T) { lock.withLock { if stored == nil { stored = v } } }
    var value: T? { lock.withLock { stored } }
}

/// A byte size on the command line (`2G`, `512M`, `1.5GiB`; powers of 1024), parsed by `ByteSize`.
struct ByteSizeArgument: ExpressibleByArgument, Sendable {
    let bytes: Int64
    let text: String
    init?(argument: String) {
        guard let b = try? ByteSize.parse(argument) else { return nil }
        bytes = b; text = argument
    }
    var defaultValueDescription: String { text }
}

/// A duration such as 120s, 2m or 1h (a bare number is seconds).
struct DurationArgument: ExpressibleByArgument, Sendable {
    let seconds: Double
    let text: String
    init?(argument: String) {
        guard let s = Self.seconds(argument, defaultUnit: 1) else { return nil }
        seconds = s; text = argument
    }
    var defaultValueDescription: String { text }

    /// Seconds of `text` (h, m or s suffix; `defaultUnit` seconds per unit without one); nil when it does not parse.
    static func seconds(_ text: String, defaultUnit: Double) -> Double? {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("h", 3600), ("m", 60), ("s", 1)]
        let (body, unit) = units.first { t.hasSuffix($0.0) }.map { (String(t.dropLast()), $0.1) } ?? (t, defaultUnit)
        guard let v = Double(body), v >= 0, v.isFinite else { return nil }
        return v * unit
    }
}

/// A batch command's processors on its devices (`EngineOptions.processors`).
struct DeviceProcessors<P: BatchProcessor> {
    /// One member per device, each image to the least busy; with `--precision fp16` an image whose run overflows is
    /// computed again in fp32 on the same device.
    let pool: DevicePoolProcessor<FallbackProcessor<P>>
    /// Every member's forwards (merge counts).
    let replays: [ReplayedForward]
    /// The backends' names, in device order.
    let backends: [String]

    /// The first device's processor.
    var first: P { pool.members[0].processor.primary }

    /// Images computed again by each fallback (by name, with why), over every device, in first-seen order.
    var fallbackCounts: [(name: String, why: String, images: Int)] {
        var out: [(name: String, why: String, images: Int)] = []
        for m in pool.members {
            for (f, n) in m.processor.fallbackCounts where n > 0 {
                if let i = out.firstIndex(where: { $0.name == f.name }) { out[i].images += n } else { out.append((f.name, f.why, n)) }
            }
        }
        return out
    }
}

/// `--max-memory SIZE` (12G, 512M, 1.5GiB; powers of 1024).
struct MemoryOption: ParsableArguments {
    @Option(name: .customLong("max-memory"), help: "Memory cap such as 2G or 512M: picks the tile size automatically so the run stays under it.")
    var maxMemory: ByteSizeArgument?

    /// The cap in bytes, or nil.
    func bytes() throws -> Int? { maxMemory.map { Int($0.bytes) } }
}

/// `--models-dir` and `--download`: where models are looked up by name, and fetching missing ones first.
struct ModelsDirectoryOption: ParsableArguments {
    @Option(help: "Folder of model files (default: $ENHANCE_MODELS_DIR, else $XDG_CACHE_HOME/enhance/models, else ~/.cache/enhance/models).")
    var modelsDir: String?

    @Flag(help: "Fetch a named model that is not installed from its official location first (as `enhance models fetch NAME`).")
    var download = false

    /// The folder models are fetched into.
    var store: ModelStore { ModelStore(path: modelsDir) }

    /// Finds weights in `searchPath()`.
    var locator: ModelLocator { ModelLocator(dirs: searchPath()) }
    /// Builds models from typed configurations, finding weights in `searchPath()`.
    var factory: ModelFactory { ModelFactory(locator: locator) }

    /// Folders searched in order: the chosen models folder, then the offline assets ($ENHANCE_ASSETS or ./.cache/assets).
    func searchPath() -> [URL] {
        let env = ProcessInfo.processInfo.environment
        var dirs = [store.directory]
        if let a = env["ENHANCE_ASSETS"], !a.isEmpty { dirs.append(URL(fileURLWithPath: a)) }
        dirs.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".cache/assets"))
        return dirs
    }

    /// With `--download`: fetches each of `names` that is a known model, is not a file and is found in no search
    /// folder (progress on stderr); without it, nothing.
    func fetchMissing(_ names: [String], log: (String) -> Void) async throws {
        guard download else { return }
        let fetcher = ModelFetcher(store: store, mirror: ProcessInfo.processInfo.environment["ENHANCE_MODELS_MIRROR"])
        for name in names {
            let expanded = (name as NSString).expandingTildeInPath
            guard !FileManager.default.fileExists(atPath: expanded), let entry = ModelCatalog.entry(named: name),
                  locator.find(entry.name, ncnn: RealESRGANModelZoo.info(named: entry.name)?.ncnnName) == nil else { continue }
            log("fetching \(entry.name) into \(store.directory.path)")
            let bar = ProgressBar()
            defer { bar.finish() }
            _ = try await fetcher.fetch(entry, progress: bar.callback(entry.name))
        }
    }
}
