import CCUDA
import Foundation
import TensorCore

/// The NVIDIA GPU backend: cuDNN 9 (legacy API) for convolutions, transposed convolutions and linear layers, and
/// one NVRTC-compiled kernel file (kernels.cu) for every other op, including the fused conv epilogue. Activations
/// are NCHW (PyTorch's default) or NHWC (`channels_last`, `Options.layout`) in device memory; a channel view is a
/// pointer offset that keeps its parent's strides, and every kernel and cuDNN descriptor takes strides, so the layout
/// stays inside this backend. Storage is float32 (precisions fp32 and tf32) or IEEE half (fp16), arithmetic always float.
/// Everything runs in order on one stream of the device's primary context; a buffer freed by Swift goes back to
/// the pool at once (stream order makes reuse safe), `download` synchronises.
public final class CUDABackend: Backend, @unchecked Sendable {
    /// How convolutions compute and tensors are stored.
    public enum Precision: String, Sendable, CaseIterable {
        /// float32 storage, FMA math (TF32 off: PyTorch's `torch.backends.cudnn.allow_tf32 = False`).
        case fp32
        /// float32 storage, TF32 tensor cores allowed in convolutions (PyTorch's default for convolutions).
        case tf32
        /// half storage, float accumulation, tensor cores (PyTorch's `model.half()`).
        case fp16
    }

    /// How activations are laid out in device memory.
    public enum Layout: String, Sendable, CaseIterable {
        /// N, C, H, W: PyTorch's default.
        case nchw
        /// N, H, W, C: PyTorch's `channels_last`; cuDNN's tensor-core kernels read it without transposing. Filters are
        /// stored K, R, S, C to match.
        case nhwc
    }

    /// Construction options.
    public struct Options: Sendable, Equatable {
        public var precision: Precision
        /// Activation layout.
        public var layout: Layout
        /// CUDA device ordinal.
        public var device: Int
        /// Time every algorithm cuDNN offers once per shape and keep the fastest (`cudnn.benchmark = True`);
        /// off: cuDNN's heuristics (PyTorch's default).
        public var benchmark: Bool
        /// Largest convolution workspace accepted (algorithms needing more are skipped).
        public var workspaceLimitBytes: Int
        /// Full path of the driver library (tests: the host emulator); nil: `ENHANCE_CUDA_DRIVER` or libcuda.so.1.
        public var driverPath: String?
        /// Folders holding libnvrtc.so.13 and libcudnn.so.9; nil: `ENHANCE_CUDA_LIBS`, then system folders.
        public var libraryFolders: [String]?
        /// Where compiled kernels are cached; nil: `~/.cache/enhance/cubin` (`ENHANCE_CUBIN_CACHE=off`: nowhere).
        public var kernelCacheFolder: String?

        public init(precision: Precision = .fp32, layout: Layout = .nchw, device: Int = 0, benchmark: Bool = false,
                    workspaceLimitBytes: Int = 1 << 30, driverPath: String? = nil, libraryFolders: [String]? = nil,
                    kernelCacheFolder: String? = nil) {
            self.precision = precision; self.layout = layout; self.device = device; self.benchmark = benchmark
            self.workspaceLimitBytes = workspaceLimitBytes; self.driverPath = driverPath; self.libraryFolders = libraryFolders
            self.kernelCacheFolder = kernelCacheFolder
        }
    }

