import BackendCUDA
import EnhanceKit
import Foundation
import Testing
import TestSupport
@testable import TensorCore

// The CUDA backend without a GPU: the load path and its errors, the kernels compiled by the real NVRTC (when the
// pinned wheel is cached: scripts/cuda-wheels), and the backend itself on the host emulator of the driver, NVRTC and
// cuDNN (Tests/Fixtures/cuda-emulator), which runs kernels.cu compiled for the host. Op-by-op parity on the emulator
// is in BackendParityTests (target "cuda (host emulator, fp32)"); model parity through the CLI in CLITests.
@Suite struct CUDABackendTests {
    func emulator() throws -> CUDAEmulator.Build {
        switch CUDAEmulator.build {
        case let .success(b): return b
        case let .failure(e): Issue.record("the CUDA host emulator did not build:\n\(e.log)"); throw e
        }
    }

    func backend(_ precision: CUDABackend.Precision = .fp32) throws -> CUDABackend {
        let emu = try emulator()
        return try CUDABackend(options: .init(precision: precision, driverPath: emu.driver, libraryFolders: [emu.folder]))
    }

    @Test func theEmulatorBuilds() throws {
        let emu = try emulator()
        #expect(FileManager.default.fileExists(atPath: emu.driver))
    }

    /// The emulator's own checks (Tests/Fixtures/cuda-emulator/selftest.sh): driver and memory guards, deferred stream
    /// work (a read without the synchronisation sees old bytes; pinned and pageable copies; errors of queued work at the
    /// next sync), graph capture, cuDNN convolutions against direct sums, the loader's error paths, and the real NVRTC
    /// and cuDNN through the loader when their wheels are cached.
    @Test func theEmulatorPassesItsOwnSelfTest() throws {
        let p = Process()
        p.executableURL = Repository.root.appendingPathComponent("Tests/Fixtures/cuda-emulator/selftest.sh")
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "ENH_EMU_SYNC")
        p.environment = env
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let log = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0 && log.contains("selftest.sh: all passed") && log.contains(" 0 failures"),
                "\(log.split(separator: "\n").suffix(30).joined(separator: "\n"))")
    }

    @Test func aMissingDriverIsAnUnsupportedErrorNamingTheLibrary() {
        do {
            _ = try CUDALibrary(driverPath: "/nonexistent/libcuda.so.1", libraryFolders: [])
            Issue.record("loading a missing driver succeeded")
        } catch let TensorError.unsupported(_, message) {
            #expect(message.contains("CUDA unavailable"))
            #expect(message.contains("/nonexistent/libcuda.so.1"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test func missingCuDNNIsNamed() throws {
        let emu = try emulator()
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-empty-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: empty) }
        #expect { try CUDALibrary(driverPath: emu.driver, libraryFolders: [empty.path]) } throws: { e in
            guard case let TensorError.unsupported(_, m) = e else { return false }
            return m.contains("libnvrtc.so.13") || m.contains("libcudnn.so.9")
        }
    }

    @Test func theEmulatedDeviceIsDescribed() throws {
        let emu = try emulator()
        let lib = try CUDALibrary(driverPath: emu.driver, libraryFolders: [emu.folder])
        let d = try lib.device(0)
        #expect(d.architecture == "sm_90")
        #expect(d.totalMemoryBytes > 0)
        #expect(lib.cudnnVersion > 0)
        #expect { try lib.device(5) } throws: { e in
            guard case let TensorError.unsupported(_, m) = e else { return false }
            return m.contains("device 5")
        }
    }

    /// kernels.cu through the real NVRTC 13.0 (the pinned wheel scripts/setup caches): it must compile for the A10
    /// (sm_86) and the H100/H200 (sm_90) and give a cubin (an ELF file), and to PTX for compute_90 (what a GPU newer
    /// than the NVRTC gets, JIT-compiled by the driver).
    @Test(arguments: ["sm_86", "sm_90", "compute_90"]) func kernelsCompileWithTheRealNVRTC(_ arch: String) throws {
        guard let nvrtc = Self.nvrtcFolder else {
            let why = "skipped: no libnvrtc.so.13 cached (run scripts/cuda-wheels, or set ENHANCE_NVRTC_DIR)"
            FileHandle.standardError.write(Data("⤼ \(why)\n".utf8))
            try Test.cancel(Comment(rawValue: why))
        }
        let emu = try emulator()
        // the real NVRTC first; the emulator supplies the driver entries and cuDNN
        let lib = try CUDALibrary(driverPath: emu.driver, libraryFolders: [nvrtc, emu.folder])
        #expect(lib.nvrtcVersion.major == 13)
        let cubin = try CUDABackend.compileKernels(library: lib, architecture: arch)
        #expect(cubin.count > 10_000)
        if arch.hasPrefix("compute_") {
            let text = String(decoding: cubin.dropLast(), as: UTF8.self)
            #expect(cubin.last == 0, "PTX goes to cuModuleLoadData NUL-terminated")
            #expect(text.contains(".target sm_90") && text.contains(".entry enh_cast_f32_f16"), "\(text.prefix(400))")
        } else {
            #expect(Array(cubin.prefix(4)) == [0x7f, 0x45, 0x4c, 0x46], "a cubin is an ELF file")
        }
    }

    /// A syntax error comes back as NVRTC's log (line and message), not a bare status.
    @Test func aCompileErrorCarriesNVRTCsLog() throws {
        guard let nvrtc = Self.nvrtcFolder else {
            FileHandle.standardError.write(Data("⤼ skipped: no libnvrtc.so.13 cached\n".utf8))
            try Test.cancel("skipped: no libnvrtc.so.13 cached")
        }
        let emu = try emulator()
        let lib = try CUDALibrary(driverPath: emu.driver, libraryFolders: [nvrtc, emu.folder])
        #expect { try CUDABackend.compileKernels(library: lib, architecture: "sm_90", source: "extern \"C\" __global__ void k() { undefined_thing = 1; }") } throws: { e in
            "\(e)".contains("undefined_thing")
        }
    }

    /// The descriptors the backend builds, given to the real cuDNN 9 (host-side calls work without a GPU; its 517 MB
    /// wheel is fetched only by `scripts/cuda-wheels --headers`, so CI usually skips this): cuDNN's forward output
    /// size must be ours for every parity convolution, and for a transposed convolution the forward convolution of
    /// its output must give back its input — the data-gradient mapping of the IOHW weight is the one cuDNN expects.
    @Test func theRealCuDNNAgreesWithTheLayerGeometry() throws {
        guard let cudnn = Self.wheelFolder("nvidia_cudnn_cu13-9", "nvidia/cudnn/lib", "libcudnn.so.9", env: "ENHANCE_CUDNN_DIR") else {
            let why = "skipped: no real libcudnn.so.9 cached (scripts/cuda-wheels --headers, or ENHANCE_CUDNN_DIR)"
            FileHandle.standardError.write(Data("⤼ \(why)\n".utf8))
            try Test.cancel(Comment(rawValue: why))
        }
        let emu = try emulator()
        let lib = try CUDALibrary(driverPath: emu.driver, libraryFolders: [cudnn, emu.folder])
        #expect(lib.cudnnVersion >= 90000 && lib.cudnnVersion != 99999, "the real cuDNN, not the emulator's")
        for c in convCases {
            let got = try CUDABackend.cudnnForwardOutput(library: lib, ConvGeometry(c.params), input: (c.n, c.cin, c.h, c.w))
            let want = c.params.outputSize(h: c.h, w: c.w)
            #expect(got == [c.n, c.cout, want.h, want.w], "\(c): cuDNN \(got)")
        }
        for (cin, cout, k, s, pad, g, h, w) in [(3, 16, 3, 2, 0, 1, 5, 6), (16, 8, 3, 2, 0, 1, 4, 4), (16, 16, 4, 2, 1, 1, 5, 7),
                                                (16, 16, 3, 2, 1, 16, 6, 5), (512, 256, 3, 2, 0, 1, 8, 8)] {
            let p = ConvTranspose2dParams(inChannels: cin, outChannels: cout, kernel: k, stride: s, padding: pad, groups: g)
            let out = p.outputSize(h: h, w: w)
            let back = try CUDABackend.cudnnForwardOutput(library: lib, ConvGeometry(transposed: p), input: (2, cout, out.h, out.w))
            #expect(back == [2, cin, h, w], "transposed \(p): cuDNN's forward of [2,\(cout),\(out.h),\(out.w)] is \(back)")
        }
        let linear = try CUDABackend.cudnnForwardOutput(library: lib, ConvGeometry(linearOut: 24, in: 144), input: (2, 144, 1, 1))
        #expect(linear == [2, 24, 1, 1])
        // The NHWC backend's descriptors (fp16, KRSC filter, channels-last strides), dense and as a channel view of a
        // wider tensor (RRDB's dense-block prefix: pixel stride 96 for 64 channels), are accepted with the same sizes.
        for c in convCases {
            for storage in [c.cin, c.cin + 32] {
                let got = try CUDABackend.cudnnForwardOutput(library: lib, ConvGeometry(c.params), input: (c.n, c.cin, c.h, c.w),
                                                             channelsLast: true, storageChannels: storage)
                let want = c.params.outputSize(h: c.h, w: c.w)
                #expect(got == [c.n, c.cout, want.h, want.w], "\(c) nhwc storage \(storage): cuDNN \(got)")
            }
        }
        let view = try CUDABackend.cudnnForwardOutput(library: lib, ConvGeometry(Conv2dParams(inChannels: 64, outChannels: 32, kernel: 3, padding: 1)),
                                                      input: (1, 64, 12, 10), channelsLast: true, storageChannels: 96)
        #expect(view == [1, 32, 12, 10])
    }

    static func wheelFolder(_ prefix: String, _ sub: String, _ file: String, env: String) -> String? {
        if let d = ProcessInfo.processInfo.environment[env] { return d }
        let root = FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/enhance/cuda")
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: root.path) else { return nil }
        for e in entries.sorted() where e.hasPrefix(prefix) {
            let lib = root.appendingPathComponent(e).appendingPathComponent(sub)
            if FileManager.default.fileExists(atPath: lib.appendingPathComponent(file).path) { return lib.path }
        }
        return nil
    }

    static var nvrtcFolder: String? { wheelFolder("nvidia_cuda_nvrtc-13", "nvidia/cu13/lib", "libnvrtc.so.13", env: "ENHANCE_NVRTC_DIR") }

    /// The compiled kernels are cached per source, options, NVRTC and device; a cached file the driver refuses is
    /// compiled again and replaced.
    @Test func kernelsAreCachedAndABadCacheEntryIsReplaced() throws {
        let emu = try emulator()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("enhance-cubin-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        func make() throws -> CUDABackend {
            try CUDABackend(options: .init(driverPath: emu.driver, libraryFolders: [emu.folder], kernelCacheFolder: folder.path))
        }
        #expect(try make().planNotes.first?.contains("compiled by NVRTC") == true)
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".cubin") }
        #expect(files.count == 1)
        #expect(try make().planNotes.first?.contains("cached") == true)
        let file = folder.appendingPathComponent(files[0])
        try Data("not a cubin".utf8).write(to: file)
        let again = try make()
        #expect(again.planNotes.first?.contains("compiled by NVRTC") == true)
        #expect(try Data(contentsOf: file) != Data("not a cubin".utf8), "the refused entry was replaced")
        let x = try again.upload(HostTensor(shape: [1, 2, 2, 2], data: [1, -2, 3, -4, 5, -6, 7, -8]))
        #expect(try again.download(again.activation(x, .relu)).data == [1, 0, 3, 0, 5, 0, 7, 0])
    }

    @Test func memoryStatisticsCountWeightsAndWorkspaceAndTrimReturnsTheCache() throws {
        let be = try backend()
        let conv = try be.prepareConv2d(weight: HostTensor(shape: [8, 4, 3, 3], data: (0..<288).map { Float($0 % 7) * 0.1 }),
                                        bias: HostTensor(shape: [8], data: [Float](repeating: 0.5, count: 8)),
                                        params: Conv2dParams(inChannels: 4, outChannels: 8, kernel: 3, padding: 1))
        let weights = be.memoryStats.weightBytes
        #expect(weights >= 288 * 4 + 8 * 4)
        do {
            let x = try be.upload(HostTensor(shape: [1, 4, 6, 6], data: (0..<144).map { Float($0) / 144 }))
            _ = try be.download(be.conv2d(x, conv, epilogue: .activation(.leakyReLU(slope: 0.2))))
        }
        let s = be.memoryStats
        #expect(s.liveBytes == 0, "every activation was released")
        #expect(s.workspaceBytes > 0, "the emulator's cuDNN asks for a workspace")
        #expect(s.allocatedPeakBytes == s.peakLiveBytes + s.weightBytes + s.workspaceBytes)
        #expect(be.planNotes.contains { $0.contains("cuDNN fwd algo") })
        be.trim()
        #expect(be.memoryStats.reservedBytes == 0)
        #expect(be.memoryStats.workspaceBytes == 0)
        #expect(be.memoryStats.weightBytes == weights)
    }

    /// A backend gives back everything it took from the driver — the convolution workspace, its pools' memory, the
    /// kernels module, the cuDNN handle, the stream and its reference on the primary context (the driver frees a
    /// primary context with its last release) — once it and the tensors it made are gone; a tensor that outlives it
    /// keeps the context and its own memory until it goes too. Counted on a private copy of the emulator (globals of
    /// its own: other tests use the shared one at the same time).
    @Test func aBackendGivesEverythingBackWhenItAndItsTensorsAreGone() throws {
        let emu = try emulator()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-release-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let driver = dir.appendingPathComponent("libcuda.so.1").path
        try FileManager.default.copyItem(atPath: emu.driver, toPath: driver)
        for name in ["libcudnn.so.9", "libnvrtc.so.13"] {
            try FileManager.default.createSymbolicLink(atPath: dir.appendingPathComponent(name).path, withDestinationPath: "libcuda.so.1")
        }
        let library = try #require(dlopen(driver, RTLD_NOW), "dlopen \(driver)")
        defer { dlclose(library) }
        typealias LiveObjects = @convention(c) (UnsafeMutablePointer<UInt64>) -> Void
        let live = unsafeBitCast(try #require(dlsym(library, "enh_emu_live_objects")), to: LiveObjects.self)
        func objects() -> [UInt64] {
            var out = [UInt64](repeating: 0, count: 6)
            out.withUnsafeMutableBufferPointer { live($0.baseAddress!) }
            return out   // context references, streams, modules, cuDNN handles, allocations, graphs
        }
        #expect(objects() == [0, 0, 0, 0, 0, 0])

        var kept: Tensor?
        do {
            let be = try CUDABackend(options: .init(driverPath: driver, libraryFolders: [dir.path], kernelCacheFolder: dir.path))
            let conv = try be.prepareConv2d(weight: HostTensor(shape: [8, 4, 3, 3], data: (0..<288).map { Float($0 % 7) * 0.1 }),
                                            bias: HostTensor(shape: [8], data: [Float](repeating: 0.5, count: 8)),
                                            params: Conv2dParams(inChannels: 4, outChannels: 8, kernel: 3, padding: 1))
            let x = try be.upload(HostTensor(shape: [1, 4, 6, 6], data: (0..<144).map { Float($0) / 144 }))
            let y = try be.conv2d(x, conv, epilogue: .activation(.leakyReLU(slope: 0.2)))
            _ = try be.download(be.activation(y, .relu))
            kept = y
            let during = objects()
            #expect(during[0] == 1 && during[1] == 1 && during[2] == 1 && during[3] == 1, "\(during)")
            #expect(during[4] >= 3, "weights, workspace and activations: \(during)")
        }
        // the backend is gone (its module with it); the tensor it made still holds its buffer, its pool and so the
        // context with its stream and cuDNN handle
        let held = objects()
        #expect(held[0] == 1 && held[1] == 1 && held[3] == 1 && held[4] >= 1, "\(held)")
        #expect(held[2] == 0, "the module goes with the backend: \(held)")
        withExtendedLifetime(kept) {}
        kept = nil
        #expect(objects() == [0, 0, 0, 0, 0, 0])
    }

    /// A tensor larger than the GPU's free memory is `allocationFailed` (what the upscaler answers with smaller tiles)
    /// saying which GPU and how much it has free — not a bare driver error — and the pool is usable afterwards.
    @Test func outOfDeviceMemoryNamesTheGPUAndItsFreeMemory() throws {
        let be = try backend()
        let tooBig = TensorShape(n: 1, c: 3, h: 32768, w: 32768)   // 12 GiB of float32 on the emulator's 8 GiB
        do {
            _ = try be.empty(tooBig)
            Issue.record("a 12 GiB tensor was allocated on an 8 GiB device")
        } catch let e as TensorError {
            #expect(e.isAllocationFailure, "\(e)")
            #expect("\(e)".hasPrefix("allocation of 12884901888 bytes failed: cuda:0 is out of memory (tensors, 12.0 GiB): "), "\(e)")
            #expect("\(e)".contains("GiB free of 8.0 GiB on the GPU"), "\(e)")
        }
        let x = try be.upload(HostTensor(shape: [1, 2, 2, 2], data: [1, 2, 3, 4, 5, 6, 7, 8]))
        #expect(try be.download(x).data == [1, 2, 3, 4, 5, 6, 7, 8])
    }

    /// fp16 storage: every op within half precision of the reference (1e-2 of the largest value).
    @Test func halfStorageMatchesTheReferenceWithinHalfPrecision() throws {
        let be = try backend(.fp16)
        let r = Backends.reference
        let p = Conv2dParams(inChannels: 6, outChannels: 5, kernel: 3, stride: 1, padding: 1)
        let w = try HostTensor(shape: p.weightShape, data: (0..<(5 * 6 * 9)).map { sin(Float($0)) * 0.3 })
        let b = try HostTensor(shape: [5], data: [0.1, -0.2, 0.3, 0, 0.05])
        let xs = try HostTensor(shape: [2, 6, 7, 5], data: (0..<(2 * 6 * 35)).map { cos(Float($0) * 0.37) })
        func run(_ be: any Backend) throws -> HostTensor {
            let conv = try be.prepareConv2d(weight: w, bias: b, params: p)
            let x = try be.upload(xs)
            let y = try be.conv2d(x, conv, epilogue: .init(activation: .scaledLeakyReLU(slope: 0.2, gain: Float(2).squareRoot()), residual: nil))
            let z = try be.pixelNorm(be.upfirdn2d(y, taps: [0.25, 0.75, 0.75, 0.25], up: 2, down: 1, pad0: 2, pad1: 1), eps: 1e-8)
            return try be.download(be.softmax(z, axis: 1))
        }
        let a = try run(r), h = try run(be)
        #expect(a.shape == h.shape)
        let maxRef = a.data.map(abs).max() ?? 1
        let maxDiff = zip(a.data, h.data).map { abs($0 - $1) }.max() ?? 0
        #expect(maxDiff <= 1e-2 * max(1, maxRef), "fp16 max |diff| \(maxDiff)")
        #expect(be.memoryStats.weightBytes < 5 * 6 * 9 * 4, "half weights take half the bytes (plus a float bias)")
    }
}
