import Foundation
import Synchronization
import Testing
@testable import TensorCore

/// Host memory with counts: the allocator a backend supplies (a GPU backend's would hand out device memory).
final class CountingAllocator: MemoryAllocator {
    struct Counts { var allocations = 0, deallocations = 0, outstandingBytes = 0 }
    let counts = Mutex(Counts())
    private let host = HostAllocator()

    func allocate(bytes: Int) throws -> UnsafeMutableRawPointer {
        let p = try host.allocate(bytes: bytes)
        counts.withLock { $0.allocations += 1; $0.outstandingBytes += bytes }
        return p
    }

    func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        counts.withLock { $0.deallocations += 1; $0.outstandingBytes -= bytes }
        host.deallocate(pointer, bytes: bytes)
    }

    func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int) { host.zero(pointer, bytes: bytes) }
}

/// A backend as a new device's starts out: its own allocator and memory operations, a few compute operations of its
/// own (reference kernels on its own tensors, no copies), every other operation through the reference fallback.
final class HostPartialBackend: PartialBackend, @unchecked Sendable {
    let allocator = CountingAllocator()
    let pool: BufferPool
    let constants: BufferPool
    let fallback = ReferenceFallback()
    let nativeOps: Set<BackendOp> = [.conv2d, .vector, .activation, .biasActivation, .concat, .sliceChannels]
    /// Reference kernels that allocate from this backend's pools and stamp tensors as this backend's.
    private var kernels: ReferenceBackend!

    init() {
        pool = BufferPool(allocator: allocator)
        constants = BufferPool(allocator: allocator, countsInScopes: false)
        kernels = ReferenceBackend(sharing: pool, constants: constants, identity: ObjectIdentifier(self))
    }

    var name: String { "partial host backend" }
    var channelViewAlignment: Int { 1 }
    var memoryStats: MemoryStats {
        var s = pool.memoryStats
        s.weightBytes = constants.memoryStats.liveBytes
        return s
    }
    func resetPeak() { pool.resetPeak() }
    func trim() { pool.trim(); constants.trim() }

    func upload(_ host: HostTensor) throws -> Tensor { try kernels.upload(host) }
    func uploadConstant(_ host: HostTensor) throws -> Tensor { try kernels.uploadConstant(host) }
    func download(_ tensor: Tensor) throws -> HostTensor { try kernels.download(tensor) }
    func zeros(_ shape: TensorShape) throws -> Tensor { try kernels.zeros(shape) }
    func empty(_ shape: TensorShape) throws -> Tensor { try kernels.empty(shape) }
    func channelView(_ tensor: Tensor, _ range: Range<Int>) throws -> Tensor { try kernels.channelView(tensor, range) }
    func copy(_ source: Tensor, into destination: Tensor) throws { try kernels.copy(source, into: destination) }

    func prepareVector(_ values: [Float]) throws -> PreparedVector { try kernels.prepareVector(values) }
    func prepareConv2d(weight: HostTensor, bias: HostTensor?, params: Conv2dParams) throws -> PreparedConv2d {
        try kernels.prepareConv2d(weight: weight, bias: bias, params: params)
    }
    func conv2d(_ x: Tensor, _ conv: PreparedConv2d, epilogue: Epilogue, into: Tensor?) throws -> Tensor {
        try kernels.conv2d(x, conv, epilogue: epilogue, into: into)
    }
    func activation(_ x: Tensor, _ a: Activation) throws -> Tensor { try kernels.activation(x, a) }
    func biasActivation(_ x: Tensor, bias: PreparedVector?, activation a: Activation) throws -> Tensor {
        try kernels.biasActivation(x, bias: bias, activation: a)
    }
    func concat(_ xs: [Tensor]) throws -> Tensor { try kernels.concat(xs) }
    func sliceChannels(_ x: Tensor, _ range: Range<Int>) throws -> Tensor { try kernels.sliceChannels(x, range) }
}