    public let options: Options
    let lib: CUDALibrary
    let api: enh_cuda_api
    /// The context, stream and cuDNN handle, given back when the last of this backend, its kernels and its buffers goes.
    let handles: CUDAHandles
    var context: CUcontext { handles.context }
    var stream: CUstream { handles.stream }
    var cudnn: cudnnHandle_t { handles.cudnn }
    let kernels: CUDAKernels
    /// The device in use.
    public let device: CUDADeviceInfo
    /// Activations.
    public let pool: BufferPool
    /// Device memory from the driver (the pools', the convolution workspace's).
    let allocator: CUDAAllocator
    /// While a forward is being captured: the new graph's own pool (`CUDAGraph.swift`), so that eager work never
    /// reuses memory a graph replays into, and the shared pool can still give memory back.
    var capturePool: BufferPool?
    /// Where activations come from now: the capture's pool during a capture, else `pool`.
    var activations: BufferPool { capturePool ?? pool }
    /// Bytes held by the pools of live captured graphs (all of it in use whenever a graph replays).
    var graphBytes = 0
    /// Prepared weights, biases, vectors and model constants.
    public let weightPool: BufferPool
    let lock = NSRecursiveLock()
    /// Bytes per stored element (4 or 2).
    let elementSize: Int
    /// Kernel name suffix of the storage type ("f32" or "f16").
    let suffix: String
    /// cuDNN's data type for tensors and filters.
    let dataType: cudnnDataType_t
    /// The layout of every activation this backend makes.
    let tensorLayout: TensorLayout
    /// The convolution workspace (one per backend: one stream runs one convolution at a time).
    var workspace: (pointer: CUdeviceptr, bytes: Int)?
    /// Workspaces outgrown while a captured graph may still use them (freed when the last graph goes).
    var retiredWorkspaces: [CUdeviceptr] = []
    /// True while a forward is being captured into a CUDA graph (CUDAGraph.swift).
    var capturing = false
    /// The profile in progress (`startProfile`, CUDAProfile.swift).
    var profiler: CUDAProfileRecorder?
    /// Whether the device's loss was said in the diagnostics (once).
    private var reportedLoss = false
    /// Captured graphs alive: while any is, no device memory they may use goes back to the driver.
    var liveGraphs = 0
    /// Ops this backend runs on the host (upfirdn2d with more than 8 taps).
    let fallback = ReferenceFallback()
    /// Receives one line per convolution plan (algorithm, workspace, math) when set (`--verbose`), after the lines
    /// noted before it was set (how the kernels were obtained).
    public var diagnostics: (@Sendable (String) -> Void)? {
        get { sync { diagnosticsHandler } }
        set { sync { diagnosticsHandler = newValue; if let newValue { notes.forEach(newValue) } } }
    }
    private var diagnosticsHandler: (@Sendable (String) -> Void)?
    /// Every plan line so far.
    public var planNotes: [String] { sync { notes } }
    private var notes: [String] = []

    /// Opens the libraries, retains the device's primary context, compiles (or loads from the cache) the kernels and
    /// creates the stream and the cuDNN handle. Throws `unsupported` when CUDA cannot be used here, saying why.
    public init(options: Options = Options()) throws {
        self.options = options
        if options.driverPath != nil || options.libraryFolders != nil {
            lib = try CUDALibrary(driverPath: options.driverPath, libraryFolders: options.libraryFolders)
        } else {
            lib = try CUDALibrary.shared.get()
        }
        api = lib.api
        device = try lib.device(options.device)
        handles = try CUDAHandles(lib: lib, ordinal: options.device)
        kernels = try CUDAKernels(handles: handles, device: device,
                                  cacheFolder: options.kernelCacheFolder.map { URL(fileURLWithPath: $0) } ?? CUDAKernels.defaultCacheFolder)
        allocator = CUDAAllocator(device: options.device, handles: handles)
        pool = BufferPool(allocator: allocator)
        weightPool = BufferPool(allocator: allocator, countsInScopes: false)
        switch options.precision {
        case .fp32, .tf32: (elementSize, suffix, dataType) = (4, "f32", CUDNN_DATA_FLOAT)
        case .fp16: (elementSize, suffix, dataType) = (2, "f16", CUDNN_DATA_HALF)
        }
        tensorLayout = options.layout == .nhwc ? .nhwc : .nchw
        notes.append("kernels.cu for \(device.architecture): \(kernels.origin); \(lib.versions)")
    }

    /// Frees the convolution workspaces once queued work is done; the pools give their cached memory back as they go,
    /// and the context, stream and cuDNN handle go with the last buffer (`CUDAHandles`).
    deinit {
        lock.lock(); defer { lock.unlock() }
        _ = api.cuCtxSetCurrent!(context)
        _ = api.cuStreamSynchronize!(stream)
        if let w = workspace { _ = api.cuMemFree!(w.pointer) }
        for p in retiredWorkspaces { _ = api.cuMemFree!(p) }
    }

