@testable import BackendDNNL
import Foundation
import Synchronization
import Testing
import TensorCore

/// One shared oneDNN backend per Winograd setting (creating engines is cheap, but keep the suite light).
enum Backends {
    static let reference = ReferenceBackend()
    static let direct = try! DNNLBackend(options: .init(winograd: false))
    static let winograd = try! DNNLBackend(options: .init(winograd: true))
}

/// Runs `body` on the reference backend and on `backend`, downloads both results and compares them.
/// Fails when max |a − b| > tol · max(1, max |reference|).
func expectParity(_ label: String, tol: Float, on backend: any Backend = Backends.direct,
                  sourceLocation: SourceLocation = #_sourceLocation,
                  _ body: (any Backend) throws -> Tensor) throws {
    let r = try Backends.reference.download(body(Backends.reference))
    let d = try backend.download(body(backend))
    #expect(r.shape == d.shape, "\(label): shapes \(r.shape) vs \(d.shape)", sourceLocation: sourceLocation)
    guard r.shape == d.shape else { return }
    var maxDiff: Float = 0, maxRef: Float = 0
    for i in 0..<r.count {
        maxDiff = max(maxDiff, abs(r.data[i] - d.data[i]))
        maxRef = max(maxRef, abs(r.data[i]))
    }
    let bound = tol * max(1, maxRef)
    #expect(maxDiff <= bound && !maxDiff.isNaN, "\(label): max |diff| \(maxDiff) > \(bound) (max |ref| \(maxRef))",
            sourceLocation: sourceLocation)
}

struct ConvCase: CustomStringConvertible, Sendable {
    var cin: Int, cout: Int, k: Int, stride: Int, pad: Int, groups: Int, h: Int, w: Int, n: Int = 1
    var description: String { "\(cin)→\(cout) k\(k) s\(stride) p\(pad) g\(groups) \(n)×\(h)×\(w)" }
    var params: Conv2dParams { Conv2dParams(inChannels: cin, outChannels: cout, kernel: k, stride: stride, padding: pad, groups: groups) }
}

let convCases: [ConvCase] = [
    ConvCase(cin: 3, cout: 16, k: 3, stride: 1, pad: 1, groups: 1, h: 9, w: 10),      // first layer, odd/even
    ConvCase(cin: 32, cout: 32, k: 3, stride: 1, pad: 1, groups: 1, h: 12, w: 12),
    ConvCase(cin: 48, cout: 20, k: 3, stride: 1, pad: 1, groups: 1, h: 7, w: 5),      // channels not multiple of 16
    ConvCase(cin: 16, cout: 24, k: 3, stride: 2, pad: 0, groups: 1, h: 11, w: 9),     // GPEN downsample conv
    ConvCase(cin: 16, cout: 16, k: 3, stride: 2, pad: 1, groups: 16, h: 10, w: 13),   // depthwise stride 2
    ConvCase(cin: 32, cout: 32, k: 3, stride: 1, pad: 1, groups: 32, h: 8, w: 8),     // depthwise
    ConvCase(cin: 24, cout: 48, k: 1, stride: 1, pad: 0, groups: 1, h: 6, w: 7),      // pointwise
    ConvCase(cin: 3, cout: 16, k: 7, stride: 2, pad: 3, groups: 1, h: 17, w: 16),     // ResNet stem
    ConvCase(cin: 32, cout: 16, k: 3, stride: 1, pad: 1, groups: 4, h: 6, w: 6),      // grouped
    ConvCase(cin: 16, cout: 8, k: 3, stride: 1, pad: 1, groups: 1, h: 5, w: 6, n: 2), // batch 2
]

