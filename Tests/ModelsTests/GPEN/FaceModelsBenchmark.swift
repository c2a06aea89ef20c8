import BackendDNNL
import Checkpoint
import Foundation
import Testing
import TensorCore
@testable import Models

/// Benchmarks (print numbers; assert only that the runs worked). Run in release on an idle machine:
/// `ENHANCE_BENCHMARKS=1 swift test -c release --filter FaceModelsBenchmark` (`ENHANCE_BENCH_THREADS`, default 2).
@Suite(.serialized) struct FaceModelsBenchmark {
    static let enabled = ProcessInfo.processInfo.environment["ENHANCE_BENCHMARKS"] != nil
    static var threads: Int { Int(ProcessInfo.processInfo.environment["ENHANCE_BENCH_THREADS"] ?? "") ?? 2 }

    static func peakRSS() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for l in s.split(separator: "\n") where l.hasPrefix("VmHWM:") {
            return Double(l.split(separator: " ", omittingEmptySubsequences: true)[1]).map { $0 / 1024 } ?? 0
        }
        return 0
    }

    static func time(_ be: any Backend, _ label: String, runs: Int = 3, _ body: () throws -> Void) rethrows {
        var t = ContinuousClock.now
        try body()
        let first = ContinuousClock.now - t
        be.resetPeak()
        var ts: [Double] = []
        for _ in 0..<runs {
            t = ContinuousClock.now
            try body()
            let d = ContinuousClock.now - t
            ts.append(Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        }
        let m = be.memoryStats
        print(String(format: "%@: first %.3f s, runs %@, median %.3f s; engine peak live %.0f MiB, reserved %.0f MiB; peak RSS %.0f MiB",
                     label, Double(first.components.seconds) + Double(first.components.attoseconds) * 1e-18,
                     ts.map { String(format: "%.3f", $0) }.joined(separator: " / "), ts.sorted()[ts.count / 2],
                     Double(m.peakLiveBytes) / 1048576, Double(m.peakReservedBytes) / 1048576, peakRSS()))
    }

    @Test(.enabled(if: enabled, "set ENHANCE_BENCHMARKS=1")) func gpen512() throws {
        let be = try DNNLBackend(options: DNNLBackend.Options(threads: Self.threads))
        let cfg = GPENConfiguration(size: 512, styleDim: 512, nMLP: 8, channelMultiplier: 2, narrow: 1)
        let g = try GPENGenerator(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.gpen(cfg)), backend: be)
        var r = SyntheticCheckpoint.Random(seed: 5)
        let x = try be.upload(HostTensor(shape: [1, 3, 512, 512], data: (0..<(3 * 512 * 512)).map { _ in Float(r.uniform() * 2 - 1) }))
        try Self.time(be, "GPEN-512 (\(be.name))") { _ = try g.forward(x) }
    }

    @Test(.enabled(if: enabled, "set ENHANCE_BENCHMARKS=1")) func retinaFaceR50() throws {
        let be = try DNNLBackend(options: DNNLBackend.Options(threads: Self.threads))
        let net = try RetinaFace(stateDict: SyntheticCheckpoint.stateDict(SyntheticCheckpoint.retinaFace(
            RetinaFaceConfiguration(backbone: .resnet50, outChannel: 256))), backend: be)
        for s in [512, 1000] {
            let x = try be.upload(HostTensor(shape: [1, 3, s, s], data: [Float](repeating: 10, count: 3 * s * s)))
            try Self.time(be, "RetinaFace-R50 \(s)x\(s) (\(be.name))") { _ = try net.forward(x) }
        }
    }
}