    /// Whether a CUDA device can be used here, and what it is or why not (for `enhance info` and the registry).
    public static func probe() -> (available: Bool, detail: String) {
        switch CUDALibrary.shared {
        case let .failure(e): return (false, Self.reason(e))
        case let .success(lib):
            do {
                let d = try lib.device(0)
                let n = try lib.deviceCount()
                let others = n > 1 ? " (cuda:0; \(n) GPUs, --device cuda:N picks one)" : ""
                return (true, "\(d.name)\(others), \(d.architecture), \(d.multiprocessors) SMs, \(d.totalMemoryBytes >> 20) MiB; \(lib.versions)")
            } catch { return (false, Self.reason(error)) }
        }
    }

    /// One GPU as `enhance info` checks it: what the driver says about it, what the kernels compile to for it, and
    /// whether its context starts and with how much free memory; `problem` says why `--device cuda:N` cannot use it.
    public struct DeviceCheck: Sendable {
        public var info: CUDADeviceInfo
        /// "sm_90 cubin", or "PTX for compute_90 (the driver compiles it)" for a GPU newer than this NVRTC.
        public var kernels: String?
        /// Free device memory once its context started (other processes' use, and this context's, subtracted).
        public var freeMemoryBytes: Int?
        /// Why the kernels cannot be built for it (an architecture older than every one this NVRTC knows).
        public var kernelProblem: String?
        /// The driver's error when its context would not start.
        public var startError: String?
        /// Why the GPU cannot be used ("would not start: …" or the kernels' architecture range); nil when it can.
        public var problem: String? { kernelProblem ?? startError.map { "would not start: \($0)" } }
        /// `problem` naming the device, as `--device cuda:N` says it.
        public var reason: String? {
            kernelProblem.map { "device cuda:\(info.ordinal): \($0)" } ?? startError.map { "device cuda:\(info.ordinal) would not start: \($0)" }
        }
    }

    /// Every GPU the driver shows (after CUDA_VISIBLE_DEVICES), each checked as `--device cuda:N` would start it:
    /// the kernels' target, then its context (started and released again; on a GPU that costs a fraction of a
    /// second). Throws `unsupported` with the loader's or the driver's reason when CUDA itself is unavailable.
    public static func checkDevices() throws -> [DeviceCheck] {
        let lib = try CUDALibrary.shared.get()
        return try (0..<lib.deviceCount()).map { ordinal in
            var c = DeviceCheck(info: try lib.device(ordinal))
            do {
                let t = try CUDAKernels.target(library: lib, device: c.info)
                c.kernels = t.ptx ? "PTX for \(t.arch) (the driver compiles it)" : "\(t.arch) cubin"
                // started as a backend starts it (context, stream, cuDNN handle) and given back at once
                c.freeMemoryBytes = try CUDAHandles(lib: lib, ordinal: ordinal).memoryInfo().free
            } catch let TensorError.unsupported(_, message) {
                c.kernelProblem = message
            } catch {
                c.startError = "\(error)"
            }
            return c
        }
    }

    /// The message of a load error without its op prefix ("CUDA unavailable: …").
    public static func reason(_ e: Error) -> String {
        if case let TensorError.unsupported(_, m) = e { return m }
        return "\(e)"
    }

    public var name: String {
        "CUDA \(device.name) (\(device.architecture), cuDNN \(lib.cudnnVersion), \(options.precision.rawValue)\(options.layout == .nhwc ? ", nhwc" : "")\(options.benchmark ? ", benchmark" : ""))"
    }
    /// NCHW: any channel offset (a view is a whole-plane offset). NHWC: multiples of 8, so that a view's first channel
    /// stays 16-byte aligned for cuDNN's vectorised fp16 kernels (RRDB's dense-block views are at multiples of 32).
    public var channelViewAlignment: Int { options.layout == .nhwc ? 8 : 1 }

    // MARK: plumbing