@Suite struct DNNLParityTests {
    @Test(arguments: convCases)
    func convMatchesReference(_ c: ConvCase) throws {
        var rng = SeededRandom(seed: UInt64(c.cin * 1000 + c.cout * 10 + c.k))
        let w = rng.host(c.params.weightShape, scale: 0.3), b = rng.host([c.cout])
        let x = rng.host([c.n, c.cin, c.h, c.w])
        for backend in [Backends.direct, Backends.winograd] {
            try expectParity("conv \(c) \(backend.name)", tol: 1e-4, on: backend) { be in
                try be.conv2d(be.upload(x), be.prepareConv2d(weight: w, bias: b, params: c.params))
            }
        }
    }

    @Test func winogradIsUsedForRRDBShapesAndStaysAccurate() throws {
        var rng = SeededRandom(seed: 77)
        let p = Conv2dParams(inChannels: 64, outChannels: 32, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.1), b = rng.host([32])
        let conv = try Backends.winograd.prepareConv2d(weight: w, bias: b, params: p)
        let impl = try Backends.winograd.convImplementation(conv, h: 32, w: 32)
        // oneDNN 2.6 has Winograd kernels for AVX-512 only; on AVX2 the backend must fall back to the direct JIT.
        if Backends.winograd.blockedLayout == .nChw16c {
            #expect(impl.contains("wino"), "implementation \(impl)")
        } else {
            #expect(impl.hasPrefix("jit"), "implementation \(impl)")
        }
        let directImpl = try Backends.direct.convImplementation(Backends.direct.prepareConv2d(weight: w, bias: b, params: p), h: 32, w: 32)
        #expect(!directImpl.contains("wino") && directImpl.hasPrefix("jit"), "implementation \(directImpl)")
        let x = rng.host([1, 64, 32, 33])
        try expectParity("winograd 64→32", tol: 1e-4, on: Backends.winograd) { be in
            try be.conv2d(be.upload(x), be.prepareConv2d(weight: w, bias: b, params: p))
        }
    }

