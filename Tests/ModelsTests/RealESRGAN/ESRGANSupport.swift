import Foundation
import Checkpoint
import TensorCore
import TestSupport

/// Paths used by the Real-ESRGAN model tests.
enum ESRGANPaths {
    static let root = Repository.root
    static let golden = Repository.golden
    /// The project's committed model fixtures (scripts/reference).
    static let fixtures = Repository.fixtures.appendingPathComponent("models")
    static var assets: URL { Repository.assets }
    static func exists(_ u: URL) -> Bool { FileManager.default.fileExists(atPath: u.path) }
    static var hasGolden: Bool { exists(golden.appendingPathComponent("rrdbnet_x4/weights.pth")) }
    static var hasNCNN: Bool { exists(assets.appendingPathComponent("realesr-animevideov3-x4.bin")) }

    /// The folder of a golden case, when `shared/golden` is present.
    static func caseDirectory(_ name: String) -> URL? {
        let g = golden.appendingPathComponent(name)
        return exists(g.appendingPathComponent("weights.pth")) ? g : nil
    }
}

/// Max abs difference and relative L2 error ‖a − b‖ / ‖b‖.
func esrganErrors(_ a: [Float], _ b: [Float]) -> (maxAbs: Float, rel: Double) {
    precondition(a.count == b.count)
    var m: Float = 0
    var num = 0.0, den = 0.0
    for i in 0..<a.count {
        let d = a[i] - b[i]
        m = max(m, abs(d))
        num += Double(d) * Double(d)
        den += Double(b[i]) * Double(b[i])
    }
    return (m, (num / max(den, 1e-30)).squareRoot())
}


/// Deterministic pseudo-random numbers (SplitMix64) for test weights and inputs.
struct TestRNG {
    var bits: SplitMix64
    init(state: UInt64) { bits = SplitMix64(seed: state) }
    mutating func next() -> UInt64 { bits.next() }
    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * Float(next() >> 40) / Float(1 << 24) }
    mutating func array(_ n: Int, _ scale: Float) -> [Float] { (0..<n).map { _ in uniform(-scale, scale) } }
}

/// Tiny random Real-ESRGAN state dicts (keys exactly as upstream).
enum TinyModels {
    /// RRDBNet keys for (scale, nf, blocks, gc) with weights ~ U(±√(3/fan_in)) and conv_last bias 0.45.
    static func rrdb(scale: Int, nf: Int, blocks: Int, gc: Int, seed: UInt64 = 1) -> [(String, [Int], [Float])] {
        var r = TestRNG(state: seed)
        var t: [(String, [Int], [Float])] = []
        func conv(_ k: String, _ i: Int, _ o: Int, bias: Float = 0) {
            let s = (3 / Float(i * 9)).squareRoot()
            t.append(("\(k).weight", [o, i, 3, 3], r.array(o * i * 9, s)))
            t.append(("\(k).bias", [o], r.array(o, 0.05).map { $0 + bias }))
        }
        conv("conv_first", 3 * (scale == 2 ? 4 : scale == 1 ? 16 : 1), nf)
        for b in 0..<blocks { for rd in 1...3 { for k in 1...5 { conv("body.\(b).rdb\(rd).conv\(k)", nf + (k - 1) * gc, k == 5 ? nf : gc) } } }
        for k in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] { conv(k, nf, nf) }
        conv("conv_last", nf, 3, bias: 0.45)
        return t
    }

    /// SRVGGNetCompact keys (PReLU) for (nf, numConv, upscale).
    static func srvgg(nf: Int, numConv: Int, upscale: Int, seed: UInt64 = 2) -> [(String, [Int], [Float])] {
        var r = TestRNG(state: seed)
        var t: [(String, [Int], [Float])] = []
        for k in 0...numConv {
            let i = k == 0 ? 3 : nf
            t.append(("body.\(2 * k).weight", [nf, i, 3, 3], r.array(nf * i * 9, (3 / Float(i * 9)).squareRoot())))
            t.append(("body.\(2 * k).bias", [nf], r.array(nf, 0.05)))
            t.append(("body.\(2 * k + 1).weight", [nf], (0..<nf).map { _ in r.uniform(0.1, 0.4) }))
        }
        let o = 3 * upscale * upscale
        t.append(("body.\(2 * numConv + 2).weight", [o, nf, 3, 3], r.array(o * nf * 9, 0.5 * (3 / Float(nf * 9)).squareRoot())))
        t.append(("body.\(2 * numConv + 2).bias", [o], r.array(o, 0.05)))
        return t
    }

    static func load(_ t: [(String, [Int], [Float])]) throws -> LoadedCheckpoint {
        try CheckpointLoader.load(bytes: SafeTensorsWriter.bytes(t), path: "tiny.safetensors")
    }
}
