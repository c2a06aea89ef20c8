import BackendCUDA
import EnhanceKit
import Foundation
import TestSupport
import Synchronization
import Testing
@testable import TensorCore

// Parity of every registered backend with the reference backend, op by op (candle's `test_device!`, ggml's
// test-backend-ops): the targets are the devices `ModelFactory.parityConfigurations` reports as available here, plus a
// partial backend that implements a few ops and takes the rest from the reference fallback. A device added to the
// registry joins every test below; an op a target does not implement itself is reported as skipped (cancelled).

/// One backend under test.
struct ParityTarget: Sendable, CustomStringConvertible {
    let description: String
    /// A new backend of this kind (for tests that read its memory statistics, which others would disturb).
    let make: @Sendable () throws -> any Backend
    /// The instance the op tests share.
    let backend: any Backend

    init(_ description: String, make: @escaping @Sendable () throws -> any Backend) {
        self.description = description
        self.make = make
        backend = try! make()
    }

    /// Every target, created once for the whole suite.
    static let all: [ParityTarget] = ModelFactory.parityConfigurations.map { config in
        ParityTarget(config.name) { try ModelFactory.makeBackend(config.engine) }
    } + [ParityTarget("partial (host memory, reference fallback)") { HostPartialBackend() }] + cudaEmulator

    /// The CUDA backend on the host emulator of the driver, NVRTC and cuDNN (fp32; NCHW and NHWC), when it built
    /// (CUDATests fails when it does not).
    static var cudaEmulator: [ParityTarget] {
        guard case let .success(emu) = CUDAEmulator.build else { return [] }
        return [ParityTarget("cuda (host emulator, fp32)") {
            try CUDABackend(options: .init(precision: .fp32, driverPath: emu.driver, libraryFolders: [emu.folder]))
        }, ParityTarget("cuda (host emulator, fp32, nhwc)") {
            try CUDABackend(options: .init(precision: .fp32, layout: .nhwc, driverPath: emu.driver, libraryFolders: [emu.folder]))
        }]
    }

    /// Skips the current test case, saying why, unless the target implements every op in `ops` itself.
    func require(_ ops: BackendOp...) throws {
        let missing = ops.filter { !backend.supports($0) }
        guard missing.isEmpty else {
            // The console reporter shows a cancelled case as passed: say it on stderr too.
            FileHandle.standardError.write(Data("⤼ skipped: \(description) does not implement \(missing.map(\.rawValue).joined(separator: ", "))\n".utf8))
            try Test.cancel("skipped: \(description) does not implement \(missing.map(\.rawValue).joined(separator: ", "))")
        }
    }
}