    @Test(arguments: ["leaky", "scaledLeaky", "relu", "prelu", "sigmoid", "channelScale", "residual", "all"])
    func fusedEpilogueMatchesReference(_ kind: String) throws {
        var rng = SeededRandom(seed: 5)
        let p = Conv2dParams(inChannels: 16, outChannels: 32, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.3), b = rng.host([32])
        let x = rng.host([1, 16, 9, 8]), res = rng.host([1, 32, 9, 8]), scale = rng.host([1, 32, 1, 1])
        let slopes = (0..<32).map { Float($0) / 40 }
        for backend in [Backends.direct, Backends.winograd] {
            try expectParity("epilogue \(kind) \(backend.name)", tol: 1e-4, on: backend) { be in
                var e = Epilogue()
                switch kind {
                case "leaky": e.activation = .leakyReLU(slope: 0.2)
                case "scaledLeaky": e.activation = .scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot())
                case "relu": e.activation = .relu
                case "prelu": e.activation = .prelu(slopes: slopes)
                case "sigmoid": e.activation = .sigmoid
                case "channelScale": e.channelScale = try be.upload(scale)
                case "residual": e.outputScale = 0.2; e.residual = try be.upload(res)
                default:
                    e = Epilogue(channelScale: try be.upload(scale), activation: .leakyReLU(slope: 0.1), outputScale: 0.5,
                                 residual: try be.upload(res), residualScale: 0.7)
                }
                return try be.conv2d(be.upload(x), be.prepareConv2d(weight: w, bias: b, params: p), epilogue: e)
            }
        }
    }

    /// The RRDB dense-block pattern: each conv writes straight into its channel slice of one buffer.
    @Test func denseBlockWritesIntoChannelSlices() throws {
        var rng = SeededRandom(seed: 9)
        let nf = 32, gc = 16, h = 10, w = 9
        let x = rng.host([1, nf, h, w])
        let weights = (0..<5).map { i in rng.host([i == 4 ? nf : gc, nf + i * gc, 3, 3], scale: 0.1) }
        let biases = (0..<5).map { i in rng.host([i == 4 ? nf : gc]) }
        for backend in [Backends.direct, Backends.winograd] {
            try expectParity("dense block \(backend.name)", tol: 1e-4, on: backend) { be in
                let input = try be.upload(x)
                let cat = try be.zeros(TensorShape(n: 1, c: nf + 4 * gc, h: h, w: w))
                try be.copy(input, into: be.channelView(cat, 0..<nf))
                for i in 0..<4 {
                    let conv = try be.prepareConv2d(weight: weights[i], bias: biases[i],
                                                    params: Conv2dParams(inChannels: nf + i * gc, outChannels: gc, kernel: 3, padding: 1))
                    let dst = try be.channelView(cat, (nf + i * gc)..<(nf + (i + 1) * gc))
                    let y = try be.conv2d(be.channelView(cat, 0..<(nf + i * gc)), conv,
                                          epilogue: .activation(.leakyReLU(slope: 0.2)), into: dst)
                    #expect(y === dst)
                }
                let conv5 = try be.prepareConv2d(weight: weights[4], bias: biases[4],
                                                 params: Conv2dParams(inChannels: nf + 4 * gc, outChannels: nf, kernel: 3, padding: 1))
                return try be.conv2d(cat, conv5, epilogue: Epilogue(outputScale: 0.2, residual: input))
            }
        }
    }

    /// One prepared conv run first plainly (its weights are reordered from the host copy, which is then released),
    /// then with a folded output scale, a residual, a batch of 2 and a plain-layout input: every later weight copy
    /// is derived from the first one and must still match the reference.
    @Test func laterWeightLayoutsAndScalesComeFromTheFirstCopy() throws {
        var rng = SeededRandom(seed: 21)
        let p = Conv2dParams(inChannels: 3, outChannels: 16, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.3), b = rng.host([16])
        let x = rng.host([1, 3, 9, 11]), x2 = rng.host([2, 3, 6, 5]), r = rng.host([1, 16, 9, 11])
        for backend in [try DNNLBackend(options: .init(winograd: false)), try DNNLBackend(options: .init(winograd: true))] {
            let conv = try backend.prepareConv2d(weight: w, bias: b, params: p)
            let refConv = try Backends.reference.prepareConv2d(weight: w, bias: b, params: p)
            func check(_ label: String, _ body: (any Backend, PreparedConv2d) throws -> Tensor) throws {
                let want = try Backends.reference.download(body(Backends.reference, refConv))
                let got = try backend.download(body(backend, conv))
                #expect(got.shape == want.shape)
                let diff = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .nan
                #expect(diff <= 1e-4, "\(label) on \(backend.name): max |diff| \(diff)")
            }
            try check("plain") { be, c in try be.conv2d(be.upload(x), c) }
            let weightsAfterFirst = backend.memoryStats.weightBytes
            try check("plain again") { be, c in try be.conv2d(be.upload(x), c) }
            #expect(backend.memoryStats.weightBytes == weightsAfterFirst)
            try check("scale 0.5 + residual") { be, c in
                try be.conv2d(be.upload(x), c, epilogue: Epilogue(outputScale: 0.5, residual: try be.upload(r)))
            }
            try check("scale 0.25 + residual") { be, c in
                try be.conv2d(be.upload(x), c, epilogue: Epilogue(outputScale: 0.25, residual: try be.upload(r)))
            }
            try check("batch 2, leaky") { be, c in try be.conv2d(be.upload(x2), c, epilogue: .activation(.leakyReLU(slope: 0.2))) }
        }
    }

    @Test func activationsStayBlockedBetweenConvs() throws {
        let be = try DNNLBackend(options: .init(winograd: false))
        var rng = SeededRandom(seed: 11)
        let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: rng.host(p.weightShape, scale: 0.2), bias: nil, params: p)
        var t = try be.upload(rng.host([1, 16, 12, 12]))
        let before = be.activationReorders
        for _ in 0..<5 { t = try be.conv2d(t, conv, epilogue: .activation(.leakyReLU(slope: 0.2))) }
        #expect(be.activationReorders == before)
        #expect(t.layout == be.blockedLayout)
    }

    @Test(arguments: [(3, 16, 3, 2, 0, 1, 5, 6), (16, 8, 3, 2, 0, 1, 4, 4), (16, 16, 4, 2, 1, 1, 5, 7), (16, 16, 3, 2, 1, 16, 6, 5)])
    func transposedConvMatchesReference(_ a: (Int, Int, Int, Int, Int, Int, Int, Int)) throws {
        let (cin, cout, k, s, pad, g, h, w) = a
        var rng = SeededRandom(seed: UInt64(cin + cout + k))
        let p = ConvTranspose2dParams(inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: pad, groups: g)
        let wt = rng.host(p.weightShape, scale: 0.3), b = rng.host([cout]), x = rng.host([1, cin, h, w])
        try expectParity("convTranspose \(a)", tol: 1e-4) { be in
            try be.convTranspose2d(be.upload(x), be.prepareConvTranspose2d(weight: wt, bias: b, params: p),
                                   epilogue: .activation(.leakyReLU(slope: 0.2)))
        }
    }

    @Test func linearMatchesReferenceOnFlattenedInput() throws {
        var rng = SeededRandom(seed: 12)
        let w = rng.host([24, 16 * 3 * 3], scale: 0.1), b = rng.host([24]), x = rng.host([2, 16, 3, 3])
        let w2 = rng.host([8, 24], scale: 0.3), scale = rng.host([2, 8, 1, 1])
        try expectParity("linear", tol: 1e-4) { be in
            let h = try be.linear(be.upload(x), be.prepareLinear(weight: w, bias: b),
                                  epilogue: .activation(.scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot())))
            return try be.linear(h, be.prepareLinear(weight: w2, bias: nil), epilogue: Epilogue(channelScale: try be.upload(scale)))
        }
    }

    static let shapes: [[Int]] = [[1, 5, 7, 6], [1, 32, 8, 9], [2, 17, 4, 5]]

    @Test(arguments: shapes, [false, true])
    func elementwiseOpsMatchReference(_ shape: [Int], _ blocked: Bool) throws {
        var rng = SeededRandom(seed: UInt64(shape.reduce(0, +)))
        let x = rng.host(shape, scale: 3), y = rng.host(shape), c = shape[1]
        let bias = rng.host([c]), s = rng.host([shape[0], c, 1, 1])
        let acts: [Activation] = [.relu, .leakyReLU(slope: 0.2), .scaledLeakyReLU(slope: 0.2, gain: 1.4142135),
                                  .prelu(slopes: (0..<c).map { Float($0) * 0.05 }), .sigmoid, .none]
        for a in acts {
            try expectParity("activation \(a) \(shape)", tol: 1e-5) { be in try be.activation(be.input(x, blocked: blocked), a) }
            try expectParity("biasActivation \(a) \(shape)", tol: 1e-5) { be in try be.biasActivation(be.input(x, blocked: blocked), bias: bias, activation: a) }
        }
        let unaries: [UnaryOp] = [.square, .exp, .abs, .tanh, .clamp(lo: -1, hi: 0.5)]
        for u in unaries {
            try expectParity("unary \(u) \(shape)", tol: 1e-5) { be in try be.unary(be.input(x, blocked: blocked), u) }
        }
        try expectParity("sqrt/rsqrt \(shape)", tol: 1e-4) { be in
            let sq = try be.unary(be.input(x, blocked: blocked), .square)
            return try be.add(be.unary(sq, .sqrt), be.unary(sq, .rsqrt(eps: 1e-2)), alpha: 1, beta: 0.01)
        }
        try expectParity("add \(shape)", tol: 1e-6) { be in try be.add(be.input(x, blocked: blocked), be.input(y, blocked: blocked), alpha: 0.2, beta: 1) }
        try expectParity("multiply \(shape)", tol: 1e-6) { be in try be.multiply(be.input(x, blocked: blocked), be.input(y, blocked: blocked)) }
        try expectParity("affine \(shape)", tol: 1e-6) { be in try be.affine(be.input(x, blocked: blocked), scale: 0.5, shift: -1) }
        try expectParity("scaleChannels \(shape)", tol: 1e-6) { be in try be.scaleChannels(be.input(x, blocked: blocked), by: be.upload(s)) }
    }

    @Test(arguments: shapes, [false, true])
    func shapeOpsMatchReference(_ shape: [Int], _ blocked: Bool) throws {
        var rng = SeededRandom(seed: UInt64(shape.reduce(1, *)))
        let x = rng.host(shape), c = shape[1]
        let other = rng.host([shape[0], 3, shape[2], shape[3]])
        try expectParity("concat \(shape)", tol: 0) { be in try be.concat([be.input(x, blocked: blocked), be.upload(other), be.input(x, blocked: blocked)]) }
        try expectParity("slice \(shape)", tol: 0) { be in try be.sliceChannels(be.input(x, blocked: blocked), 1..<c) }
        try expectParity("slice prefix \(shape)", tol: 0) { be in try be.sliceChannels(be.input(x, blocked: blocked), 0..<(c - 1)) }
        try expectParity("pixelShuffle \(shape)", tol: 0) { be in
            try be.pixelShuffle(be.pixelUnshuffle(be.upload(other).concatRepeat(be, 4), factor: 1), factor: 2)
        }
        try expectParity("pixelUnshuffle \(shape)", tol: 0) { be in try be.pixelUnshuffle(be.upsampleNearest(be.input(x, blocked: blocked), factor: 2), factor: 2) }
        for f in [2, 3] {
            try expectParity("upsampleNearest ×\(f) \(shape)", tol: 0) { be in try be.upsampleNearest(be.input(x, blocked: blocked), factor: f) }
        }
        try expectParity("resizeNearest \(shape)", tol: 0) { be in try be.resizeNearest(be.input(x, blocked: blocked), height: shape[2] * 2 + 1, width: shape[3] + 3) }
        try expectParity("reflectPad \(shape)", tol: 0) { be in try be.reflectPad(be.input(x, blocked: blocked), top: 1, bottom: 2, left: 3, right: 1) }
        try expectParity("maxPool \(shape)", tol: 0) { be in try be.maxPool2d(be.input(x, blocked: blocked), kernel: 3, stride: 2, padding: 1) }
        let fir: [Float] = [1, 3, 3, 1].map { $0 / 8 }
        for (up, down, p0, p1) in [(1, 1, 2, 1), (2, 1, 2, 1), (1, 2, 1, 1), (1, 1, 2, 2), (2, 1, 1, 1)] {
            try expectParity("upfirdn2d up\(up) down\(down) pad(\(p0),\(p1)) \(shape)", tol: 1e-6) { be in
                try be.upfirdn2d(be.input(x, blocked: blocked), taps: fir.map { $0 * Float(up) }, up: up, down: down, pad0: p0, pad1: p1)
            }
        }
    }

    @Test(arguments: shapes, [false, true])
    func reductionsMatchReference(_ shape: [Int], _ blocked: Bool) throws {
        var rng = SeededRandom(seed: 99)
        let x = rng.host(shape, scale: 5)
        for axis in 1...3 {
            try expectParity("softmax axis \(axis) \(shape)", tol: 1e-5) { be in try be.softmax(be.input(x, blocked: blocked), axis: axis) }
        }
        try expectParity("pixelNorm \(shape)", tol: 1e-5) { be in try be.pixelNorm(be.input(x, blocked: blocked), eps: 1e-8) }
        try expectParity("meanOverChannels \(shape)", tol: 1e-5) { be in try be.meanOverChannels(be.input(x, blocked: blocked)) }
    }
}