    /// Runs `body` under the backend's lock with its context current (Swift tasks hop between threads).
    func sync<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        _ = api.cuCtxSetCurrent!(context)
        return try body()
    }

    /// Throws unless `r` is CUDA_SUCCESS: `TensorError.deviceLost` for a sticky error (the context is broken for
    /// good), else the driver's error.
    func check(_ r: CUresult, _ what: @autoclosure () -> String) throws {
        guard r != CUDA_SUCCESS else { return }
        if CUDALibrary.isSticky(r) { throw lost(r, what()) }
        try lib.check(r, what())
    }

    /// Throws unless `s` is CUDNN_STATUS_SUCCESS. cuDNN reports a broken context as one of its own failures, so the
    /// stream is asked (outside a capture): a sticky error there makes it `TensorError.deviceLost`.
    func check(_ s: cudnnStatus_t, _ what: @autoclosure () -> String) throws {
        guard s != CUDNN_STATUS_SUCCESS else { return }
        if !capturing {
            let r = api.cuStreamSynchronize!(stream)
            if CUDALibrary.isSticky(r) { throw lost(r, "\(what()) failed with cuDNN status \(s.rawValue)") }
        }
        try lib.check(s, what())
    }

    /// "cuda:1 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700): … (at cuStreamSynchronize)", said once in the diagnostics.
    private func lost(_ r: CUresult, _ what: String) -> TensorError {
        let e = lib.lost(r, device: options.device, at: what)
        if !reportedLoss { reportedLoss = true; note("\(e)") }
        return e
    }

    var id: ObjectIdentifier { ObjectIdentifier(self) }

    func note(_ line: String) {
        notes.append(line)
        diagnosticsHandler?(line)
    }

    func own(_ t: Tensor, _ op: String) throws {
        guard t.backendID == id, t.layout == tensorLayout else { throw TensorError.foreignTensor(op: op) }
    }

    /// Device address of element (0, 0, 0, 0).
    func address(_ t: Tensor) -> CUdeviceptr { CUdeviceptr(UInt(bitPattern: t.buffer.pointer)) + CUdeviceptr(t.byteOffset) }
    func address(_ b: DeviceBuffer) -> CUdeviceptr { CUdeviceptr(UInt(bitPattern: b.pointer)) }

    /// Elements from one image of `t` to the next.
    func batchStride(_ t: Tensor) -> Int { t.storageChannels * t.shape.h * t.shape.w }

    /// Element strides (image, channel, pixel) of `t`; a channel view keeps its parent's (`storageChannels`).
    func strides(_ t: Tensor) -> Strides { Strides(t.shape, storageChannels: t.storageChannels, channelsLast: tensorLayout.channelsLast) }

    /// 1 when kernels walk channels innermost (NHWC).
    var channelsLastFlag: KernelArg { .i32(tensorLayout.channelsLast ? 1 : 0) }

    /// A tensor argument of kernels.cu: its address and its three strides.
    func arg(_ t: Tensor) -> [KernelArg] { arg(address(t), strides(t)) }
    func arg(_ p: CUdeviceptr?, _ s: Strides) -> [KernelArg] { [.pointer(p), .i64(s.n), .i64(s.c), .i64(s.p)] }

    /// The N, C, P (pixels) extents and walk order of an element-wise launch over `s`.
    func extents(_ s: TensorShape) -> [KernelArg] { [.i32(s.n), .i32(s.c), .i32(s.h * s.w), channelsLastFlag] }

    /// One copy kernel of kernels.cu over `s` — `enh_copy_f32`/`_f16` or a cast between them — from `src` to `dst`
    /// (each an address with strides): views, layout changes, uploads and downloads.
    func copyKernel(_ name: String, _ s: TensorShape, to dst: [KernelArg], from src: [KernelArg]) throws {
        try launch(name, typed: false, count: s.count, dst + src + extents(s))
    }

    /// A new dense tensor (contents undefined unless `zeroed`).
    func make(_ shape: TensorShape, op: String, zeroed: Bool = false, pool: BufferPool? = nil) throws -> Tensor {
        guard shape.isValid else { throw TensorError.invalidShape(op: op, message: "output shape \(shape)") }
        let buffer = try (pool ?? activations).allocate(bytes: shape.count * elementSize, zeroed: zeroed)
        return Tensor(shape: shape, layout: tensorLayout, buffer: buffer, backendID: id)
    }

    /// Launches kernel `name` (without the storage suffix when `typed`) over `count` elements (grid-stride loops).
    func launch(_ base: String, typed: Bool = true, count: Int, _ args: [KernelArg]) throws {
        guard count > 0 else { return }
        let name = typed ? "\(base)_\(suffix)" : base
        guard count < 1 << 31 else {
            throw TensorError.unsupported(op: name, message: "\(count) elements in one launch (the kernels index with 32 bits: at most 2^31 − 1)")
        }
        let f = kernels.function(name)
        let threads = 256
        let blocks = max(1, min((count + threads - 1) / threads, 1 << 16))
        var slots = args.map { a -> UInt64 in
            switch a {
            case let .pointer(p): return p ?? 0
            case let .i32(v): return UInt64(UInt32(bitPattern: Int32(truncatingIfNeeded: v)))
            case let .i64(v): return UInt64(bitPattern: Int64(v))
            case let .f32(v): return UInt64(v.bitPattern)
            }
        }
        try slots.withUnsafeMutableBufferPointer { buf in
            var params: [UnsafeMutableRawPointer?] = (0..<buf.count).map { UnsafeMutableRawPointer(buf.baseAddress! + $0) }
            try timed(.op, name) {
                try check(api.cuLaunchKernel!(f, UInt32(blocks), 1, 1, UInt32(threads), 1, 1, 0, stream, &params, nil), "cuLaunchKernel \(name)")
            }
        }
    }

    /// Queues a copy of `raw` to `dst` on the stream (a profile's "copy host → device" row).
    func copyToDevice(_ dst: CUdeviceptr, _ raw: UnsafeRawBufferPointer) throws {
        try timed(.copy, "copy host → device") { try check(api.cuMemcpyHtoDAsync!(dst, raw.baseAddress, raw.count, stream), "cuMemcpyHtoDAsync") }
    }

    /// Copies float32 host values into device memory at `dst` in the storage type (`asStorage`) or as float32.
    func store(_ values: [Float], at dst: CUdeviceptr, asStorage: Bool) throws {
        guard !values.isEmpty else { return }
        if capturing { throw Self.captureError("a host upload (\(values.count) values) inside the captured forward") }
        if !asStorage || elementSize == 4 {
            try values.withUnsafeBytes { raw in
                try copyToDevice(dst, raw)
            }
            return
        }
        let staging = try pool.allocate(bytes: values.count * 4)
        try values.withUnsafeBytes { raw in
            try copyToDevice(address(staging), raw)
        }
        try launch("enh_pack_f16", typed: false, count: values.count, [.pointer(dst), .pointer(address(staging)), .i64(values.count)])
        try check(api.cuStreamSynchronize!(stream), "cuStreamSynchronize")   // the staging buffer is reused at once
    }

    /// Prepared float32 device copy of host values (biases, vectors), kept in the weight pool.
    func deviceFloats(_ values: [Float]) throws -> DeviceBuffer {
        let b = try weightPool.allocate(bytes: max(values.count, 1) * 4)
        try store(values, at: address(b), asStorage: false)
        return b
    }

    // MARK: memory

    public func upload(_ host: HostTensor) throws -> Tensor { try sync { try upload(host, pool: pool, op: "upload") } }

    public func uploadConstant(_ host: HostTensor) throws -> Tensor { try sync { try upload(host, pool: weightPool, op: "uploadConstant") } }

    private func upload(_ host: HostTensor, pool: BufferPool, op: String) throws -> Tensor {
        let t = try make(host.tensorShape(), op: op, pool: pool)
        try store(host, into: t, staging: pool)
        return t
    }

    /// Writes host values (dense NCHW float32) into `t` in its layout and storage type: one copy when they are the
    /// same, else a float32 staging copy (from `stagingPool`: constants stage in the weight pool, outside the
    /// activation statistics) and one kernel that converts.
    func store(_ host: HostTensor, into t: Tensor, staging stagingPool: BufferPool? = nil) throws {
        if elementSize == 4 && !tensorLayout.channelsLast && !t.isView {
            try store(host.data, at: address(t), asStorage: false)
            return
        }
        if capturing { throw Self.captureError("a host upload (\(host.count) values) inside the captured forward") }
        let staging = try (stagingPool ?? pool).allocate(bytes: host.count * 4)
        try host.data.withUnsafeBytes { raw in
            try copyToDevice(address(staging), raw)
        }
        try copyKernel(elementSize == 4 ? "enh_copy_f32" : "enh_cast_f32_f16", t.shape, to: arg(t), from: arg(address(staging), Strides(t.shape)))
        try check(api.cuStreamSynchronize!(stream), "cuStreamSynchronize")   // the staging buffer is reused at once
    }

    public func download(_ t: Tensor) throws -> HostTensor {
        try sync {
            try own(t, "download")
            if capturing { throw Self.captureError("a download inside the captured forward") }
            var src = t
            if t.isView || elementSize != 4 || tensorLayout.channelsLast {
                // a dense float32 NCHW copy first
                let dense = try pool.allocate(bytes: t.shape.count * 4)
                try copyKernel(elementSize == 4 ? "enh_copy_f32" : "enh_cast_f16_f32", t.shape, to: arg(address(dense), Strides(t.shape)), from: arg(t))
                src = Tensor(shape: t.shape, layout: .nchw, buffer: dense, backendID: id)
            }
            var data = [Float](repeating: 0, count: t.shape.count)
            try data.withUnsafeMutableBytes { raw in
                try timed(.copy, "copy device → host") { try check(api.cuMemcpyDtoHAsync!(raw.baseAddress, address(src), raw.count, stream), "cuMemcpyDtoHAsync") }
                try check(api.cuStreamSynchronize!(stream), "cuStreamSynchronize (download)")
            }
            return try HostTensor(shape: t.shape.dims, data: data)
        }
    }

    /// A dense copy of a (view) tensor in the storage type.
    func copyDense(_ x: Tensor) throws -> Tensor {
        let out = try make(x.shape, op: "copy")
        try copyStrided(x, into: out)
        return out
    }

    /// Copies `x` into `y` (same logical shape; either may be a view, strides may differ).
    func copyStrided(_ x: Tensor, into y: Tensor) throws {
        try copyKernel("enh_copy_\(suffix)", x.shape, to: arg(y), from: arg(x))
    }

    public func zeros(_ shape: TensorShape) throws -> Tensor { try sync { try make(shape, op: "zeros", zeroed: true) } }

    public func empty(_ shape: TensorShape) throws -> Tensor { try sync { try make(shape, op: "empty") } }

    public func channelView(_ t: Tensor, _ range: Range<Int>) throws -> Tensor {
        guard range.lowerBound % channelViewAlignment == 0 else {
            throw TensorError.invalidShape(op: "channelView", message: "channel offset \(range.lowerBound) is not a multiple of \(channelViewAlignment) (\(tensorLayout))")
        }
        return try view(t, range)
    }

    /// A channel view at any offset, for this backend's own kernels (concat, sliceChannels); what models get through
    /// `channelView` (and may hand to cuDNN) keeps the alignment.
    func view(_ t: Tensor, _ range: Range<Int>) throws -> Tensor {
        try own(t, "channelView")
        guard range.lowerBound >= 0, range.upperBound <= t.shape.c, !range.isEmpty else {
            throw TensorError.invalidShape(op: "channelView", message: "range \(range) outside C=\(t.shape.c)")
        }
        var s = t.shape; s.c = range.count
        return Tensor(shape: s, layout: tensorLayout, buffer: t.buffer, byteOffset: t.byteOffset + range.lowerBound * strides(t).c * elementSize,
                      storageChannels: t.storageChannels, backendID: id)
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        try sync {
            try own(source, "copy"); try own(destination, "copy")
            try Validate.same(destination.shape, source.shape, "copy")
            try copyStrided(source, into: destination)
        }
    }

    public func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, atRow: Int) throws {
        try sync {
            try own(source, "copyRows"); try own(destination, "copyRows")
            try Validate.rowCopy(source.shape, rows, destination.shape, atRow)
            guard !rows.isEmpty else { return }
            // Rows are consecutive pixels in both layouts: the same strides from the first row of each range on.
            let (ss, ds) = (strides(source), strides(destination))
            let src = address(source) + CUdeviceptr(rows.lowerBound * source.shape.w * ss.p * elementSize)
            let dst = address(destination) + CUdeviceptr(atRow * destination.shape.w * ds.p * elementSize)
            let s = source.shape
            try copyKernel("enh_copy_\(suffix)", TensorShape(n: s.n, c: s.c, h: rows.count, w: s.w), to: arg(dst, ds), from: arg(src, ss))
        }
    }

    public var memoryStats: MemoryStats {
        sync {
            var s = pool.memoryStats
            s.weightBytes = weightPool.memoryStats.liveBytes
            s.workspaceBytes = workspace?.bytes ?? 0
            s.onDevice = true
            // Live graphs' pools: every byte is used by each replay, so it counts as live (and reserved) throughout.
            s.liveBytes += graphBytes; s.peakLiveBytes += graphBytes
            s.reservedBytes += graphBytes; s.peakReservedBytes += graphBytes
            return s
        }
    }

    public func resetPeak() { pool.resetPeak() }

    public func trim() {
        sync {
            guard !capturing else { return }
            _ = api.cuStreamSynchronize!(stream)
            pool.trim()   // graphs replay into pools of their own, which stay
            if let w = workspace, liveGraphs == 0 { _ = api.cuMemFree!(w.pointer); workspace = nil }
        }
    }

    /// Waits for everything queued on the stream (benchmarks time GPU work with it).
    public func synchronize() throws { try sync { try check(api.cuStreamSynchronize!(stream), "cuStreamSynchronize") } }

    /// A workspace of at least `bytes` (grown, never shrunk until `trim` or `releaseWorkspace`). Out of memory while
    /// the activation pool caches free buffers, the cache goes back and the allocation is tried once more (as the pool
    /// itself does): otherwise a plan whose workspace did not fit only for want of cached memory walked on to a slower
    /// algorithm for the rest of the run.
    func workspace(_ bytes: Int) throws -> CUdeviceptr? {
        guard bytes > 0 else { return nil }
        if let w = workspace, w.bytes >= bytes { return w.pointer }
        if capturing {
            throw Self.captureError("the convolution workspace growing from \(workspace?.bytes ?? 0) to \(bytes) bytes (a shape not seen before the capture)")
        }
        releaseWorkspace()
        let p: CUdeviceptr
        do {
            p = try allocator.deviceMemory(bytes, for: "convolution workspace")
        } catch let e as TensorError where e.isAllocationFailure {
            guard pool.trim() > 0 else { throw e }
            p = try allocator.deviceMemory(bytes, for: "convolution workspace")
        }
        workspace = (p, bytes)
        return p
    }

    /// Gives the workspace back (once queued work is done; kept until the graphs go while a captured graph may use it).
    func releaseWorkspace() {
        guard let w = workspace, !capturing else { return }
        if liveGraphs > 0 {
            retiredWorkspaces.append(w.pointer)   // a captured graph may still use it
        } else {
            _ = api.cuStreamSynchronize!(stream)
            _ = api.cuMemFree!(w.pointer)
        }
        workspace = nil
    }
}

