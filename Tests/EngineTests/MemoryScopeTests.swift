import BackendDNNL
import Foundation
import Testing
import TensorCore

/// Memory statistics per execution context: concurrent work on one backend does not mix its figures.
@Suite struct MemoryScopeTests {
    @Test func concurrentScopesCountOnlyTheirOwnTensors() async throws {
        let be = ReferenceBackend()   // plain NCHW: a tensor's bytes are exactly N·C·H·W·4
        let mib = 1 << 20
        let gate = AsyncStream<Void>.makeStream()
        let a = MemoryScope(), b = MemoryScope()
        // A holds 1 MiB while B allocates 3 MiB: each scope sees its own, the backend sees both
        async let ta: Int = a.measure {
            let t = try be.zeros(TensorShape(n: 1, c: 1, h: 512, w: 512))   // 1 MiB
            var it = gate.stream.makeAsyncIterator()
            _ = await it.next()   // B has allocated and freed while this is live
            return t.shape.c
        }
        try await Task.sleep(for: .milliseconds(50))
        let tb: Int = try await b.measure {
            let t = try be.zeros(TensorShape(n: 1, c: 3, h: 512, w: 512))   // 3 MiB
            return t.shape.c
        }
        #expect(b.liveBytes == 0 && b.peakLiveBytes >= 3 * mib && b.peakLiveBytes < 3 * mib + 4096)
        gate.continuation.yield(); gate.continuation.finish()
        _ = try await ta
        #expect(tb == 3)
        #expect(a.liveBytes == 0 && a.peakLiveBytes >= mib && a.peakLiveBytes < mib + 4096, "A: \(a.peakLiveBytes)")
        #expect(be.memoryStats.peakLiveBytes >= 4 * mib)   // the global figure mixes them
    }

    @Test func aScopeSeesAConvolutionButNotItsWeights() throws {
        let be = try DNNLBackend(options: .init(threads: 1))
        let p = Conv2dParams(inChannels: 16, outChannels: 16, kernel: 3, padding: 1)
        let conv = try be.prepareConv2d(weight: HostTensor(shape: p.weightShape, data: [Float](repeating: 0.01, count: 16 * 16 * 9)),
                                        bias: nil, params: p)
        let x = try be.upload(HostTensor(shape: [1, 16, 32, 32], data: [Float](repeating: 1, count: 16 * 32 * 32)))
        let scope = MemoryScope()
        be.resetPeak()
        let before = be.memoryStats.liveBytes
        let y = try scope.measure { try be.download(be.conv2d(x, conv)) }
        #expect(y.count == 16 * 32 * 32)
        #expect(scope.liveBytes == 0)
        #expect(scope.peakLiveBytes > 0 && scope.peakLiveBytes == be.memoryStats.peakLiveBytes - before)
        #expect(be.memoryStats.weightBytes > 0)   // reordered weights exist, and are not the scope's
        // outside any scope nothing is counted
        let other = MemoryScope()
        _ = try be.download(be.conv2d(x, conv))
        #expect(other.peakLiveBytes == 0)
    }
}