extension Backend {
    /// Uploads `host`, then (when `blocked`) passes it through an identity 1×1 convolution so that the oneDNN
    /// backend holds it in its blocked layout with zero-padded channels — the layout ops see inside a network.
    func input(_ host: HostTensor, blocked: Bool) throws -> Tensor {
        let t = try upload(host)
        guard blocked else { return t }
        let c = host.shape[1]
        var w = [Float](repeating: 0, count: c * c)
        for i in 0..<c { w[i * c + i] = 1 }
        return try conv2d(t, prepareConv2d(weight: HostTensor(shape: [c, c, 1, 1], data: w), bias: nil,
                                           params: Conv2dParams(inChannels: c, outChannels: c, kernel: 1)))
    }
}

extension Tensor {
    /// concat(self, self, …) `times` times (test helper).
    func concatRepeat(_ be: any Backend, _ times: Int) throws -> Tensor {
        try be.concat(Array(repeating: self, count: times))
    }
}

@Suite struct DNNLBackendTests {
    @Test func bf16ReportsUnavailableOnThisCPU() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let hasBF16 = flags.contains("avx512_bf16") || flags.contains("amx_bf16")
        do {
            _ = try DNNLBackend(options: .init(precision: .bf16))
            Issue.record("bf16 backend was created")
        } catch let TensorError.unsupported(_, message) {
            #expect(message.contains(hasBF16 ? "not implemented" : "bf16 unavailable"), "\(message)")
        }
    }

    @Test func memoryStatsShowPeakAndReuse() throws {
        let be = try DNNLBackend()
        var rng = SeededRandom(seed: 3)
        let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: rng.host(p.weightShape), bias: nil, params: p)
        be.resetPeak()
        var t = try be.upload(rng.host([1, 16, 32, 32]))
        for _ in 0..<6 { t = try be.conv2d(t, conv) }
        #expect(be.memoryStats.weightBytes >= 16 * 16 * 9 * 4)
        #expect(be.memoryStats.weightBytes < 2 * 16 * 16 * 9 * 4, "one copy of the weights")
        let s = be.memoryStats
        let tensorBytes = 16 * 32 * 32 * 4
        #expect(s.liveBytes == tensorBytes)
        #expect(s.peakLiveBytes >= s.liveBytes)
        // Input and output of one conv, plus the conv's scratchpad (Winograd transforms), which oneDNN takes from
        // the pool while it runs instead of holding its own per primitive.
        #expect(s.peakLiveBytes <= 2 * tensorBytes + be.largestScratchpad + 4096, "\(s), scratchpad \(be.largestScratchpad)")
        #expect(s.reuseCount >= 4, "\(s)")
    }

    @Test func badInputsThrowTypedErrors() throws {
        let be = Backends.direct
        let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: HostTensor(zeros: p.weightShape), bias: nil, params: p)
        let x = try be.upload(HostTensor(zeros: [1, 8, 4, 4]))
        #expect(throws: TensorError.self) { try be.conv2d(x, conv) }
        #expect(throws: TensorError.self) { try be.channelView(be.upload(HostTensor(zeros: [1, 32, 4, 4])), 3..<20) }
        #expect(throws: TensorError.self) { try be.conv2d(Backends.reference.upload(HostTensor(zeros: [1, 16, 4, 4])), conv) }
    }

    @Test func threadsOptionReachesOpenMPAndDenormalsAreFlushed() throws {
        let be = try DNNLBackend(options: .init(threads: 1))
        #expect(be.threads == 1)
        let before = DNNLBackend.denormalsFlushedOnThisThread
        // 1e-20 · 1e-20 = 1e-40 is a float32 denormal: inside oneDNN it is flushed to zero …
        let p = Conv2dParams(inChannels: 1, outChannels: 1, kernel: 1)
        let conv = try be.prepareConv2d(weight: HostTensor(shape: [1, 1, 1, 1], data: [1e-20]), bias: nil, params: p)
        let y = try be.download(be.conv2d(be.upload(HostTensor(shape: [1, 1, 2, 2], data: [1e-20, 1e-20, 1e-20, 1e-20])), conv))
        #expect(y.data.allSatisfy { $0 == 0 })
        // … while the caller's own floating-point mode is left as it was.
        #expect(DNNLBackend.denormalsFlushedOnThisThread == before)
        #expect(be.name.contains("oneDNN 2."))
        _ = try DNNLBackend(options: .init(threads: ProcessInfo.processInfo.activeProcessorCount))
    }

    /// The thread count holds on every thread that runs the backend's primitives, not only on the one that made it.
    @Test func threadsOptionHoldsOnAnotherThread() throws {
        let be = try DNNLBackend(options: .init(threads: 1))
        let p = Conv2dParams(inChannels: 8, outChannels: 8, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: HostTensor(shape: p.weightShape, data: Array(repeating: 0.1, count: 576)), bias: nil, params: p)
        let x = try HostTensor(shape: [1, 8, 6, 6], data: Array(repeating: 1, count: 288))
        nonisolated(unsafe) var seen: (before: Int, after: Int, error: (any Error)?) = (0, 0, nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            seen.before = DNNLBackend.openMPThreadsOnThisThread
            do { _ = try be.download(be.conv2d(be.upload(x), conv)) } catch { seen.error = error }
            seen.after = DNNLBackend.openMPThreadsOnThisThread
            done.signal()
        }
        thread.start()
        done.wait()
        #expect(seen.error == nil)
        #expect(seen.before == ProcessInfo.processInfo.activeProcessorCount)
        #expect(seen.after == 1)
        #expect(be.threads == 1)
    }
}