/// Device memory from the driver, for a `BufferPool`.
struct CUDAAllocator: MemoryAllocator, @unchecked Sendable {
    /// The device's ordinal, for messages.
    let device: Int
    /// Kept alive by every pool of the backend (and so by every buffer): memory goes back before the context does.
    let handles: CUDAHandles
    var lib: CUDALibrary { handles.lib }
    var context: CUcontext { handles.context }
    var stream: CUstream { handles.stream }
    var api: enh_cuda_api { lib.api }

    func allocate(bytes: Int) throws -> UnsafeMutableRawPointer {
        UnsafeMutableRawPointer(bitPattern: UInt(try deviceMemory(bytes, for: "tensors")))!
    }

    /// `bytes` of device memory. Out of memory is `allocationFailed` saying how much the GPU has free (the upscaler
    /// then retries with smaller tiles; other processes may hold the rest), a sticky error `deviceLost`.
    func deviceMemory(_ bytes: Int, for what: String) throws -> CUdeviceptr {
        _ = api.cuCtxSetCurrent!(context)
        var p: CUdeviceptr = 0
        let r = api.cuMemAlloc!(&p, bytes)
        if r == CUDA_SUCCESS, p != 0 { return p }
        if CUDALibrary.isSticky(r) { throw lib.lost(r, device: device, at: "cuMemAlloc, \(what)") }
        guard r == CUDA_ERROR_OUT_OF_MEMORY else {
            try lib.check(r, "cuMemAlloc (\(what), \(bytes) bytes)")
            throw TensorError.allocationFailed(bytes: bytes, detail: "cuMemAlloc returned no address")
        }
        let size = { (b: Int) -> String in
            let (v, unit) = b >= 1 << 30 ? (Double(b) / 1073741824, "GiB") : b >= 1 << 20 ? (Double(b) / 1048576, "MiB") : (Double(b) / 1024, "KiB")
            return String(format: "%.1f ", v) + unit
        }
        let info = (try? handles.memoryInfo()).map { ": \(size($0.free)) free of \(size($0.total)) on the GPU" } ?? ""
        throw TensorError.allocationFailed(bytes: bytes, detail: "cuda:\(device) is out of memory (\(what), \(size(bytes)))\(info)")
    }