@Suite struct PartialBackendTests {
    /// A StyleGAN-like stack mixing the partial backend's own ops (conv, bias + activation, concat) with fallback ones
    /// (linear with a channel-scale epilogue, transposed conv, upfirdn2d, pixel shuffle, softmax) gives the reference
    /// result, and the fallback ran exactly the ops the backend does not implement.
    @Test func unsupportedOpsRunThroughTheReferenceFallback() throws {
        let be = HostPartialBackend()
        #expect(be.supports(.conv2d) && !be.supports(.linear) && !be.supports(.upfirdn2d))
        var rng = SeededRandom(seed: 8)
        let x = rng.host([1, 4, 6, 5]), style = rng.host([1, 6])
        let cw = rng.host([8, 4, 3, 3], scale: 0.3), cb = rng.host([8]), lw = rng.host([8, 6], scale: 0.4)
        let tw = rng.host([16, 4, 3, 3], scale: 0.2), bias = rng.host([8]).data
        func network(_ b: any Backend) throws -> Tensor {
            let s = try b.linear(b.upload(style), b.prepareLinear(weight: lw, bias: nil))                          // fallback
            var h = try b.conv2d(b.upload(x), b.prepareConv2d(weight: cw, bias: cb, params: Conv2dParams(inChannels: 4, outChannels: 8, kernel: 3, padding: 1)),
                                 epilogue: Epilogue(channelScale: s))                                               // native
            h = try b.biasActivation(h, bias: b.prepareVector(bias), activation: .leakyReLU(slope: 0.2))          // native
            h = try b.concat([h, h])                                                                                // native
            h = try b.convTranspose2d(h, b.prepareConvTranspose2d(weight: tw, bias: nil, params: ConvTranspose2dParams(inChannels: 16, outChannels: 4, kernel: 3)),
                                      epilogue: .activation(.prelu(slopes: try b.prepareVector([0.1, 0.2, 0.3, 0.4]))))  // fallback
            h = try b.upfirdn2d(h, taps: [0.25, 0.75, 0.75, 0.25], up: 2, down: 1, pad0: 2, pad1: 1)             // fallback
            h = try b.pixelShuffle(h, factor: 2)                                                                    // fallback
            return try b.softmax(h, axis: 3)                                                                        // fallback
        }
        try expectParity("partial network", tol: 1e-5, on: be, network)
        #expect(be.fallback.calls == 5)
    }

    /// Every buffer of the backend comes from the allocator it supplies and goes back to it: after the tensors are
    /// gone and `trim()`, nothing is outstanding.
    @Test func theBackendsAllocatorSuppliesAndGetsBackEveryBuffer() throws {
        let be = HostPartialBackend()
        var rng = SeededRandom(seed: 2)
        do {
            let c = try be.uploadConstant(rng.host([1, 8, 4, 4]))
            let y = try be.activation(be.concat([be.upload(rng.host([1, 8, 4, 4])), c]), .relu)
            _ = try be.download(be.sliceChannels(y, 2..<9))
            let counts = be.allocator.counts.withLock { $0 }
            #expect(counts.allocations >= 4)
            #expect(counts.outstandingBytes >= (8 * 16 + 16 * 16) * 4)
        }
        #expect(be.memoryStats.liveBytes == 0)
        be.trim()
        let counts = be.allocator.counts.withLock { $0 }
        #expect(counts.outstandingBytes == 0 && counts.deallocations == counts.allocations, "\(counts)")
    }

    /// A prepared layer or vector of another backend is refused by name, not misread.
    @Test func foreignPreparedLayersAreRefused() throws {
        let be = HostPartialBackend(), other = HostPartialBackend()
        let p = ConvTranspose2dParams(inChannels: 2, outChannels: 2, kernel: 2)
        let layer = try other.prepareConvTranspose2d(weight: HostTensor(zeros: p.weightShape), bias: nil, params: p)
        #expect(throws: TensorError.self) { try be.convTranspose2d(be.upload(HostTensor(zeros: [1, 2, 3, 3])), layer) }
    }
}

@Suite struct LRUCacheTests {
    @Test func dropsTheLeastRecentlyUsedEntry() {
        var cache = LRUCache<String, Int>(capacity: 2)
        cache["a"] = 1
        cache["b"] = 2
        #expect(cache["a"] == 1)       // a is now newer than b
        cache["c"] = 3                 // evicts b
        #expect(cache["b"] == nil && cache["a"] == 1 && cache["c"] == 3 && cache.count == 2)
        cache["a"] = 10                // replacing does not evict
        #expect(cache.count == 2 && cache["a"] == 10 && cache["c"] == 3)
        cache.removeAll()
        #expect(cache.count == 0)
    }
}