/// Channel views of a batch-2 tensor, placed at the alignment each backend reports (16 with AVX-512, 8 with AVX2):
/// a conv reads one view, adds a residual from another and writes into a third.
@Test func batchTwoChannelViewsReadAndWriteTheRightChannels() throws {
    for backend in [Backends.direct, Backends.winograd] {
        let a8 = backend.channelViewAlignment
        var rng = SeededRandom(seed: 21)
        let a = rng.host([2, 2 * a8, 5, 6]), b = rng.host([2, a8, 5, 6])
        let p = Conv2dParams(inChannels: 2 * a8, outChannels: a8, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.2), bias = rng.host([a8])
        try expectParity("batch-2 views \(backend.name) (alignment \(a8))", tol: 1e-4, on: backend) { be in
            let cat = try be.zeros(TensorShape(n: 2, c: 4 * a8, h: 5, w: 6))
            try be.copy(be.upload(a), into: be.channelView(cat, 0..<(2 * a8)))
            try be.copy(be.upload(b), into: be.channelView(cat, (3 * a8)..<(4 * a8)))
            _ = try be.conv2d(be.channelView(cat, 0..<(2 * a8)), be.prepareConv2d(weight: w, bias: bias, params: p),
                              epilogue: Epilogue(activation: .relu, residual: be.channelView(cat, (3 * a8)..<(4 * a8))),
                              into: be.channelView(cat, (2 * a8)..<(3 * a8)))
            return cat
        }
    }
}

