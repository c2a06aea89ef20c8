import Testing
import TensorCore

/// Deterministic pseudo-random numbers in [-1, 1) (LCG), for reproducible test data.
struct SeededRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 6364136223846793005 &+ 1442695040888963407 }
    mutating func next() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(Int64(bitPattern: state >> 11) % (1 << 24)) / Float(1 << 23) - 1
    }
    mutating func host(_ shape: [Int], scale: Float = 1) -> HostTensor {
        let n = shape.reduce(1, *)
        return try! HostTensor(shape: shape, data: (0..<n).map { _ in next() * scale })
    }
}

@Suite struct ReferenceBackendTests {
    let ref = ReferenceBackend()

    @Test func conv3x3MatchesHandComputedValues() throws {
        // 1 input channel 3×3 of 1…9, kernel of ones, padding 1: each output = sum of its 3×3 neighbourhood.
        let x = try ref.upload(HostTensor(shape: [1, 1, 3, 3], data: (1...9).map(Float.init)))
        let conv = try ref.prepareConv2d(weight: HostTensor(shape: [1, 1, 3, 3], data: .init(repeating: 1, count: 9)),
                                         bias: HostTensor(shape: [1], data: [0.5]),
                                         params: Conv2dParams(inChannels: 1, outChannels: 1, kernel: 3, padding: 1))
        let y = try ref.download(ref.conv2d(x, conv))
        #expect(y.shape == [1, 1, 3, 3])
        #expect(y.data == [12, 21, 16, 27, 45, 33, 24, 39, 28].map { $0 + 0.5 })
    }

    @Test func stridedGroupedConvShape() throws {
        var rng = SeededRandom(seed: 1)
        let p = Conv2dParams(inChannels: 4, outChannels: 6, kernel: 3, stride: 2, padding: 0, groups: 2)
        let conv = try ref.prepareConv2d(weight: rng.host(p.weightShape), bias: nil, params: p)
        let y = try ref.conv2d(ref.upload(rng.host([1, 4, 7, 8])), conv)
        #expect(y.shape == TensorShape(n: 1, c: 6, h: 3, w: 3))
    }

