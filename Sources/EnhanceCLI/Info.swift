import ArgumentParser
import BackendCUDA
import BackendDNNL
import EnhanceKit
import Foundation
import TensorCore

/// `enhance info`: what this build can do on this machine (engine, CPU features, precision).
struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the version, compute engine and CPU capabilities.")

    @Flag(help: "Print JSON.")
    var json = false

    /// Every GPU checked as `--device cuda:N` would start it (`CUDABackend.checkDevices`), or why CUDA is unavailable.
    static let gpus = Result { try CUDABackend.checkDevices() }

    /// The cuda device as JSON: available (cuda:0, what `--device cuda` and `auto` use, starts and its kernels build)
    /// with the device, compute capability and library versions, or why not; `gpus`: each GPU with its free memory,
    /// kernel target and problem.
    static func cudaObject() -> [String: Any] {
        let lib: CUDALibrary
        switch CUDALibrary.shared {
        case let .failure(e): return ["available": false, "reason": CUDABackend.reason(e)]
        case let .success(l): lib = l
        }
        var object: [String: Any] = ["driver": lib.driverVersion, "cudnn": lib.cudnnVersion,
                                     "nvrtc": "\(lib.nvrtcVersion.major).\(lib.nvrtcVersion.minor)"]
        switch gpus {
        case let .failure(e):
            object["available"] = false
            object["reason"] = CUDABackend.reason(e)
        case let .success(checks):
            // every GPU CUDA shows (after CUDA_VISIBLE_DEVICES), as `--device cuda:N` names them
            object["gpus"] = checks.map { c -> [String: Any] in
                var g: [String: Any] = ["device": "cuda:\(c.info.ordinal)", "name": c.info.name,
                                        "compute_capability": "\(c.info.computeCapability.major).\(c.info.computeCapability.minor)",
                                        "multiprocessors": c.info.multiprocessors, "memory_total_bytes": c.info.totalMemoryBytes,
                                        "pci_bus_id": c.info.pciBusId ?? "unknown", "usable": c.problem == nil]
                g["memory_free_bytes"] = c.freeMemoryBytes
                g["kernels"] = c.kernels
                g["problem"] = c.problem
                return g
            }
            guard let d = checks.first else {
                object["available"] = false
                object["reason"] = "the driver shows no GPU"
                return object
            }
            object["available"] = d.problem == nil
            object["reason"] = d.reason
            object["device"] = d.info.name
            object["compute_capability"] = "\(d.info.computeCapability.major).\(d.info.computeCapability.minor)"
            object["multiprocessors"] = d.info.multiprocessors
            object["memory_total_bytes"] = d.info.totalMemoryBytes
        }
        return object
    }

    /// The `gpus:` line: each GPU with its architecture, memory (total, free once its context started) and
    /// kernel target, or what keeps it from being used; nil when CUDA shows none.
    static func gpuLine() -> String? {
        guard case let .success(checks) = gpus, !checks.isEmpty else { return nil }
        return checks.map { c in
            let d = c.info
            let free = c.freeMemoryBytes.map { ", \($0 >> 20) MiB free" } ?? ""
            let state = c.problem.map { ": \($0)" } ?? ", kernels \(c.kernels ?? "?")"
            return "cuda:\(d.ordinal) \(d.name) (\(d.architecture), \(d.multiprocessors) SMs, \(d.totalMemoryBytes >> 20) MiB\(free))\(state)"
        }.joined(separator: "; ")
    }

    /// The devices line: cuda is unavailable as well when cuda:0 is listed but will not start or its kernels cannot
    /// be built for it.
    static func devicesLine() -> String {
        ModelFactory.devices.map { d in
            if d.device == .cuda, case let .success(checks) = gpus, let reason = checks.first?.reason {
                return "cuda (unavailable: \(reason))"
            }
            return "\(d.device.rawValue) (\(d.available ? "" : "unavailable: ")\(d.detail))"
        }.joined(separator: "; ")
    }

    func run() throws {
        let backend = try DNNLBackend()
        let flags = CPUInfo.flags
        let features = ["avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"].filter { flags.contains($0) }
        let bf16: String
        if let why = DNNLBackend.bf16Unavailable(emulation: false) {
            bf16 = DNNLBackend.bf16Unavailable(emulation: true) == nil && DNNLBackend.Options().bf16Emulation
                ? "emulated (ENHANCE_BF16_EMULATION=1; slower than fp32)" : why
        } else {
            bf16 = "available (--precision bf16)"
        }
        let info: [String: String] = [
            "version": Enhance.version,
            "engine": backend.name,
            "cpu": CPUInfo.model,
            "isa": CPUInfo.isa + (CPUInfo.isaCap.map { " (capped by MAX_CPU_ISA=\($0))" } ?? ""),
            "activation_layout": "\(backend.blockedLayout)",
            "cpu_features": features.joined(separator: " "),
            "bf16": bf16,
            "codecs": "PNG (libpng), JPEG (TurboJPEG), WebP (libwebp)",
            "huge_pages": HugePages.summary,
            "devices": Self.devicesLine(),
        ]
        if json {
            var object: [String: Any] = info
            object["cuda"] = Self.cudaObject()
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            var lines = info
            lines["gpus"] = Self.gpuLine()
            for k in ["version", "engine", "devices", "gpus", "cpu", "isa", "activation_layout", "cpu_features", "bf16", "codecs", "huge_pages"] {
                guard let v = lines[k] else { continue }
                print("\(k):".padding(toLength: 19, withPad: " ", startingAt: 0) + v)
            }
        }
    }
}