/// The shapes that failed on AVX-512 CPUs (issue 17): a conv whose first run picked Winograd (oneDNN's Winograd
/// weights format cannot be reordered into anything else) and whose later run needs another weights layout — a
/// small or odd tile, a batch of 2, a folded output scale. Each must run and match the reference. Without the fix
/// the second run threw "weights reorder … unimplemented" on AVX-512 (with AVX2 oneDNN has no Winograd, and the
/// test checks parity only).
@Test(arguments: [
    ConvCase(cin: 12, cout: 12, k: 3, stride: 1, pad: 1, groups: 1, h: 10, w: 5),      // tiled x2plus-layout upscale
    ConvCase(cin: 16, cout: 3, k: 3, stride: 1, pad: 1, groups: 1, h: 176, w: 144),    // a batch of small images
    ConvCase(cin: 3, cout: 16, k: 3, stride: 1, pad: 1, groups: 1, h: 9, w: 11),
    ConvCase(cin: 64, cout: 32, k: 3, stride: 1, pad: 1, groups: 1, h: 2, w: 47),      // RetinaFace, downscaled photo
    ConvCase(cin: 64, cout: 32, k: 3, stride: 1, pad: 1, groups: 1, h: 8, w: 188),
    ConvCase(cin: 16, cout: 16, k: 3, stride: 1, pad: 1, groups: 1, h: 4, w: 4, n: 2), // GPEN face batch
])
func winogradLayersRunAtEveryLaterShape(_ c: ConvCase) throws {
    var rng = SeededRandom(seed: 17)
    let p = c.params
    let w = rng.host(p.weightShape, scale: 0.2), b = rng.host([c.cout])
    let first = rng.host([1, c.cin, 32, 32])
    let x = rng.host([c.n, c.cin, c.h, c.w]), r = rng.host([c.n, c.cout, c.h, c.w])
    let be = try DNNLBackend(options: .init(winograd: true))
    let conv = try be.prepareConv2d(weight: w, bias: b, params: p)
    let refConv = try Backends.reference.prepareConv2d(weight: w, bias: b, params: p)
    func check(_ label: String, _ body: (any Backend, PreparedConv2d) throws -> Tensor) throws {
        let want = try Backends.reference.download(body(Backends.reference, refConv))
        let got = try be.download(body(be, conv))
        let diff = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .nan
        #expect(got.shape == want.shape && diff <= 1e-4, "\(c) \(label): max |diff| \(diff)")
    }
    try check("32×32 first") { be, cv in try be.conv2d(be.upload(first), cv) }
    try check("then \(c.n)×\(c.h)×\(c.w)") { be, cv in try be.conv2d(be.upload(x), cv) }
    try check("scale 0.5 + residual") { be, cv in
        try be.conv2d(be.upload(x), cv, epilogue: Epilogue(outputScale: 0.5, residual: try be.upload(r), residualScale: 1))
    }
    try check("leaky ReLU") { be, cv in try be.conv2d(be.upload(x), cv, epilogue: .activation(.leakyReLU(slope: 0.2))) }
}

