import BackendDNNL
import Checkpoint
import Foundation
import TensorCore

/// Paths of committed fixtures and golden data for the face-network tests.
enum FaceModelsTestSupport {
    /// Tests/ModelsTests/GPEN/FaceModelsTestSupport.swift → repository root.
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    /// `$ENHANCE_GOLDEN/<case>`, else `<root>/../shared/golden/<case>` (or two levels up for a nested worktree).
    static func goldenDir(_ name: String) -> URL {
        if let g = ProcessInfo.processInfo.environment["ENHANCE_GOLDEN"] {
            return URL(fileURLWithPath: g).appendingPathComponent(name)
        }
        let up1 = repoRoot.deletingLastPathComponent()
        let candidates = [up1.appendingPathComponent("shared/golden/\(name)"),
                          up1.deletingLastPathComponent().appendingPathComponent("shared/golden/\(name)")]
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("config.json").path) }
            ?? candidates[0]
    }

    /// The backends every parity test runs on: the reference oracle and oneDNN (2 threads, Winograd allowed).
    static func backends() throws -> [any Backend] {
        [ReferenceBackend(), try DNNLBackend(options: DNNLBackend.Options(threads: 2))]
    }

    /// Case folders with the golden layout: `../shared/golden/<golden>` when present, then the committed
    /// `Tests/Fixtures/models/<fixture>` folders (made by scripts/reference from our validated PyTorch reference).
    static func cases(golden: String, fixtures: [String]) -> [URL] {
        var out: [URL] = []
        if goldenAvailable(golden) { out.append(goldenDir(golden)) }
        for f in fixtures {
            let d = repoRoot.appendingPathComponent("Tests/Fixtures/models/\(f)")
            if FileManager.default.fileExists(atPath: d.appendingPathComponent("weights.pth").path) { out.append(d) }
        }
        return out
    }

    static func goldenAvailable(_ name: String) -> Bool {
        FileManager.default.fileExists(atPath: goldenDir(name).appendingPathComponent("weights.pth").path)
    }

    static func npy(_ dir: URL, _ name: String) throws -> NPYArray {
        try NPYArray(contentsOf: dir.appendingPathComponent(name + ".npy"))
    }

    static func host(_ a: NPYArray) throws -> HostTensor { try HostTensor(shape: a.shape, data: a.floats()) }

    /// Max |a − b| and the largest |b|.
    static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> (diff: Float, ref: Float) {
        precondition(a.count == b.count)
        var d: Float = 0, m: Float = 0
        for i in a.indices { d = max(d, abs(a[i] - b[i])); m = max(m, abs(b[i])) }
        return (d, m)
    }

    /// Number of bytes that differ and the largest difference.
    static func byteDiff(_ a: [UInt8], _ b: [UInt8]) -> (count: Int, max: Int) {
        precondition(a.count == b.count)
        var n = 0, m = 0
        for i in a.indices where a[i] != b[i] { n += 1; m = max(m, abs(Int(a[i]) - Int(b[i]))) }
        return (n, m)
    }
}