/// Runs `body` on the reference backend and on `backend`, downloads both results and compares them.
/// Fails when max |a − b| > tol · max(1, max |reference|).
func expectParity(_ label: String, tol: Float, on backend: any Backend,
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
    #expect(maxDiff <= bound && !maxDiff.isNaN, "\(label) on \(backend.name): max |diff| \(maxDiff) > \(bound) (max |ref| \(maxRef))",
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

@Suite struct BackendParityTests {
    @Test(arguments: ParityTarget.all, convCases)
    func convMatchesReference(_ t: ParityTarget, _ c: ConvCase) throws {
        try t.require(.conv2d)
        var rng = SeededRandom(seed: UInt64(c.cin * 1000 + c.cout * 10 + c.k))
        let w = rng.host(c.params.weightShape, scale: 0.3), b = rng.host([c.cout])
        let x = rng.host([c.n, c.cin, c.h, c.w])
        try expectParity("conv \(c)", tol: 1e-4, on: t.backend) { be in
            try be.conv2d(be.upload(x), be.prepareConv2d(weight: w, bias: b, params: c.params))
        }
    }

    @Test(arguments: ParityTarget.all, ["leaky", "scaledLeaky", "relu", "prelu", "sigmoid", "channelScale", "residual", "all"])
    func fusedEpilogueMatchesReference(_ t: ParityTarget, _ kind: String) throws {
        try t.require(.conv2d, .vector)
        var rng = SeededRandom(seed: 5)
        let p = Conv2dParams(inChannels: 16, outChannels: 32, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.3), b = rng.host([32])
        let x = rng.host([1, 16, 9, 8]), res = rng.host([1, 32, 9, 8]), scale = rng.host([1, 32, 1, 1])
        let slopes = (0..<32).map { Float($0) / 40 }
        try expectParity("epilogue \(kind)", tol: 1e-4, on: t.backend) { be in
            var e = Epilogue()
            switch kind {
            case "leaky": e.activation = .leakyReLU(slope: 0.2)
            case "scaledLeaky": e.activation = .scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot())
            case "relu": e.activation = .relu
            case "prelu": e.activation = .prelu(slopes: try be.prepareVector(slopes))
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

    /// The RRDB dense-block pattern: each conv writes straight into its channel slice of one buffer.
    @Test(arguments: ParityTarget.all)
    func denseBlockWritesIntoChannelSlices(_ t: ParityTarget) throws {
        try t.require(.conv2d)
        var rng = SeededRandom(seed: 9)
        let nf = 32, gc = 16, h = 10, w = 9
        let x = rng.host([1, nf, h, w])
        let weights = (0..<5).map { i in rng.host([i == 4 ? nf : gc, nf + i * gc, 3, 3], scale: 0.1) }
        let biases = (0..<5).map { i in rng.host([i == 4 ? nf : gc]) }
        try expectParity("dense block", tol: 1e-4, on: t.backend) { be in
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

    /// Channel views of a batch-2 tensor, placed at the alignment each backend reports (16 with AVX-512, 8 with
    /// AVX2, 1 on the host): a conv reads one view, adds a residual from another and writes into a third.
    @Test(arguments: ParityTarget.all)
    func batchTwoChannelViewsReadAndWriteTheRightChannels(_ t: ParityTarget) throws {
        try t.require(.conv2d)
        let a8 = max(t.backend.channelViewAlignment, 2)
        var rng = SeededRandom(seed: 21)
        let a = rng.host([2, 2 * a8, 5, 6]), b = rng.host([2, a8, 5, 6])
        let p = Conv2dParams(inChannels: 2 * a8, outChannels: a8, kernel: 3, padding: 1)
        let w = rng.host(p.weightShape, scale: 0.2), bias = rng.host([a8])
        try expectParity("batch-2 views (alignment \(a8))", tol: 1e-4, on: t.backend) { be in
            let cat = try be.zeros(TensorShape(n: 2, c: 4 * a8, h: 5, w: 6))
            try be.copy(be.upload(a), into: be.channelView(cat, 0..<(2 * a8)))
            try be.copy(be.upload(b), into: be.channelView(cat, (3 * a8)..<(4 * a8)))
            _ = try be.conv2d(be.channelView(cat, 0..<(2 * a8)), be.prepareConv2d(weight: w, bias: bias, params: p),
                              epilogue: Epilogue(activation: .relu, residual: be.channelView(cat, (3 * a8)..<(4 * a8))),
                              into: be.channelView(cat, (2 * a8)..<(3 * a8)))
            return cat
        }
    }

    @Test(arguments: ParityTarget.all, [(3, 16, 3, 2, 0, 1, 5, 6), (16, 8, 3, 2, 0, 1, 4, 4), (16, 16, 4, 2, 1, 1, 5, 7), (16, 16, 3, 2, 1, 16, 6, 5)])
    func transposedConvMatchesReference(_ t: ParityTarget, _ a: (Int, Int, Int, Int, Int, Int, Int, Int)) throws {
        try t.require(.convTranspose2d)
        let (cin, cout, k, s, pad, g, h, w) = a
        var rng = SeededRandom(seed: UInt64(cin + cout + k))
        let p = ConvTranspose2dParams(inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: pad, groups: g)
        let wt = rng.host(p.weightShape, scale: 0.3), b = rng.host([cout]), x = rng.host([1, cin, h, w])
        try expectParity("convTranspose \(a)", tol: 1e-4, on: t.backend) { be in
            try be.convTranspose2d(be.upload(x), be.prepareConvTranspose2d(weight: wt, bias: b, params: p),
                                   epilogue: .activation(.leakyReLU(slope: 0.2)))
        }
    }

    @Test(arguments: ParityTarget.all)
    func linearMatchesReferenceOnFlattenedInput(_ t: ParityTarget) throws {
        try t.require(.linear)
        var rng = SeededRandom(seed: 12)
        let w = rng.host([24, 16 * 3 * 3], scale: 0.1), b = rng.host([24]), x = rng.host([2, 16, 3, 3])
        let w2 = rng.host([8, 24], scale: 0.3), scale = rng.host([2, 8, 1, 1])
        try expectParity("linear", tol: 1e-4, on: t.backend) { be in
            let h = try be.linear(be.upload(x), be.prepareLinear(weight: w, bias: b),
                                  epilogue: .activation(.scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot())))
            return try be.linear(h, be.prepareLinear(weight: w2, bias: nil), epilogue: Epilogue(channelScale: try be.upload(scale)))
        }
    }

    /// Inputs as uploaded and as a network's layers leave them (`blocked`: after an identity 1×1 conv, which puts
    /// them in a backend's own activation layout).
    static let inputs: [(shape: [Int], blocked: Bool)] = [[1, 5, 7, 6], [1, 32, 8, 9], [2, 17, 4, 5]].flatMap { s in [(s, false), (s, true)] }

    @Test(arguments: ParityTarget.all, inputs)
    func activationsMatchReference(_ t: ParityTarget, _ input: (shape: [Int], blocked: Bool)) throws {
        try t.require(.activation, .biasActivation, .vector)
        let (shape, blocked) = input
        var rng = SeededRandom(seed: UInt64(shape.reduce(0, +)))
        let x = rng.host(shape, scale: 3), c = shape[1]
        let bias = rng.host([c]).data, slopes = (0..<c).map { Float($0) * 0.05 }
        let acts: [(String, (any Backend) throws -> Activation)] = [
            ("relu", { _ in .relu }), ("leaky", { _ in .leakyReLU(slope: 0.2) }),
            ("scaledLeaky", { _ in .scaledLeakyReLU(slope: 0.2, gain: 1.4142135) }),
            ("prelu", { be in .prelu(slopes: try be.prepareVector(slopes)) }), ("sigmoid", { _ in .sigmoid }), ("none", { _ in .none }),
        ]
        for (name, a) in acts {
            try expectParity("activation \(name) \(shape)", tol: 1e-5, on: t.backend) { be in try be.activation(be.input(x, blocked: blocked), a(be)) }
            try expectParity("biasActivation \(name) \(shape)", tol: 1e-5, on: t.backend) { be in
                try be.biasActivation(be.input(x, blocked: blocked), bias: be.prepareVector(bias), activation: a(be))
            }
        }
    }

    @Test(arguments: ParityTarget.all, inputs)
    func arithmeticMatchesReference(_ t: ParityTarget, _ input: (shape: [Int], blocked: Bool)) throws {
        try t.require(.unary, .add, .multiply, .affine, .scaleChannels)
        let (shape, blocked) = input
        var rng = SeededRandom(seed: UInt64(shape.reduce(0, +)))
        let x = rng.host(shape, scale: 3), y = rng.host(shape), s = rng.host([shape[0], shape[1], 1, 1])
        let unaries: [UnaryOp] = [.square, .exp, .abs, .tanh, .clamp(lo: -1, hi: 0.5)]
        for u in unaries {
            try expectParity("unary \(u) \(shape)", tol: 1e-5, on: t.backend) { be in try be.unary(be.input(x, blocked: blocked), u) }
        }
        try expectParity("sqrt/rsqrt \(shape)", tol: 1e-4, on: t.backend) { be in
            let sq = try be.unary(be.input(x, blocked: blocked), .square)
            return try be.add(be.unary(sq, .sqrt), be.unary(sq, .rsqrt(eps: 1e-2)), alpha: 1, beta: 0.01)
        }
        try expectParity("add \(shape)", tol: 1e-6, on: t.backend) { be in try be.add(be.input(x, blocked: blocked), be.input(y, blocked: blocked), alpha: 0.2, beta: 1) }
        try expectParity("multiply \(shape)", tol: 1e-6, on: t.backend) { be in try be.multiply(be.input(x, blocked: blocked), be.input(y, blocked: blocked)) }
        try expectParity("affine \(shape)", tol: 1e-6, on: t.backend) { be in try be.affine(be.input(x, blocked: blocked), scale: 0.5, shift: -1) }
        try expectParity("scaleChannels \(shape)", tol: 1e-6, on: t.backend) { be in try be.scaleChannels(be.input(x, blocked: blocked), by: be.upload(s)) }
        // GPEN's scaled noise into its half of a concatenation: x·s into a channel view, each half in turn
        let w = rng.host([shape[0], 32, shape[2], shape[3]])
        for scaledHalf in [1, 0] {
            try expectParity("affine into channel view \(scaledHalf) \(shape)", tol: 1e-6, on: t.backend) { be in
                let cat = try be.empty(TensorShape(n: shape[0], c: 64, h: shape[2], w: shape[3]))
                let halves = [0..<32, 32..<64]
                try be.affine(be.input(w, blocked: blocked), scale: 0.75, into: be.channelView(cat, halves[scaledHalf]))
                try be.copy(be.input(w, blocked: blocked), into: be.channelView(cat, halves[1 - scaledHalf]))
                return cat
            }
        }
    }

    @Test(arguments: ParityTarget.all, inputs)
    func channelOpsMatchReference(_ t: ParityTarget, _ input: (shape: [Int], blocked: Bool)) throws {
        try t.require(.concat, .sliceChannels)
        let (shape, blocked) = input
        var rng = SeededRandom(seed: UInt64(shape.reduce(1, *)))
        let x = rng.host(shape), c = shape[1]
        let other = rng.host([shape[0], 3, shape[2], shape[3]])
        try expectParity("concat \(shape)", tol: 0, on: t.backend) { be in try be.concat([be.input(x, blocked: blocked), be.upload(other), be.input(x, blocked: blocked)]) }
        try expectParity("slice \(shape)", tol: 0, on: t.backend) { be in try be.sliceChannels(be.input(x, blocked: blocked), 1..<c) }
        try expectParity("slice prefix \(shape)", tol: 0, on: t.backend) { be in try be.sliceChannels(be.input(x, blocked: blocked), 0..<(c - 1)) }
    }

    @Test(arguments: ParityTarget.all, inputs)
    func resamplingOpsMatchReference(_ t: ParityTarget, _ input: (shape: [Int], blocked: Bool)) throws {
        try t.require(.pixelShuffle, .pixelUnshuffle, .upsampleNearest, .resizeNearest, .reflectPad, .maxPool2d, .upfirdn2d, .concat)
        let (shape, blocked) = input
        var rng = SeededRandom(seed: UInt64(shape.reduce(1, *)))
        let x = rng.host(shape)
        let other = rng.host([shape[0], 3, shape[2], shape[3]])
        try expectParity("pixelShuffle \(shape)", tol: 0, on: t.backend) { be in
            try be.pixelShuffle(be.pixelUnshuffle(be.concat(Array(repeating: be.upload(other), count: 4)), factor: 1), factor: 2)
        }
        try expectParity("pixelUnshuffle \(shape)", tol: 0, on: t.backend) { be in try be.pixelUnshuffle(be.upsampleNearest(be.input(x, blocked: blocked), factor: 2), factor: 2) }
        // SRVGGNetCompact's tail: 48 channels shuffled ×4 into 3 (a plain result on oneDNN) plus the upsampled plain
        // input; 64 blocked channels shuffled ×2 into 16; an unshuffle ×4 (RRDBNet x1 plus)
        let wide = rng.host([shape[0], 64, shape[2], shape[3]])
        try expectParity("pixelShuffle ×4 + upsampled input \(shape)", tol: 0, on: t.backend) { be in
            try be.add(be.pixelShuffle(be.sliceChannels(be.input(wide, blocked: blocked), 0..<48), factor: 4), be.upsampleNearest(be.upload(other), factor: 4))
        }
        try expectParity("pixelShuffle ×2 of 64 \(shape)", tol: 0, on: t.backend) { be in try be.pixelShuffle(be.input(wide, blocked: blocked), factor: 2) }
        try expectParity("pixelUnshuffle ×4 \(shape)", tol: 0, on: t.backend) { be in try be.pixelUnshuffle(be.upsampleNearest(be.upload(other), factor: 4), factor: 4) }
        for f in [2, 3] {
            try expectParity("upsampleNearest ×\(f) \(shape)", tol: 0, on: t.backend) { be in try be.upsampleNearest(be.input(x, blocked: blocked), factor: f) }
        }
        try expectParity("resizeNearest \(shape)", tol: 0, on: t.backend) { be in try be.resizeNearest(be.input(x, blocked: blocked), height: shape[2] * 2 + 1, width: shape[3] + 3) }
        try expectParity("reflectPad \(shape)", tol: 0, on: t.backend) { be in try be.reflectPad(be.input(x, blocked: blocked), top: 1, bottom: 2, left: 3, right: 1) }
        try expectParity("maxPool \(shape)", tol: 0, on: t.backend) { be in try be.maxPool2d(be.input(x, blocked: blocked), kernel: 3, stride: 2, padding: 1) }
        let fir: [Float] = [1, 3, 3, 1].map { $0 / 8 }
        for (up, down, p0, p1) in [(1, 1, 2, 1), (2, 1, 2, 1), (1, 2, 1, 1), (1, 1, 2, 2), (2, 1, 1, 1)] {
            try expectParity("upfirdn2d up\(up) down\(down) pad(\(p0),\(p1)) \(shape)", tol: 1e-6, on: t.backend) { be in
                try be.upfirdn2d(be.input(x, blocked: blocked), taps: fir.map { $0 * Float(up) }, up: up, down: down, pad0: p0, pad1: p1)
            }
        }
    }

    @Test(arguments: ParityTarget.all, inputs)
    func reductionsMatchReference(_ t: ParityTarget, _ input: (shape: [Int], blocked: Bool)) throws {
        try t.require(.softmax, .pixelNorm, .meanOverChannels)
        let (shape, blocked) = input
        var rng = SeededRandom(seed: 99)
        let x = rng.host(shape, scale: 5)
        for axis in 1...3 {
            try expectParity("softmax axis \(axis) \(shape)", tol: 1e-5, on: t.backend) { be in try be.softmax(be.input(x, blocked: blocked), axis: axis) }
        }
        try expectParity("pixelNorm \(shape)", tol: 1e-5, on: t.backend) { be in try be.pixelNorm(be.input(x, blocked: blocked), eps: 1e-8) }
        try expectParity("meanOverChannels \(shape)", tol: 1e-5, on: t.backend) { be in try be.meanOverChannels(be.input(x, blocked: blocked)) }
    }

    /// Row copies between tensors of different heights, in blocked and plain layouts, from a channel view, batch 2;
    /// rows outside the copied range keep their values; bad ranges are refused.
    @Test(arguments: ParityTarget.all, inputs)
    func copyRowsMatchesReference(_ t: ParityTarget, _ input: (shape: [Int], blocked: Bool)) throws {
        let (shape, blocked) = input
        var rng = SeededRandom(seed: 31)
        let x = rng.host(shape), base = rng.host([shape[0], shape[1], shape[2] + 3, shape[3]])
        let h = shape[2]
        for (rows, at) in [(0..<h, 3), (1..<h, 0), ((h - 1)..<h, 2), (0..<0, 0)] {
            try expectParity("copyRows \(rows) → \(at) of \(shape)", tol: 0, on: t.backend) { be in
                let dst = try be.input(base, blocked: !blocked)
                try be.copyRows(be.input(x, blocked: blocked), rows, into: dst, atRow: at)
                return dst
            }
        }
        let a = max(t.backend.channelViewAlignment, 1)
        let wideHost = rng.host([shape[0], shape[1] + a, h, shape[3]])
        try expectParity("sliceRows of a channel view \(shape)", tol: 0, on: t.backend) { be in
            let wide = try be.input(wideHost, blocked: blocked)
            return try be.sliceRows(be.channelView(wide, a..<(a + shape[1])), (h / 2)..<h)
        }
        let dst = try t.backend.input(base, blocked: false)
        #expect(throws: TensorError.self) { try t.backend.copyRows(t.backend.upload(x), 0..<h, into: dst, atRow: 4) }
        #expect(throws: TensorError.self) { try t.backend.copyRows(t.backend.upload(x), 0..<(h + 1), into: dst, atRow: 0) }
    }

    /// `biasActivationReusing` (may overwrite its input) and `upfirdn2d(…, into:)` into a channel view give what the
    /// plain ops give; the view's other channels keep their values.
    @Test(arguments: ParityTarget.all)
    func reusingAndIntoVariantsMatchReference(_ t: ParityTarget) throws {
        try t.require(.biasActivation, .upfirdn2d, .vector)
        var rng = SeededRandom(seed: 57)
        let c = max(t.backend.channelViewAlignment, 4)
        let x = rng.host([1, 2 * c, 6, 7], scale: 2), bias = rng.host([2 * c]).data, half = rng.host([1, c, 6, 7])
        let base = rng.host([1, 2 * c, 5, 6])
        try expectParity("biasActivationReusing", tol: 1e-6, on: t.backend) { be in
            try be.biasActivationReusing(be.input(x, blocked: true), bias: be.prepareVector(bias),
                                         activation: .scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot()))
        }
        try expectParity("upfirdn2d into a channel view", tol: 1e-5, on: t.backend) { be in
            let dst = try be.input(base, blocked: true)
            try be.upfirdn2d(be.input(half, blocked: true), taps: [0.125, 0.375, 0.375, 0.125], up: 1, down: 1, pad0: 1, pad1: 1,
                             into: be.channelView(dst, c..<(2 * c)))
            return dst
        }
    }

    /// Constants are kept like weights: outside the activation statistics and any memory scope.
    @Test(arguments: ParityTarget.all)
    func constantsAreKeptLikeWeights(_ t: ParityTarget) throws {
        let be = try t.make()
        var rng = SeededRandom(seed: 4)
        let host = rng.host([2, 16, 4, 4])
        let scope = MemoryScope()
        let (liveBefore, weightsBefore) = (be.memoryStats.liveBytes, be.memoryStats.weightBytes)
        let constant = try scope.measure { try be.uploadConstant(host) }
        #expect(try be.download(constant).data == host.data)
        #expect(be.memoryStats.liveBytes == liveBefore)
        #expect(be.memoryStats.weightBytes >= weightsBefore + host.count * 4)
        #expect(scope.peakLiveBytes == 0)
    }
}

extension Backend {
    /// Uploads `host`, then (when `blocked`) passes it through an identity 1×1 convolution so that a backend with its
    /// own activation layout (oneDNN's blocked one, channels zero-padded) holds it as ops see it inside a network.
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
