@testable import BackendDNNL
import Foundation
import Testing
import TensorCore

/// `--precision bf16` on the oneDNN backend: convolutions read bf16 copies of their inputs and bf16 weights, accumulate
/// in f32 and write f32 through the fused epilogue. Run natively with avx512_bf16/AMX, else through oneDNN's emulation
/// on any AVX-512 CPU (same rounding); on the AVX2 path the backend refuses bf16 (DNNLBackendTests).
@Suite struct DNNLBF16Tests {
    static let backend: DNNLBackend? = try? DNNLBackend(options: .init(threads: 2, precision: .bf16, bf16Emulation: true))

    /// Relative L2 error of `got` against `want`.
    static func relative(_ got: HostTensor, _ want: HostTensor) -> Double {
        var num = 0.0, den = 0.0
        for i in 0..<want.count {
            let d = Double(got.data[i] - want.data[i])
            num += d * d
            den += Double(want.data[i]) * Double(want.data[i])
        }
        return (num / max(den, 1e-30)).squareRoot()
    }

    /// The same convolution on the reference (f32) and in bf16: a bf16-sized error (inputs and weights rounded to
    /// 8 significant bits: ≈ 2⁻⁹ each, partly averaging out over the sum), neither f32-exact nor garbage.
    @Test(arguments: convCases) func convIsBF16Accurate(_ c: ConvCase) throws {
        guard let be = Self.backend else {
            #expect(!CPUInfo.isa.hasPrefix("avx512"), "bf16 (emulated) must be available on \(CPUInfo.isa)")
            return
        }
        var rng = SeededRandom(seed: UInt64(c.cin * 1000 + c.cout * 10 + c.k))
        let w = rng.host(c.params.weightShape, scale: 0.3), b = rng.host([c.cout])
        let x = rng.host([c.n, c.cin, c.h, c.w])
        let r = Backends.reference
        let want = try r.download(r.conv2d(r.upload(x), r.prepareConv2d(weight: w, bias: b, params: c.params)))
        let got = try be.download(be.conv2d(be.upload(x), be.prepareConv2d(weight: w, bias: b, params: c.params)))
        let e = Self.relative(got, want)
        #expect(e > 1e-6 && e < 8e-3, "\(c): relative L2 error \(e)")
    }

    /// Inputs that are channel views (RRDB dense blocks read views of one concat buffer) and a fused epilogue with a
    /// residual and leaky ReLU: the bf16 copy of the input must be made from the view's own channels.
    @Test func viewInputAndFusedEpilogue() throws {
        guard let be = Self.backend else { return }
        var rng = SeededRandom(seed: 91)
        let p = Conv2dParams(inChannels: 32, outChannels: 16, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.2), b = rng.host([16])
        let whole = rng.host([1, 64, 20, 19]), res = rng.host([1, 16, 20, 19])
        func run(_ k: any Backend) throws -> HostTensor {
            let v = try k.channelView(k.upload(whole), 16..<48)
            var e = Epilogue.activation(.leakyReLU(slope: 0.2))
            e.residual = try k.upload(res)
            e.residualScale = 0.5
            return try k.download(k.conv2d(v, k.prepareConv2d(weight: w, bias: b, params: p), epilogue: e))
        }
        let e = Self.relative(try run(be), try run(Backends.reference))
        #expect(e > 1e-6 && e < 8e-3, "relative L2 error \(e)")
    }

    /// bf16 keeps its weights in bf16: half the bytes of the f32 backend's for the same layer.
    @Test func weightsAreStoredInBF16() throws {
        // own backends: the shared one's weight bytes move with the tests running beside this one
        guard Self.backend != nil else { return }
        let be = try DNNLBackend(options: .init(threads: 2, precision: .bf16, bf16Emulation: true))
        let f32 = try DNNLBackend(options: .init(threads: 2, winograd: false))
        var rng = SeededRandom(seed: 5)
        let p = Conv2dParams(inChannels: 64, outChannels: 64, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape), x = rng.host([1, 64, 16, 16])
        var bytes: [Int] = []
        for k in [be, f32] {
            let before = k.memoryStats.weightBytes
            let conv = try k.prepareConv2d(weight: w, bias: nil, params: p)
            _ = try k.download(k.conv2d(k.upload(x), conv))
            bytes.append(k.memoryStats.weightBytes - before)
            withExtendedLifetime(conv) {}
        }
        #expect(bytes[0] == 64 * 64 * 9 * 2 && bytes[1] == 64 * 64 * 9 * 4, "weight bytes bf16 \(bytes[0]), f32 \(bytes[1])")
    }

    /// 3×3 stride-1 layers on maps the own Winograd kernel takes run it in bf16 (transformed tiles and weights rounded
    /// to bf16, f32 products) wherever oneDNN builds the bf16 matmul: zero padding with a residual epilogue, reflection
    /// padding (ParseNet) with PReLU, and GPEN's per-input-channel scale folded into the weights. Rounding the
    /// transformed tiles and weights costs about five times direct bf16's error per layer (docs/bench.md: images stay
    /// within 2 steps); `--no-winograd` keeps direct bf16.
    @Test func winogradRunsInBF16() throws {
        guard Self.backend != nil else { return }
        let be = try DNNLBackend(options: .init(threads: 2, precision: .bf16, bf16Emulation: true))
        let r = Backends.reference
        var rng = SeededRandom(seed: 2024)
        let p = Conv2dParams(inChannels: 48, outChannels: 32, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.2), b = rng.host([32])
        let x = rng.host([1, 48, 66, 70]), res = rng.host([1, 32, 66, 70]), s = rng.host([1, 48, 1, 1]), slopes = rng.host([32])
        func zeroPadded(_ k: any Backend) throws -> HostTensor {
            var e = Epilogue.activation(.leakyReLU(slope: 0.2))
            e.residual = try k.upload(res)
            return try k.download(k.conv2d(k.upload(x), k.prepareConv2d(weight: w, bias: b, params: p), inputScale: k.upload(s),
                                           epilogue: e, into: nil))
        }
        func reflected(_ k: any Backend) throws -> HostTensor {
            let q = Conv2dParams(inChannels: 48, outChannels: 32, kernel: 3, padding: 0)
            let e = Epilogue.activation(.prelu(slopes: try k.prepareVector(slopes.data)))
            return try k.download(k.reflectPadConv2d(k.upload(x), padding: 1, k.prepareConv2d(weight: w, bias: b, params: q), epilogue: e))
        }
        let direct = try DNNLBackend(options: .init(threads: 2, winograd: false, precision: .bf16, bf16Emulation: true))
        let before = be.ownWinogradRuns
        for (name, run) in [("zero padding", zeroPadded), ("reflection", reflected)] as [(String, (any Backend) throws -> HostTensor)] {
            let want = try run(r)
            let e = Self.relative(try run(be), want), d = Self.relative(try run(direct), want)
            print("bf16 \(name): relative L2 error winograd \(e), direct \(d)")
            // measured on a Zen 4: ×5.0 (zero padding) and ×5.2 (reflection) direct bf16's error, 7e-3 and 1.1e-2
            #expect(e > 1e-6 && e < 7 * d && e < 1.5e-2, "\(name): relative L2 error \(e) (direct bf16 \(d))")
        }
        if be.bf16WinogradMatmul { #expect(be.ownWinogradRuns == before + 2) } else { #expect(be.ownWinogradRuns == before) }
    }
}