/// A layer whose preferred algorithm cannot be built (here: injected, as a failing primitive, scratchpad or weights
/// reorder would) falls back to the next one, gives the right result, and is reported once per layer and algorithm.
@Test func aFailingCandidateFallsBackAndIsReportedOnce() throws {
    var rng = SeededRandom(seed: 5)
    let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
    let w = rng.host(p.weightShape, scale: 0.2), b = rng.host([16])
    let be = try DNNLBackend(options: .init(winograd: true))
    let heard = Mutex<[String]>([])
    be.diagnostics = { line in heard.withLock { $0.append(line) } }
    be.injectedFault = { $0 == "winograd" }
    let conv = try be.prepareConv2d(weight: w, bias: b, params: p)
    let ref = try Backends.reference.prepareConv2d(weight: w, bias: b, params: p)
    for (h, wd) in [(32, 32), (9, 11), (32, 32)] {
        let x = rng.host([1, 16, h, wd])
        let want = try Backends.reference.download(Backends.reference.conv2d(Backends.reference.upload(x), ref))
        let got = try be.download(be.conv2d(be.upload(x), conv))
        let diff = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .nan
        #expect(diff <= 1e-4, "\(h)×\(wd): max |diff| \(diff)")
    }
    #expect(be.fallbackNotes.count == 1)
    #expect(be.fallbackNotes.first?.contains("winograd") == true && be.fallbackNotes.first?.contains("conv2d 16→16") == true)
    #expect(heard.withLock { $0 } == be.fallbackNotes)
    // When every algorithm fails the error says why instead of a generic "no implementation".
    be.injectedFault = { _ in true }
    let conv2 = try? be.prepareConv2d(weight: w, bias: b, params: p)
    #expect(conv2 == nil)
    #expect(throws: TensorError.self) { _ = try be.conv2d(be.upload(rng.host([1, 16, 7, 7])), conv) }
}
