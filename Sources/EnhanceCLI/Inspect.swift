import ArgumentParser
import Checkpoint
import Foundation

/// `enhance inspect FILE [--json]`: what a checkpoint holds and which network it is.
struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a checkpoint (.pth, .pt, .safetensors, ncnn .param/.bin): format, tensors, architecture.")

    @Argument(help: "The checkpoint file (for ncnn, the .param or the .bin).")
    var file: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    func run() throws {
        let ck = try CheckpointLoader.load(URL(fileURLWithPath: file))
        print(json ? Inspect.jsonReport(ck) : Inspect.textReport(ck))
    }

    /// Tensor count per dtype, sorted by dtype name.
    static func dtypeCounts(_ d: StateDict) -> [(String, Int)] {
        var c: [String: Int] = [:]
        for t in d.tensors { c[t.dtype.rawValue, default: 0] += 1 }
        return c.sorted { $0.key < $1.key }
    }

    /// Human-readable description.
    static func textReport(_ ck: LoadedCheckpoint) -> String {
        let d = ck.stateDict
        let arch = ArchitectureDetector.detect(d)
        var lines = [
            "file:         \(ck.path)",
            "format:       \(ck.format.rawValue)",
            "wrapper:      \(ck.wrapper ?? "none")\(ck.strippedModulePrefix ? " (module. prefix stripped)" : "")",
            "tensors:      \(d.count)",
            "parameters:   \(d.parameterCount)",
            "dtypes:       " + dtypeCounts(d).map { "\($0.0) ×\($0.1)" }.joined(separator: ", "),
        ]
        if case let .unrecognised(first) = arch {
            lines.append("architecture: not recognised; first keys: " + first.joined(separator: ", "))
        } else {
            lines.append("architecture: \(arch.name)")
            lines.append("config:       \(arch.configurationJSON() ?? "{}")")
        }
        return lines.joined(separator: "\n")
    }

    /// Machine-readable description (keys sorted).
    static func jsonReport(_ ck: LoadedCheckpoint) -> String {
        let d = ck.stateDict
        let arch = ArchitectureDetector.detect(d)
        var obj: [String: Any] = [
            "file": ck.path, "format": ck.format.rawValue, "wrapper": ck.wrapper ?? NSNull(),
            "module_prefix_stripped": ck.strippedModulePrefix, "tensor_count": d.count, "parameter_count": d.parameterCount,
            "dtypes": Dictionary(uniqueKeysWithValues: dtypeCounts(d)), "architecture": arch.name,
        ]
        if case let .unrecognised(first) = arch {
            obj["architecture"] = NSNull()
            obj["first_keys"] = first
        } else if let cfg = arch.configurationJSON(), let parsed = try? JSONSerialization.jsonObject(with: Data(cfg.utf8)) {
            obj["config"] = parsed
        }
        let data = (try? JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}
