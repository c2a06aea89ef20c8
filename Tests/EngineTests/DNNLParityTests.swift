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

@Suite struct DNNLParityTests {
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

}

@Suite struct DNNLBackendTests {
    /// GPEN writes its scaled noise straight into its half of the concatenation: one scaled reorder into a channel view
    /// of the blocked buffer gives scale·x there and leaves the other channels untouched (as the reference does).
    @Test func affineIntoAChannelView() throws {
        var rng = SeededRandom(seed: 77)
        let be = Backends.winograd
        let a = be.channelViewAlignment, x = rng.host([1, a, 9, 6]), other = rng.host([1, a, 9, 6])
        let cat = try be.concat([be.upload(other), be.upload(other)])
        try be.affine(be.upload(x), scale: 0.37, into: be.channelView(cat, a..<(2 * a)))
        let out = try be.download(cat)
        let half = x.data.count
        #expect(Array(out.data[..<half]) == other.data)
        #expect(zip(out.data[half...], x.data).allSatisfy { abs($0 - 0.37 * $1) <= 1e-7 * max(1, abs($1)) })
        #expect(throws: TensorError.self) { try be.affine(be.upload(x), scale: 2, into: be.channelView(cat, 0..<(2 * a))) }
    }

    /// bf16 runs where oneDNN's effective ISA has avx512_bf16/AMX, or emulated on other AVX-512 CPUs when asked; it
    /// is refused with a reason everywhere else (the AVX2 path, and AVX-512 without emulation and without bf16).
    @Test func bf16AvailabilityFollowsTheISA() throws {
        let flags = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let native = DNNLBackend.bf16Unavailable(emulation: false) == nil
        let avx512 = CPUInfo.isa.hasPrefix("avx512")
        if native { #expect(flags.contains("avx512_bf16") || flags.contains("amx_bf16")) }
        for emulation in [false, true] {
            let expected = native || (emulation && avx512)
            do {
                let be = try DNNLBackend(options: .init(precision: .bf16, bf16Emulation: emulation))
                #expect(expected, "bf16 backend was created on \(CPUInfo.isa) with emulation \(emulation)")
                #expect(be.name.contains("bf16"))
            } catch let TensorError.unsupported(_, message) {
                #expect(!expected, "\(message)")
                #expect(message.contains("bf16 unavailable") && message.contains(CPUInfo.isa), "\(message)")
            }
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
        // a vector prepared by another backend, and one of the wrong length
        let x16 = try be.upload(HostTensor(zeros: [1, 16, 4, 4]))
        #expect(throws: TensorError.self) { try be.biasActivation(x16, bias: Backends.reference.prepareVector(Array(repeating: 1, count: 16)), activation: .relu) }
        #expect(throws: TensorError.self) { try be.activation(x16, .prelu(slopes: be.prepareVector([0.1, 0.2]))) }
    }

    /// `trim()` gives back the cached free buffers and primitives; the next run rebuilds what it needs and gives the
    /// same result.
    @Test func trimReleasesCachesAndTheNextRunStillWorks() throws {
        let be = try DNNLBackend()
        var rng = SeededRandom(seed: 6)
        let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: rng.host(p.weightShape, scale: 0.2), bias: nil, params: p)
        let x = rng.host([1, 16, 20, 20])
        func run() throws -> HostTensor { try be.download(be.activation(be.conv2d(be.upload(x), conv), .sigmoid)) }
        let first = try run()
        #expect(be.memoryStats.reservedBytes > be.memoryStats.liveBytes)
        #expect(be.cachedPrimitives > 0)
        be.trim()
        #expect(be.memoryStats.reservedBytes == be.memoryStats.liveBytes)
        #expect(be.cachedPrimitives == 0)
        #expect(try run().data == first.data)
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

/// The own Winograd F(4×4,3×3) kernel (CWinograd) on this CPU's blocked layout (nChw16c with AVX-512, nChw8c with
/// AVX2 or under ONEDNN_MAX_CPU_ISA=AVX2): every epilogue it fuses, edge tiles, a batch of two, a channel-view source
/// and destination, against the reference backend. `winogradMinPixels: 0` lets it take these small maps.
@Suite struct OwnWinogradTests {
    /// `forward --profile` on the CPU: the own kernel's per-call weight transform (GPEN's style scales it, so it is
    /// redone every call) is a row of its own beside the convolution, not time "in no op".
    @Test func theProfileTimesTheWeightTransformApart() throws {
        let be = try DNNLBackend(options: .init(winograd: true, winogradMinPixels: 0))
        var rng = SeededRandom(seed: 5)
        let p = Conv2dParams(inChannels: 32, outChannels: 16, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: rng.host(p.weightShape, scale: 0.15), bias: rng.host([16]), params: p)
        let x = try be.upload(rng.host([1, 32, 8, 8]))
        #expect(try be.startProfile())
        let before = be.ownWinogradRuns
        _ = try be.download(be.conv2d(x, conv))
        let profile = try #require(try be.finishProfile())
        #expect(be.ownWinogradRuns == before + 1, "the own kernel did not run")
        let names = profile.entries.map(\.name)
        #expect(names.contains("conv2d: own winograd weight transform 32→16") && names.contains("conv2d: own winograd F(4,3) 32→16"), "\(names)")
    }

    @Test(arguments: [(1, 13, 11), (2, 8, 9), (1, 4, 4), (1, 1, 7)])
    func everyFusedEpilogueMatchesTheReference(n: Int, h: Int, w: Int) throws {
        let be = try DNNLBackend(options: .init(winograd: true, winogradMinPixels: 0))   // own counter: cases run in parallel
        var rng = SeededRandom(seed: UInt64(31 + h))
        let p = Conv2dParams(inChannels: 32, outChannels: 16, kernel: 3, padding: 1)
        let wt = rng.host(p.weightShape, scale: 0.15), b = rng.host([16])
        let x = rng.host([n, 32, h, w]), r = rng.host([n, 16, h, w])
        let scale = try HostTensor(shape: [n, 16, 1, 1], data: (0..<(n * 16)).map { 0.5 + Float($0 % 7) * 0.1 })
        let slopes = (0..<16).map { Float($0) * 0.05 - 0.3 }
        let epilogues: [(String, (any Backend) throws -> Epilogue)] = [
            ("bias", { _ in .identity }),
            ("relu", { _ in .activation(.relu) }),
            ("leaky", { _ in .activation(.leakyReLU(slope: 0.2)) }),
            ("scaled leaky", { _ in .activation(.scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot())) }),
            ("prelu", { be in .activation(.prelu(slopes: try be.prepareVector(slopes))) }),
            ("channel scale + leaky", { be in Epilogue(channelScale: try be.upload(scale), activation: .leakyReLU(slope: 0.2)) }),
            ("0.2·y + residual", { be in Epilogue(outputScale: 0.2, residual: try be.upload(r)) }),
        ]
        for (label, epilogue) in epilogues {
            let before = be.ownWinogradRuns
            try expectParity("own winograd \(label) \(n)×\(h)×\(w)", tol: 1e-5, on: be) { be in
                try be.conv2d(be.upload(x), be.prepareConv2d(weight: wt, bias: b, params: p), epilogue: epilogue(be))
            }
            #expect(be.ownWinogradRuns == before + 1, "\(label): the own kernel did not run")
        }
        // no bias
        try expectParity("own winograd without bias", tol: 1e-5, on: be) { be in
            try be.conv2d(be.upload(x), be.prepareConv2d(weight: wt, bias: nil, params: p))
        }
    }

    /// ParseNet's ReflectionPad2d(1) + unpadded 3×3 conv as one own-kernel convolution reading the reflected border,
    /// against the reference's composition; maps down to 2 rows (the smallest reflection padding 1 allows).
    @Test(arguments: [(1, 13, 11), (2, 8, 9), (1, 2, 5), (1, 6, 2)])
    func reflectionPaddingMatchesTheComposition(n: Int, h: Int, w: Int) throws {
        let be = try DNNLBackend(options: .init(winograd: true, winogradMinPixels: 0))
        var rng = SeededRandom(seed: UInt64(77 + h * w))
        let blk = be.blockedLayout.channelBlock
        let p = Conv2dParams(inChannels: 2 * blk, outChannels: blk, kernel: 3, padding: 0)
        let wt = rng.host(p.weightShape, scale: 0.15), b = rng.host([blk])
        let x = rng.host([n, 2 * blk, h, w]), r = rng.host([n, blk, h, w])
        for (label, withResidual) in [("leaky", false), ("leaky + residual", true)] {
            let before = be.ownWinogradRuns
            try expectParity("reflect-padded own winograd \(label) \(n)×\(h)×\(w)", tol: 1e-5, on: be) { be in
                let e = Epilogue(activation: .leakyReLU(slope: 0.2), residual: withResidual ? try be.upload(r) : nil)
                return try be.reflectPadConv2d(be.upload(x), padding: 1, be.prepareConv2d(weight: wt, bias: b, params: p), epilogue: e)
            }
            #expect(be.ownWinogradRuns == before + 1, "\(label): the own kernel did not run")
        }
        // Channel counts outside whole blocks take the composition (reflectPad, then oneDNN).
        let odd = Conv2dParams(inChannels: 3, outChannels: 5, kernel: 3, padding: 0)
        let wo = rng.host(odd.weightShape), xo = rng.host([n, 3, h, w])
        let before = be.ownWinogradRuns
        try expectParity("reflect-padded conv 3→5 \(n)×\(h)×\(w)", tol: 1e-5, on: be) { be in
            try be.reflectPadConv2d(be.upload(xo), padding: 1, be.prepareConv2d(weight: wo, bias: nil, params: odd), epilogue: .identity)
        }
        #expect(be.ownWinogradRuns == before)
    }

    /// GPEN's modulation folded into the own kernel's weights (conv of x·s) against the reference's composition, with
    /// demodulation as a channel scale and into a channel view; two images take the composition (per-image weights).
    @Test func inputScaleFoldsIntoTheWeights() throws {
        let be = try DNNLBackend(options: .init(winograd: true, winogradMinPixels: 0))
        let blk = be.blockedLayout.channelBlock
        var rng = SeededRandom(seed: 123)
        let p = Conv2dParams(inChannels: 2 * blk, outChannels: blk, kernel: 3, padding: 1)
        let wt = rng.host(p.weightShape, scale: 0.2)
        let x = rng.host([1, 2 * blk, 9, 7]), s = rng.host([1, 2 * blk, 1, 1]), d = rng.host([1, blk, 1, 1])
        let before = be.ownWinogradRuns
        try expectParity("conv of x·s, demodulated, into a view", tol: 1e-5, on: be) { be in
            let cat = try be.zeros(TensorShape(n: 1, c: 2 * blk, h: 9, w: 7))
            let e = Epilogue(channelScale: try be.upload(d), activation: .scaledLeakyReLU(slope: 0.2, gain: 1.5))
            _ = try be.conv2d(be.upload(x), be.prepareConv2d(weight: wt, bias: nil, params: p), inputScale: be.upload(s), epilogue: e,
                              into: be.channelView(cat, blk..<(2 * blk)))
            return cat
        }
        #expect(be.ownWinogradRuns == before + 1)
        let x2 = rng.host([2, 2 * blk, 6, 5]), s2 = rng.host([2, 2 * blk, 1, 1])
        try expectParity("conv of x·s, two images", tol: 1e-5, on: be) { be in
            try be.conv2d(be.upload(x2), be.prepareConv2d(weight: wt, bias: nil, params: p), inputScale: be.upload(s2), epilogue: .identity, into: nil)
        }
    }

    /// A 1×1 conv of x·s (GPEN's ToRGB: 3 outputs, bias, the upsampled skip as residual) scales a per-call copy of its
    /// weights instead of x: same result as the composition, and no x-sized tensor is allocated on the way.
    @Test func inputScaleOfA1x1ConvGoesIntoItsWeights() throws {
        let be = try DNNLBackend(options: .init(threads: 2))
        var rng = SeededRandom(seed: 124)
        let p = Conv2dParams(inChannels: 64, outChannels: 3, kernel: 1)
        let wt = rng.host(p.weightShape, scale: 0.2), b = rng.host([3])
        let x = rng.host([1, 64, 40, 36]), s = rng.host([1, 64, 1, 1]), r = rng.host([1, 3, 40, 36])
        try expectParity("1×1 conv of x·s with bias and residual", tol: 1e-5, on: be) { be in
            let conv = try be.prepareConv2d(weight: wt, bias: b, params: p)
            var e = Epilogue.identity
            e.residual = try be.upload(r)
            return try be.conv2d(be.upload(x), conv, inputScale: be.upload(s), epilogue: e, into: nil)
        }
        let conv = try be.prepareConv2d(weight: wt, bias: b, params: p)
        let xs = try be.upload(x), ss = try be.upload(s)
        _ = try be.conv2d(xs, conv, inputScale: ss, epilogue: .identity, into: nil)   // first run: plans and weights
        let scope = MemoryScope()
        _ = try scope.measure { try be.conv2d(xs, conv, inputScale: ss, epilogue: .identity, into: nil) }
        let xBytes = 64 * 40 * 36 * 4
        #expect(scope.peakLiveBytes < xBytes / 2, "peak \(scope.peakLiveBytes) B: an x-sized copy (\(xBytes) B) was made")
        // a scale from another backend is refused, not read
        let other = try DNNLBackend(options: .init(threads: 2))
        #expect(throws: TensorError.self) { try be.conv2d(xs, conv, inputScale: other.upload(s), epilogue: .identity, into: nil) }
    }

    /// GPEN's bias + FusedLeakyReLU over its own concat buffer runs in place (no second 128 MiB tensor at 512²); a view
    /// gets a new tensor and keeps its parent intact.
    @Test func biasActivationReusingWorksInPlace() throws {
        let be = try DNNLBackend(options: .init(threads: 2))
        var rng = SeededRandom(seed: 8)
        let blk = be.blockedLayout.channelBlock
        let x = try be.input(rng.host([1, 2 * blk, 5, 4], scale: 2), blocked: true)
        let bias = try be.prepareVector(rng.host([2 * blk]).data)
        let want = try be.download(be.biasActivation(x, bias: bias, activation: .leakyReLU(slope: 0.2)))
        let before = try be.download(x)
        let view = try be.channelView(x, blk..<(2 * blk))
        let fromView = try be.biasActivationReusing(view, bias: be.prepareVector(Array(rng.host([blk]).data)), activation: .relu)
        let parentAfter = try be.download(x)
        #expect(fromView !== view)
        #expect(parentAfter == before)
        let y = try be.biasActivationReusing(x, bias: bias, activation: .leakyReLU(slope: 0.2))
        #expect(y === x)
        let got = try be.download(y)
        #expect(got == want)
    }

    /// RRDB's dense block: the source is a channel view of the concat buffer, the result goes into the next view.
    @Test func channelViewsInAndOut() throws {
        let be = try DNNLBackend(options: .init(winograd: true, winogradMinPixels: 0))
        let blk = be.blockedLayout.channelBlock
        var rng = SeededRandom(seed: 5)
        let cin = 2 * blk, cout = blk, total = 4 * blk
        let p = Conv2dParams(inChannels: cin, outChannels: cout, kernel: 3, padding: 1)
        let wt = rng.host(p.weightShape, scale: 0.2), b = rng.host([cout])
        let buffer = rng.host([1, total, 10, 14])
        let before = be.ownWinogradRuns
        try expectParity("own winograd channel views", tol: 1e-5, on: be) { be in
            let all = try be.upload(buffer)
            let src = try be.channelView(all, 0..<cin)
            let dst = try be.channelView(all, cin..<(cin + cout))
            _ = try be.conv2d(src, be.prepareConv2d(weight: wt, bias: b, params: p), epilogue: .activation(.leakyReLU(slope: 0.2)), into: dst)
            return all   // the untouched channels must stay as they were
        }
        #expect(be.ownWinogradRuns == before + 1)
    }

    /// A layer that ran on the own kernel keeps working when a later call (a smaller map, the direct path) needs
    /// oneDNN's layout: its weights come from the own kernel's OIHW copy, held once.
    @Test func smallMapsAfterTheOwnKernelUseItsWeights() throws {
        let be = try DNNLBackend(options: .init(winograd: true, winogradMinPixels: 100))
        var rng = SeededRandom(seed: 9)
        let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
        let wt = rng.host(p.weightShape, scale: 0.2)
        let conv = try be.prepareConv2d(weight: wt, bias: nil, params: p)
        let refConv = try Backends.reference.prepareConv2d(weight: wt, bias: nil, params: p)
        for (h, w, own) in [(12, 12, true), (6, 5, false), (11, 10, true)] {
            let x = rng.host([1, 16, h, w])
            let before = be.ownWinogradRuns
            let got = try be.download(be.conv2d(be.upload(x), conv))
            let want = try Backends.reference.download(Backends.reference.conv2d(Backends.reference.upload(x), refConv))
            let diff = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .nan
            #expect(diff <= 1e-5, "\(h)×\(w): max |diff| \(diff)")
            #expect((be.ownWinogradRuns == before + 1) == own, "\(h)×\(w)")
        }
        // OIHW copy plus, for the direct path, oneDNN's copy: the transformed weights (36/9 = 4× larger) are not kept.
        #expect(be.memoryStats.weightBytes < 36 * 16 * 16 * 4, "\(be.memoryStats)")
    }
}

/// Transposed convolutions run as stride² ordinary convolutions interleaved into the output (DNNLTransposedPhases):
/// kernel/stride/padding/output-padding combinations, a batch of two, the whole epilogue (channel scale, activation,
/// output scale, residual), against the reference backend; and a kernel smaller than the stride, which keeps
/// oneDNN's deconvolution.
@Suite struct TransposedPhaseTests {
    @Test(arguments: [(3, 2, 0, 0), (3, 2, 1, 1), (4, 2, 1, 0), (2, 2, 0, 0), (5, 3, 2, 1), (3, 3, 0, 0), (1, 2, 0, 0)])
    func phasesMatchTheReference(k: Int, s: Int, pad: Int, outPad: Int) throws {
        let be = Backends.winograd
        var rng = SeededRandom(seed: UInt64(100 + 10 * k + s))
        let p = ConvTranspose2dParams(inChannels: 24, outChannels: 16, kernel: k, stride: s, padding: pad, outputPadding: outPad)
        let wt = rng.host(p.weightShape, scale: 0.2), b = rng.host([16]), x = rng.host([2, 24, 7, 5])
        let (oh, ow) = p.outputSize(h: 7, w: 5)
        let r = rng.host([2, 16, oh, ow])
        let scale = try HostTensor(shape: [2, 16, 1, 1], data: (0..<32).map { 0.6 + Float($0 % 5) * 0.1 })
        let layer = try be.prepareConvTranspose2d(weight: wt, bias: b, params: p)
        let phased = (layer.payload as? ConvState)?.phases != nil
        #expect(phased == (k >= s), "k\(k) s\(s): phases \(phased)")
        for withResidual in [false, true] {
            try expectParity("transposed k\(k) s\(s) p\(pad) op\(outPad) residual \(withResidual)", tol: 1e-5, on: be) { be in
                let e = Epilogue(channelScale: try be.upload(scale), activation: .scaledLeakyReLU(slope: 0.2, gain: 1.4),
                                 outputScale: 0.5, residual: withResidual ? try be.upload(r) : nil, residualScale: 0.3)
                return try be.convTranspose2d(be.upload(x), be.prepareConvTranspose2d(weight: wt, bias: b, params: p), epilogue: e)
            }
        }
    }

    /// GPEN hands its OIHW weights over as they are: the phases cut from them are the same taps as from the IOHW copy
    /// (bit-identical output on the oneDNN backend), and the protocol's default (reference backend) transposes.
    @Test(arguments: [(3, 2, 0, 0), (4, 2, 1, 0), (5, 3, 2, 1), (1, 2, 0, 0)])
    func oihwWeightsGiveTheSameLayer(k: Int, s: Int, pad: Int, outPad: Int) throws {
        var rng = SeededRandom(seed: UInt64(300 + 10 * k + s))
        let p = ConvTranspose2dParams(inChannels: 24, outChannels: 16, kernel: k, stride: s, padding: pad, outputPadding: outPad)
        let oihw = rng.host([16, 24, k, k], scale: 0.2), b = rng.host([16]), x = rng.host([1, 24, 7, 5])
        var iohw = HostTensor(zeros: p.weightShape)
        for o in 0..<16 { for i in 0..<24 { for t in 0..<(k * k) { iohw.data[(i * 16 + o) * k * k + t] = oihw.data[(o * 24 + i) * k * k + t] } } }
        for be in [Backends.winograd as any Backend, ReferenceBackend()] {
            let e = Epilogue(activation: .leakyReLU(slope: 0.2))
            let viaIOHW = try be.download(be.convTranspose2d(be.upload(x), be.prepareConvTranspose2d(weight: iohw, bias: b, params: p), epilogue: e))
            let viaOIHW = try be.download(be.convTranspose2d(be.upload(x), be.prepareConvTranspose2d(oihwWeight: oihw, bias: b, params: p), epilogue: e))
            #expect(viaOIHW == viaIOHW, "\(type(of: be)) k\(k) s\(s)")
        }
        // wrong layouts are refused with both shapes named
        #expect(throws: TensorError.self) { try Backends.winograd.prepareConvTranspose2d(oihwWeight: iohw, bias: b, params: p) }
    }
}

/// RRDBNet's "nearest ×2, then a 3×3 convolution" as four 2×2 convolutions on the small input (oneDNN backend) against
/// the reference backend's composition; a residual epilogue (not taken by the phases) still matches.
@Suite struct UpsampleConvPhaseTests {
    @Test(arguments: [(1, 7, 5), (2, 4, 6)])
    func phasesMatchTheComposition(n: Int, h: Int, w: Int) throws {
        let be = try DNNLBackend(options: .init(winograd: true))
        var rng = SeededRandom(seed: UInt64(500 + h))
        let p = Conv2dParams(inChannels: 16, outChannels: 24, kernel: 3, padding: 1)
        let wt = rng.host(p.weightShape, scale: 0.2), b = rng.host([24]), x = rng.host([n, 16, h, w])
        let r = rng.host([n, 24, 2 * h, 2 * w])
        let conv = try be.prepareConv2d(weight: wt, bias: b, params: p)
        let refConv = try Backends.reference.prepareConv2d(weight: wt, bias: b, params: p)
        for withResidual in [false, true] {
            func run(_ be: any Backend, _ c: PreparedConv2d) throws -> HostTensor {
                let e = Epilogue(activation: .leakyReLU(slope: 0.2), residual: withResidual ? try be.upload(r) : nil)
                return try be.download(be.upsampleNearestConv2d(be.upload(x), factor: 2, c, epilogue: e))
            }
            let got = try run(be, conv), want = try run(Backends.reference, refConv)
            #expect(got.shape == [n, 24, 2 * h, 2 * w])
            let diff = zip(got.data, want.data).map { abs($0 - $1) }.max() ?? .nan
            #expect(diff <= 1e-5, "residual \(withResidual): max |diff| \(diff)")
        }
        #expect((conv.payload as? ConvState)?.upsamplePhases?.count == 4, "the phases were not used")
    }
}
