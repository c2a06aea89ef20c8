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

    /// The cuda device as JSON: available with device, compute capability and library versions, or why not.
    static func cudaObject() -> [String: Any] {
        let lib: CUDALibrary
        switch CUDALibrary.shared {
        case let .failure(e): return ["available": false, "reason": CUDABackend.reason(e)]
        case let .success(l): lib = l
        }
        do {
            let d = try lib.device(0)
            // every GPU CUDA shows (after CUDA_VISIBLE_DEVICES), as `--device cuda:N` names them
            let all = try ([d] + (1..<lib.deviceCount()).map { try lib.device($0) }).map { g -> [String: Any] in
                ["device": "cuda:\(g.ordinal)", "name": g.name, "compute_capability": "\(g.computeCapability.major).\(g.computeCapability.minor)",
                 "memory_total_bytes": g.totalMemoryBytes, "pci_bus_id": g.pciBusId ?? "unknown"]
            }
            return ["available": true, "device": d.name, "compute_capability": "\(d.computeCapability.major).\(d.computeCapability.minor)",
                    "multiprocessors": d.multiprocessors, "memory_total_bytes": d.totalMemoryBytes, "gpus": all,
                    "driver": lib.driverVersion, "cudnn": lib.cudnnVersion, "nvrtc": "\(lib.nvrtcVersion.major).\(lib.nvrtcVersion.minor)"]
        } catch {
            return ["available": false, "reason": CUDABackend.reason(error), "driver": lib.driverVersion, "cudnn": lib.cudnnVersion,
                    "nvrtc": "\(lib.nvrtcVersion.major).\(lib.nvrtcVersion.minor)"]
        }
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
            "devices": ModelFactory.devices.map { "\($0.device.rawValue) (\($0.available ? "" : "unavailable: ")\($0.detail))" }.joined(separator: "; "),
        ]
        if json {
            var object: [String: Any] = info
            object["cuda"] = Self.cudaObject()
            let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            for k in ["version", "engine", "devices", "cpu", "isa", "activation_layout", "cpu_features", "bf16", "codecs", "huge_pages"] {
                print("\(k):".padding(toLength: 19, withPad: " ", startingAt: 0) + (info[k] ?? ""))
            }
        }
    }
}
