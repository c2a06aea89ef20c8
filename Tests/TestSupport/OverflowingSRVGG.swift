import Checkpoint
import Foundation

/// A small SRVGGNetCompact (8 features, two body convolutions, PReLU) whose first convolution is scaled by `first` and
/// the second by `second`: with 1e5 / 1e-5 its first activations (≈ 1e5) overflow fp16's 65504 while fp32 computes an
/// ordinary image; with 1e36 / 1e6 fp32 overflows too. Written as safetensors.
public enum OverflowingSRVGG {
    public static func write(to url: URL, scale: Int, first: Float, second: Float) throws {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func normal() -> Float {   // SplitMix64 + Box–Muller
            func next() -> Double {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                return Double((z ^ (z >> 31)) >> 11) / Double(1 << 53)
            }
            let u1 = max(next(), 1e-300), u2 = next()
            return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
        }
        let nf = 8, out = 3 * scale * scale
        var t: [(String, [Int], [Float])] = []
        for k in 0...1 {
            let i = k == 0 ? 3 : nf
            let s = Float((2 / Double(i * 9)).squareRoot()) * (k == 0 ? first : second)
            t.append(("body.\(2 * k).weight", [nf, i, 3, 3], (0..<(nf * i * 9)).map { _ in normal() * s }))
            t.append(("body.\(2 * k).bias", [nf], (0..<nf).map { _ in normal() * 0.05 }))
            t.append(("body.\(2 * k + 1).weight", [nf], [Float](repeating: 0.25, count: nf)))
        }
        t.append(("body.4.weight", [out, nf, 3, 3], (0..<(out * nf * 9)).map { _ in normal() * 0.05 }))
        t.append(("body.4.bias", [out], [Float](repeating: 0, count: out)))
        try Data(SafeTensorsWriter.bytes(t)).write(to: url)
    }
}