    func deallocate(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        _ = api.cuCtxSetCurrent!(context)
        // Kernels queued on the stream may still use the block: wait for them before the driver takes it back.
        _ = api.cuStreamSynchronize!(stream)
        _ = api.cuMemFree!(CUdeviceptr(UInt(bitPattern: pointer)))
    }

    func zero(_ pointer: UnsafeMutableRawPointer, bytes: Int) {
        _ = api.cuMemsetD8Async!(CUdeviceptr(UInt(bitPattern: pointer)), 0, bytes, stream)
    }
}

/// What one backend holds of the driver: the device's primary context (retained), a stream on it and a cuDNN handle
/// bound to that stream. Given back — handle destroyed, stream drained and destroyed, context released (the driver
/// frees a primary context with its last release) — when the last holder goes: the backend, its kernels and, through
/// its pools' allocator, every buffer it handed out.
final class CUDAHandles: @unchecked Sendable {
    // SAFETY: immutable after init; the handles are used under the backend's lock.
    let lib: CUDALibrary
    let device: CUdevice
    let context: CUcontext
    let stream: CUstream
    let cudnn: cudnnHandle_t

    init(lib: CUDALibrary, ordinal: Int) throws {
        self.lib = lib
        let api = lib.api
        var dev: CUdevice = 0
        try lib.check(api.cuDeviceGet!(&dev, Int32(ordinal)), "cuDeviceGet")
        var ctx: CUcontext?
        try lib.check(api.cuDevicePrimaryCtxRetain!(&ctx, dev), "cuDevicePrimaryCtxRetain")
        var s: CUstream?, h: cudnnHandle_t?
        do {
            try lib.check(api.cuCtxSetCurrent!(ctx), "cuCtxSetCurrent")
            try lib.check(api.cuStreamCreate!(&s, CU_STREAM_NON_BLOCKING.rawValue), "cuStreamCreate")
            try lib.check(api.cudnnCreate!(&h), "cudnnCreate")
            try lib.check(api.cudnnSetStream!(h, s), "cudnnSetStream")
        } catch {
            // a context that started but whose stream or cuDNN handle did not: nothing stays behind
            if let h { _ = api.cudnnDestroy!(h) }
            if let s { _ = api.cuStreamDestroy!(s) }
            _ = api.cuCtxSetCurrent!(nil)
            _ = api.cuDevicePrimaryCtxRelease!(dev)
            throw error
        }
        device = dev
        context = ctx!
        stream = s!
        cudnn = h!
    }

    /// The device's free and total memory (cuMemGetInfo in this context); throws the driver's error.
    func memoryInfo() throws -> (free: Int, total: Int) {
        var free = 0, total = 0
        try lib.check(lib.api.cuCtxSetCurrent!(context), "cuCtxSetCurrent")
        try lib.check(lib.api.cuMemGetInfo!(&free, &total), "cuMemGetInfo")
        return (free, total)
    }

    deinit {
        let api = lib.api
        _ = api.cuCtxSetCurrent!(context)
        _ = api.cuStreamSynchronize!(stream)
        _ = api.cudnnDestroy!(cudnn)
        _ = api.cuStreamDestroy!(stream)
        _ = api.cuCtxSetCurrent!(nil)
        _ = api.cuDevicePrimaryCtxRelease!(device)
    }
}