    @Test func weightShapeMismatchNamesBothShapes() throws {
        let p = Conv2dParams(inChannels: 4, outChannels: 6, kernel: 3)
        #expect(throws: TensorError.shapeMismatch(op: "prepareConv2d weight", expected: "[6, 4, 3, 3]", actual: "[6, 4, 1, 1]")) {
            _ = try ref.prepareConv2d(weight: HostTensor(zeros: [6, 4, 1, 1]), bias: nil, params: p)
        }
    }

    @Test func transposedConvScattersWithoutFlip() throws {
        // one input pixel of value 2 at (0,0), stride 2, kernel 3: output (3×3) = 2·W
        let w = try HostTensor(shape: [1, 1, 3, 3], data: (1...9).map(Float.init))
        let t = try ref.prepareConvTranspose2d(weight: w, bias: nil, params: ConvTranspose2dParams(inChannels: 1, outChannels: 1, kernel: 3))
        let y = try ref.download(ref.convTranspose2d(ref.upload(HostTensor(shape: [1, 1, 1, 1], data: [2])), t))
        #expect(y.data == w.data.map { $0 * 2 })
    }

    @Test func pixelShuffleInvertsUnshuffleAndFollowsIndexRule() throws {
        var rng = SeededRandom(seed: 2)
        let h = rng.host([1, 3, 4, 6])
        let u = try ref.pixelUnshuffle(ref.upload(h), factor: 2)
        #expect(u.shape == TensorShape(n: 1, c: 12, h: 2, w: 3))
        let ud = try ref.download(u)
        // out[c·4 + i·2 + j, y, x] = in[c, 2y+i, 2x+j]; check c=1, i=1, j=0, y=1, x=2
        let outIndex: Int = ((1 * 4 + 2) * 2 + 1) * 3 + 2
        let inIndex: Int = (1 * 4 + 3) * 6 + 4
        #expect(ud.data[outIndex] == h.data[inIndex])
        #expect(try ref.download(ref.pixelShuffle(u, factor: 2)) == h)
    }

    @Test func upfirdnBlurKeepsConstantInterior() throws {
        // The normalised [1,3,3,1] blur of a constant plane is that constant away from the zero-padded border.
        let x = try ref.upload(HostTensor(shape: [1, 1, 6, 6], data: .init(repeating: 3, count: 36)))
        let y = try ref.download(ref.upfirdn2d(x, taps: [1, 3, 3, 1].map { $0 / 8 }, up: 1, down: 1, pad0: 2, pad1: 1))
        #expect(y.shape == [1, 1, 6, 6])
        #expect(abs(y.data[2 * 6 + 2] - 3) < 1e-6)
        #expect(y.data[0] < 3)
        // upsample ×2 (taps ×2): constant interior preserved
        let u = try ref.download(ref.upfirdn2d(x, taps: [1, 3, 3, 1].map { $0 / 4 }, up: 2, down: 1, pad0: 2, pad1: 1))
        #expect(u.shape == [1, 1, 12, 12])
        #expect(abs(u.data[5 * 12 + 6] - 3) < 1e-6)
    }

    @Test func reflectPadMirrorsWithoutEdgeRepeat() throws {
        let x = try ref.upload(HostTensor(shape: [1, 1, 1, 3], data: [1, 2, 3]))
        let y = try ref.download(ref.reflectPad(ref.upsampleNearest(x, factor: 1), top: 0, bottom: 0, left: 2, right: 1))
        #expect(y.data == [3, 2, 1, 2, 3, 2])
    }

    @Test func softmaxSumsToOneAlongAxis() throws {
        var rng = SeededRandom(seed: 3)
        let y = try ref.download(ref.softmax(ref.upload(rng.host([1, 2, 3, 5], scale: 4)), axis: 1))
        for i in 0..<15 { #expect(abs(y.data[i] + y.data[15 + i] - 1) < 1e-6) }
    }

    @Test func channelViewWritesLandInParent() throws {
        var rng = SeededRandom(seed: 4)
        let buf = try ref.zeros(TensorShape(n: 1, c: 5, h: 2, w: 3))
        let x = rng.host([1, 2, 2, 3])
        try ref.copy(ref.upload(x), into: ref.channelView(buf, 3..<5))
        let d = try ref.download(buf)
        #expect(Array(d.data[18..<30]) == x.data)
        #expect(d.data[0..<18].allSatisfy { $0 == 0 })
    }

    @Test func memoryStatsTrackLivePeakAndReuse() throws {
        let be = ReferenceBackend()
        do {
            _ = try be.zeros(TensorShape(c: 4, h: 16, w: 16))   // 4 KiB, released at once
        }
        #expect(be.memoryStats.liveBytes == 0)
        #expect(be.memoryStats.peakLiveBytes == 4096)
        let t = try be.zeros(TensorShape(c: 4, h: 16, w: 16))
        #expect(be.memoryStats.reuseCount == 1)
        #expect(be.memoryStats.allocationCount == 1)
        #expect(be.memoryStats.liveBytes == 4096)
        be.resetPeak()
        #expect(be.memoryStats.peakLiveBytes == 4096)
        _ = t
    }

    @Test func foldBatchNormMatchesConvThenBN() throws {
        var rng = SeededRandom(seed: 5)
        let p = Conv2dParams(inChannels: 3, outChannels: 2, kernel: 1)
        let w = rng.host(p.weightShape), b = rng.host([2])
        let gamma = rng.host([2]), beta = rng.host([2]), mean = rng.host([2])
        let variance = try HostTensor(shape: [2], data: [0.5, 2])
        let folded = try foldBatchNorm(weight: w, bias: b, gamma: gamma, beta: beta, mean: mean, variance: variance)
        let x = try ref.upload(rng.host([1, 3, 2, 2]))
        let plain = try ref.download(ref.conv2d(x, ref.prepareConv2d(weight: w, bias: b, params: p)))
        let fused = try ref.download(ref.conv2d(x, ref.prepareConv2d(weight: folded.weight, bias: folded.bias, params: p)))
        for i in 0..<plain.count {
            let c = i / 4
            let bn = (plain.data[i] - mean.data[c]) / (variance.data[c] + 1e-5).squareRoot() * gamma.data[c] + beta.data[c]
            #expect(abs(bn - fused.data[i]) < 1e-5)
        }
    }
}

@Test func referenceMaxPoolPadsWithMinusInfinity() throws {
    let ref = ReferenceBackend()
    let x = try ref.upload(HostTensor(shape: [1, 1, 2, 2], data: [-4, -3, -2, -1]))
    let y = try ref.download(ref.maxPool2d(x, kernel: 3, stride: 2, padding: 1))
    #expect(y.shape == [1, 1, 1, 1])
    #expect(y.data == [-1])
}
