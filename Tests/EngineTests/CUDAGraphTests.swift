import BackendCUDA
import Foundation
import Testing
import TestSupport
@testable import TensorCore

/// CUDA graphs on the host emulator (which records captured work and runs it at each launch, and refuses what a
/// capture cannot hold): a captured forward replays on new inputs exactly as the eager forward computes them, keeps
/// its memory while it lives, and names what made a capture impossible.
@Suite struct CUDAGraphTests {
    func backend(_ precision: CUDABackend.Precision = .fp32) throws -> CUDABackend {
        switch CUDAEmulator.build {
        case let .success(emu):
            return try CUDABackend(options: .init(precision: precision, driverPath: emu.driver, libraryFolders: [emu.folder]))
        case let .failure(e): Issue.record("the CUDA host emulator did not build:\n\(e.log)"); throw e
        }
    }

    /// conv 3×3 (leaky) → conv 3×3 + residual → ×2 nearest upsample → concat with itself → 1×1 conv: convolutions
    /// through cuDNN, kernels, views, temporaries freed and reused inside the forward.
    struct Net {
        let be: CUDABackend
        let c1: PreparedConv2d, c2: PreparedConv2d, c3: PreparedConv2d
        init(_ be: CUDABackend) throws {
            self.be = be
            var rng = SeededRandom(seed: 11)
            func w(_ shape: [Int]) throws -> HostTensor { rng.host(shape, scale: 0.3) }
            c1 = try be.prepareConv2d(weight: w([8, 3, 3, 3]), bias: w([8]), params: .init(inChannels: 3, outChannels: 8, kernel: 3, padding: 1))
            c2 = try be.prepareConv2d(weight: w([8, 8, 3, 3]), bias: w([8]), params: .init(inChannels: 8, outChannels: 8, kernel: 3, padding: 1))
            c3 = try be.prepareConv2d(weight: w([3, 16, 1, 1]), bias: nil, params: .init(inChannels: 16, outChannels: 3, kernel: 1))
        }
        func forward(_ x: Tensor) throws -> [Tensor] {
            let a = try be.conv2d(x, c1, epilogue: .activation(.leakyReLU(slope: 0.2)), into: nil)
            let b = try be.conv2d(a, c2, epilogue: Epilogue(outputScale: 0.5, residual: a), into: nil)
            let u = try be.upsampleNearest(b, factor: 2)
            let cat = try be.concat([u, u])
            return [try be.conv2d(cat, c3, epilogue: .identity, into: nil), b]
        }
    }

    func input(_ seed: UInt64) throws -> HostTensor {
        var rng = SeededRandom(seed: seed)
        return rng.host([1, 3, 10, 12])
    }

    @Test(arguments: [CUDABackend.Precision.fp32, .fp16]) func replaysMatchTheEagerForwardOnNewInputs(_ precision: CUDABackend.Precision) throws {
        let be = try backend(precision)
        let net = try Net(be)
        let a = try input(1), b = try input(2)
        _ = try net.forward(be.upload(a))   // plans and workspace first
        let graph = try be.captureGraph(input: a) { try net.forward($0) }
        #expect(be.planNotes.contains { $0.hasPrefix("CUDA graph: forward captured") })
        for x in [b, a, b] {
            let replayed = try graph.run(x)
            let eager = try net.forward(be.upload(x)).map { try be.download($0) }
            #expect(replayed.count == 2)
            for (r, e) in zip(replayed, eager) {
                #expect(r.shape == e.shape)
                #expect(r.data == e.data, "a replay differs from the eager forward (max \(zip(r.data, e.data).map { abs($0 - $1) }.max() ?? 0))")
            }
        }
        #expect(throws: TensorError.self) { try graph.run(HostTensor(shape: [1, 3, 8, 8], data: [Float](repeating: 0, count: 192))) }
    }

    /// A graph's activations come from a pool of its own: they count as live while it lives, eager work and `trim`
    /// leave them alone (the emulator poisons a graph whose memory is freed), the shared pool still gives its cache
    /// back, and everything goes when the graph does.
    @Test func memoryStaysWhileTheGraphLives() throws {
        let be = try backend()
        let net = try Net(be)
        let a = try input(3)
        _ = try net.forward(be.upload(a))
        let before = be.memoryStats
        var graph: CUDAGraph? = try be.captureGraph(input: a) { try net.forward($0) }
        #expect(!be.pool.keepsMemory)
        let held = be.memoryStats.liveBytes - before.liveBytes
        #expect(held > 0 && be.memoryStats.reservedBytes - before.reservedBytes == held)
        be.trim()   // the shared pool's cache goes; the graph's pool stays
        #expect(be.pool.cachedBytes == 0 && be.memoryStats.liveBytes - be.pool.memoryStats.liveBytes == held)
        // eager forwards in between take new memory, not the graph's: its replays still equal the eager result
        let b = try input(4)
        let eager = try net.forward(be.upload(b)).map { try be.download($0) }
        let kept = try net.forward(be.upload(a))   // alive across the replay below
        let keptBefore = try be.download(kept[0])
        #expect(try graph!.run(b).map(\.data) == eager.map(\.data))
        #expect(try be.download(kept[0]).data == keptBefore.data, "a replay overwrote an eager tensor")
        graph = nil
        #expect(be.memoryStats.liveBytes == be.pool.memoryStats.liveBytes)
    }

    @Test func aCaptureWithoutAWarmForwardNamesWhatItCannotHold() throws {
        let be = try backend(.fp16)
        let net = try Net(be)
        // No eager forward first: the first convolution needs a workspace, which a capture cannot allocate.
        #expect { _ = try be.captureGraph(input: try input(4)) { try net.forward($0) } } throws: { e in
            guard case let TensorError.unsupported(op, m) = e else { return false }
            return op == "cuda graph" && m.contains("workspace") && m.contains("run the forward once eagerly first")
        }
        // A download inside the capture is refused the same way.
        _ = try net.forward(be.upload(input(4)))
        #expect { _ = try be.captureGraph(input: try input(4)) { x in _ = try be.download(x); return [x] } } throws: { e in
            guard case let TensorError.unsupported(_, m) = e else { return false }
            return m.contains("a download inside the captured forward")
        }
        // After failed captures the backend works eagerly and can capture again.
        let g = try be.captureGraph(input: input(4)) { try net.forward($0) }
        #expect(try g.run(input(5)).count == 2)
    }
}
