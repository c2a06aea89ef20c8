import Foundation
import Synchronization
import Testing
import TestSupport
@testable import TensorCore

/// `ReplayedForward`'s merging: runs of one shape from callers inside open sessions go through the network as one
/// batch and each caller gets exactly its own result; a lone caller does not wait; other shapes are not merged.
@Suite struct ReplayedForwardTests {
    /// A small network whose outputs depend on every input channel: a 3→4 1×1 convolution plus 1, per image.
    final class Net: @unchecked Sendable {
        let be = ReferenceBackend()
        let conv: PreparedConv2d
        let calls = Mutex<[Int]>([])   // batch size of every forward

        init() throws {
            var rng = SeededRandom(seed: 5)
            conv = try be.prepareConv2d(weight: rng.host([4, 3, 1, 1]), bias: nil, params: .init(inChannels: 3, outChannels: 4, kernel: 1))
        }

        func forward(_ x: Tensor) throws -> [Tensor] {
            calls.withLock { $0.append(x.shape.n) }
            return [try be.affine(be.conv2d(x, conv, epilogue: .identity, into: nil), scale: 1, shift: 1), x]
        }
    }

    func input(_ seed: UInt64, _ h: Int = 5) -> HostTensor {
        var rng = SeededRandom(seed: seed)
        return rng.host([1, 3, h, 6])
    }

    @Test func concurrentSessionsShareOneForwardAndGetTheirOwnOutputs() throws {
        let net = try Net()
        let r = ReplayedForward(backend: net.be, serial: true) { try net.forward($0) }
        r.mergeLimit = 3
        r.mergeWindow = 5   // generous: the three callers must meet, however the threads are scheduled
        let inputs = (0..<3).map { input(UInt64(10 + $0)) }
        let want = try inputs.map { x in try net.forward(net.be.upload(x)).map { try net.be.download($0) } }
        net.calls.withLock { $0.removeAll() }

        let results = Mutex<[Int: [HostTensor]]>([:])
        let failures = Mutex<[String]>([])
        let opened = DispatchGroup(), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        for i in 0..<3 {
            opened.enter(); done.enter()
            Thread {
                do {
                    let out = try r.session { () throws -> [HostTensor] in
                        opened.leave()
                        go.wait()   // every session is open before anyone runs (images in flight together)
                        return try r.run(inputs[i])
                    }
                    results.withLock { $0[i] = out }
                } catch { failures.withLock { $0.append("\(error)") } }
                done.leave()
            }.start()
        }
        opened.wait()
        for _ in 0..<3 { go.signal() }
        done.wait()
        #expect(failures.withLock { $0 }.isEmpty)
        #expect(net.calls.withLock { $0 } == [3], "one forward of the three inputs together")
        #expect(r.statistics.merged == 3)
        for i in 0..<3 {
            let got = try #require(results.withLock { $0[i] })
            #expect(got.map(\.shape) == want[i].map(\.shape))
            #expect(got.map(\.data) == want[i].map(\.data), "caller \(i) got another caller's outputs")
        }
    }

    @Test func aLoneCallerDoesNotWaitAndOtherShapesAreNotMerged() throws {
        let net = try Net()
        let r = ReplayedForward(backend: net.be) { try net.forward($0) }
        r.mergeLimit = 4
        r.mergeWindow = 30   // would be noticed if a lone caller waited for it
        let start = ContinuousClock.now
        _ = try r.session { try r.run(input(1)) }
        _ = try r.run(input(2))   // outside any session
        #expect(ContinuousClock.now - start < .seconds(10))
        #expect(net.calls.withLock { $0 } == [1, 1] && r.statistics.merged == 0)

        // two sessions with different shapes: each waits for a partner of its own shape until the window ends
        r.mergeWindow = 0.05
        net.calls.withLock { $0.removeAll() }
        let shapes = [input(3, 5), input(4, 7)]
        let opened = DispatchGroup(), go = DispatchSemaphore(value: 0), done = DispatchGroup()
        for i in 0..<2 {
            opened.enter(); done.enter()
            Thread {
                _ = try? r.session { () throws -> [HostTensor] in opened.leave(); go.wait(); return try r.run(shapes[i]) }
                done.leave()
            }.start()
        }
        opened.wait()
        go.signal(); go.signal()
        done.wait()
        #expect(net.calls.withLock { $0 }.sorted() == [1, 1] && r.statistics.merged == 0)
    }
}
