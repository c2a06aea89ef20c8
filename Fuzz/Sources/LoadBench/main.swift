import Checkpoint
import Foundation

/// Load benchmark: `LoadBench [--no-decode] FILE…` prints, per file, the time to load (parse + map), the time to
/// decode every tensor to Float (skipped with --no-decode), and the peak resident set size.
func now() -> Double { Date().timeIntervalSinceReferenceDate }

func peakRSSMiB() -> Double {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return -1 }
    for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
        let kb = Double(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
        return kb / 1024
    }
    return -1
}

let noDecode = CommandLine.arguments.contains("--no-decode")
for path in CommandLine.arguments.dropFirst() where path != "--no-decode" {
    let t0 = now()
    do {
        let ck = try CheckpointLoader.load(URL(fileURLWithPath: path))
        let t1 = now()
        var checksum: Double = 0
        for t in ck.stateDict.tensors where !noDecode {
            let f = t.floats()
            checksum += Double(f.first ?? 0)
        }
        let t2 = now()
        let arch = ArchitectureDetector.detect(ck.stateDict)
        print(String(format: "%@: %@ %d tensors %d params, load %.3f s, decode all to Float %.3f s, peak RSS %.1f MiB, arch %@ (checksum %g)",
                     path, ck.format.rawValue, ck.stateDict.count, ck.stateDict.parameterCount, t1 - t0, t2 - t1, peakRSSMiB(), arch.name, checksum))
    } catch {
        print("\(path): \(error)")
    }
}
