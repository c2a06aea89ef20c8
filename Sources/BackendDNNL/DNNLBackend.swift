import CWinograd
import CDNNL
import Foundation
import TensorCore

extension TensorLayout {
    /// oneDNN's `nChw16c` (N, C/16, H, W, 16c): the activation layout on AVX-512 CPUs.
    public static let nChw16c = TensorLayout.channelBlocked(16)
    /// oneDNN's `nChw8c` (N, C/8, H, W, 8c): the activation layout on AVX2 CPUs.
    public static let nChw8c = TensorLayout.channelBlocked(8)
}

/// The oneDNN (2.6.x, C API) CPU backend. Activations live in oneDNN's channel-blocked layout — `nChw16c`
/// (N, C/16, H, W, 16c) on AVX-512 CPUs, `nChw8c` on AVX2 ones; N×C×1×1 vectors stay plain NCHW — from the first
/// layer to the last; reorders to and from NCHW happen only in `upload`/`download` and in the few ops without a
/// oneDNN primitive. Convolutions force the blocked src/dst (oneDNN `jit:avx512_core` / `jit:avx2`; for 3×3 stride-1
/// convs with `Options.winograd` on, the project's Winograd (DNNLWinograd.swift) or, on AVX-512, oneDNN's), weights are
/// reordered once into the layout the primitive asks for, and primitives are cached per input shape and epilogue.
public final class DNNLBackend: Backend, @unchecked Sendable {
    /// Numeric precision of the compute.
    public enum Precision: String, Sendable, CaseIterable {
        /// 32-bit float everywhere.
        case fp32
        /// bfloat16 convolutions (bf16 inputs and weights, f32 accumulation and output; every other op in f32): 3×3
        /// stride-1 layers on the own Winograd kernel with bf16 transformed tiles and weights (`winograd` on), the
        /// rest on oneDNN's bf16 convolutions. Needs avx512_bf16 or AMX as oneDNN sees the CPU, or
        /// `Options.bf16Emulation` on any AVX-512 CPU.
        case bf16
    }

    /// Construction options.
    public struct Options: Sendable, Equatable {
        /// OpenMP thread count; nil keeps oneDNN's default (all cores).
        public var threads: Int?
        /// Use Winograd for 3×3 stride-1 ungrouped convolutions: the project's kernel where it applies, else oneDNN's.
        public var winograd: Bool
        /// Compute precision.
        public var precision: Precision
        /// Smallest map (pixels) the own Winograd kernel takes; nil: `ENHANCE_WINO_MIN_PIXELS`, else 48² (AVX2) or 64²
        /// (AVX-512). 0 also lifts the wide-layer rule (tests).
        public var winogradMinPixels: Int?

        /// bf16 on an AVX-512 CPU without avx512_bf16/AMX through oneDNN's emulation: the same rounding, several times
        /// slower than fp32 (accuracy checks and tests). Default: `ENHANCE_BF16_EMULATION=1`.
        public var bf16Emulation: Bool

        /// Creates options.
        public init(threads: Int? = nil, winograd: Bool = true, precision: Precision = .fp32, winogradMinPixels: Int? = nil,
                    bf16Emulation: Bool = ProcessInfo.processInfo.environment["ENHANCE_BF16_EMULATION"] == "1") {
            self.threads = threads; self.winograd = winograd; self.precision = precision
            self.winogradMinPixels = winogradMinPixels; self.bf16Emulation = bf16Emulation
        }
    }

    /// The options this backend was created with.
    public let options: Options
    let engine: dnnl_engine_t
    let stream: dnnl_stream_t
    /// Activation buffers.
    public let pool = BufferPool()
    /// Prepared weights and biases.
    public let weightPool = BufferPool(countsInScopes: false)
    let lock = NSRecursiveLock()
    /// The profile in progress (`startProfile`).
    var profile: OpProfileCollector?
    private(set) var host: ReferenceBackend!
    // Primitives per descriptor, bounded: a service sees ever new image sizes. `trim()` empties them.
    var reorderCache = LRUCache<MDPair, Primitive>(capacity: 256)
    var opCache = LRUCache<String, Primitive>(capacity: 512)
    var firCache = LRUCache<String, AnyObject>(capacity: 64)
    /// Number of layout-changing reorders of activations (plain copies into views do not count); tests and
    /// benchmarks read it to show that layouts are kept between layers.
    public private(set) var activationReorders = 0
    /// Convolutions run by the own Winograd kernel (tests and benchmarks).
    public internal(set) var ownWinogradRuns = 0
    /// Whether oneDNN builds the own Winograd kernel's bf16 matmul on this CPU (nil until asked).
    var bf16WinogradMatmulKnown: Bool?
    /// The blocked activation layout for this CPU (`nChw16c` with AVX-512, else `nChw8c`).
    public let blockedLayout: TensorLayout
    /// Receives a line when a layer's preferred convolution could not be built and the layer fell back to the next
    /// algorithm or layout (said once per layer and algorithm); nil keeps them silent. `--verbose` prints them.
    public var diagnostics: (@Sendable (String) -> Void)? {
        get { sync { diagnosticsHandler } }
        set { sync { diagnosticsHandler = newValue } }
    }
    private var diagnosticsHandler: (@Sendable (String) -> Void)?
    /// Every fallback note so far (what `diagnostics` received), for tests and benchmarks.
    public var fallbackNotes: [String] { sync { notes } }
    private var notes: [String] = []
    /// The largest scratchpad a primitive has asked for (it is taken from the activation pool while the primitive
    /// runs, so it counts in `memoryStats`).
    public internal(set) var largestScratchpad = 0
    /// `ENHANCE_DNNL_DEBUG`: one stderr line per convolution plan built (algorithm, fused or not, oneDNN's implementation).
    static let debugPlans = ProcessInfo.processInfo.environment["ENHANCE_DNNL_DEBUG"] != nil
    /// Tests only: makes building a convolution with the named algorithm ("winograd", "direct") throw, as a oneDNN
    /// primitive, scratchpad or weights reorder that cannot be built would.
    var injectedFault: ((String) -> Bool)?

    /// Creates the backend; throws when oneDNN cannot start or when bf16 is requested on a CPU without it.
    public init(options: Options = Options()) throws {
        if options.precision == .bf16, let why = Self.bf16Unavailable(emulation: options.bf16Emulation) {
            throw TensorError.unsupported(op: "DNNLBackend", message: why)
        }
        if let t = options.threads {
            guard t > 0, t <= 1024 else { throw TensorError.invalidShape(op: "DNNLBackend", message: "threads \(t)") }
        }
        ompThreads = Int32(options.threads ?? Self.defaultOpenMPThreads)
        omp_set_num_threads(ompThreads)
        self.options = options
        blockedLayout = dnnl_get_effective_cpu_isa().rawValue >= dnnl_cpu_isa_avx512_core.rawValue ? .nChw16c : .nChw8c
        var e: dnnl_engine_t?
        try dnnlCheck(dnnl_engine_create(&e, dnnl_cpu, 0), "dnnl_engine_create")
        engine = e!
        var s: dnnl_stream_t?
        let st = dnnl_stream_create(&s, e, dnnl_stream_default_flags.rawValue)
        if st != dnnl_success { dnnl_engine_destroy(e) }
        try dnnlCheck(st, "dnnl_stream_create")
        stream = s!
        host = ReferenceBackend(sharing: pool, identity: ObjectIdentifier(self))
    }

    /// Why bf16 cannot run here (nil: it can): oneDNN's effective ISA (which `ONEDNN_MAX_CPU_ISA` caps) must have
    /// avx512_bf16 (or AMX), or AVX-512 with `emulation`.
    public static func bf16Unavailable(emulation: Bool) -> String? {
        let isa = dnnl_get_effective_cpu_isa().rawValue
        func has(_ i: dnnl_cpu_isa_t) -> Bool { isa & i.rawValue == i.rawValue }
        if has(dnnl_cpu_isa_avx512_core_bf16) || (emulation && has(dnnl_cpu_isa_avx512_core)) { return nil }
        if has(dnnl_cpu_isa_avx512_core) {
            return "bf16 unavailable: this CPU (oneDNN ISA \(CPUInfo.isa)) lacks avx512_bf16/AMX; ENHANCE_BF16_EMULATION=1 runs oneDNN's bf16 emulation (same rounding, slower than fp32) for accuracy checks"
        }
        return "bf16 unavailable: this CPU (oneDNN ISA \(CPUInfo.isa)) lacks avx512_bf16/AMX, and oneDNN has no bf16 convolution without AVX-512"
    }

    deinit {
        reorderCache.removeAll()
        opCache.removeAll()
        firCache.removeAll()
        // The engine and stream are deliberately not destroyed: prepared layers may outlive the backend and their
        // primitives still refer to the engine. They are a few hundred bytes, and backends are long-lived.
    }

    /// OpenMP threads oneDNN will use.
    public var threads: Int { Int(ompThreads) }
    /// The thread count every primitive runs with (set on whichever thread executes it).
    let ompThreads: Int32
    /// OpenMP's default (OMP_NUM_THREADS or all cores), read before any backend changes a thread's setting.
    static let defaultOpenMPThreads = Int(omp_get_max_threads())

    /// OpenMP's thread count for a parallel region started on the calling thread (diagnostics and tests).
    public static var openMPThreadsOnThisThread: Int { Int(omp_get_max_threads()) }

    /// oneDNN's version, e.g. "2.6.3".
    public static var version: String {
        let v = dnnl_version().pointee
        return "\(v.major).\(v.minor).\(v.patch)"
    }

    public var name: String {
        let precision = options.precision == .bf16 ? ", bf16 convolutions" + (Self.bf16Unavailable(emulation: false) == nil ? "" : " (emulated)") : ""
        return "oneDNN \(Self.version) (\(threads) threads\(options.winograd && options.precision == .fp32 ? ", winograd" : "")\(precision))"
    }

    public var channelViewAlignment: Int { blockedLayout.channelBlock }

    public var memoryStats: MemoryStats {
        var s = pool.memoryStats
        s.weightBytes = weightPool.memoryStats.liveBytes
        return s
    }

    public func resetPeak() { pool.resetPeak() }

    /// Primitives held in the backend's caches (tests).
    var cachedPrimitives: Int { sync { reorderCache.count + opCache.count + firCache.count } }

    /// Releases cached free activation buffers and the backend's cached primitives (reorders, element-wise and
    /// shape ops, upfirdn filters); prepared layers keep their weights and their own bounded plan caches.
    public func trim() {
        sync {
            reorderCache.removeAll()
            opCache.removeAll()
            firCache.removeAll()
        }
        pool.trim()
    }

    var id: ObjectIdentifier { ObjectIdentifier(self) }

    /// Reports a layer's fallback once per `key` (the layer's own set of notes).
    func note(_ state: ConvState, key: String, _ message: String) {
        guard state.notes.insert(key).inserted else { return }
        notes.append(message)
        diagnosticsHandler?(message)
    }

    func sync<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); defer { lock.unlock() }
        return try body()
    }

    // MARK: tensors and descriptors

    /// Layout for a new activation of this shape.
    func preferredLayout(_ s: TensorShape) -> TensorLayout { s.h * s.w == 1 ? .nchw : blockedLayout }

    func alloc(_ shape: TensorShape, _ layout: TensorLayout? = nil, zeroed: Bool = false, pool: BufferPool? = nil, op: String) throws -> Tensor {
        guard shape.isValid else { throw TensorError.invalidShape(op: op, message: "shape \(shape)") }
        let layout = layout ?? preferredLayout(shape)
        let bytes = shape.n * layout.paddedChannels(shape.c) * shape.h * shape.w * 4
        let buffer = try (pool ?? self.pool).allocate(bytes: bytes, zeroed: zeroed)
        return Tensor(shape: shape, layout: layout, buffer: buffer, backendID: id)
    }

    func check(_ t: Tensor, _ op: String) throws {
        guard t.backendID == id else { throw TensorError.foreignTensor(op: op) }
    }

    /// The oneDNN descriptor of a tensor (views get their parent's strides).
    func md(_ t: Tensor) -> dnnl_memory_desc_t {
        let s = t.shape, hw = s.h * s.w
        // With N = 1 the batch stride is never used; describing views like dense tensors keeps the JIT kernels.
        let cs = s.n == 1 ? s.c : t.storageChannels
        if t.layout == .nchw {
            var m = MD.make(s.dims, dnnl_nchw)
            MD.setStrides(&m, [cs * hw, hw, s.w, 1])
            return m
        }
        return blockedMD(s, storage: cs, layout: t.layout)
    }

    /// A dense copy of `t` in `layout` (returns `t` itself when it already is one).
    func dense(_ t: Tensor, _ layout: TensorLayout, op: String) throws -> Tensor {
        if t.layout == layout && !t.isView { return t }
        let out = try alloc(t.shape, layout, op: op)
        try reorder(t, into: out, op: op)
        return out
    }

    // MARK: execution

    final class Memory {
        let handle: dnnl_memory_t
        init(_ md: dnnl_memory_desc_t, _ ptr: UnsafeMutableRawPointer, engine: dnnl_engine_t, op: String) throws {
            var md = md
            var m: dnnl_memory_t?
            try dnnlCheck(dnnl_memory_create(&m, &md, engine, ptr), op + " memory")
            handle = m!
        }
        deinit { dnnl_memory_destroy(handle) }
    }

    func mem(_ t: Tensor, op: String) throws -> Memory {
        try Memory(md(t), t.buffer.pointer + t.byteOffset, engine: engine, op: op)
    }

    func mem(_ md: dnnl_memory_desc_t, _ buffer: DeviceBuffer, op: String) throws -> Memory {
        try Memory(md, buffer.pointer, engine: engine, op: op)
    }

    /// Runs a primitive with the given (argument, memory) pairs and waits.
    /// The calling thread (OpenMP's master) runs with FTZ/DAZ only for the primitive's duration, so the
    /// caller's own floating-point mode is never changed; pool workers keep FTZ/DAZ set.
    func execute(_ p: Primitive, _ args: [(Int32, Memory)], op: String) throws {
        // OpenMP's thread count is per calling thread, and Swift tasks run on whichever pool thread is free: a backend
        // made with `threads: 1` on one thread ran its primitives on two cores from another.
        if omp_get_max_threads() != ompThreads { omp_set_num_threads(ompThreads) }
        let callerMode = enhance_get_mxcsr()
        flushDenormalsOnThisThread()
        enhance_set_mxcsr(callerMode | 0x8040)
        defer { enhance_set_mxcsr(callerMode) }
        var args = args
        var scratch: DeviceBuffer?
        if p.scratchpadBytes > 0 {
            largestScratchpad = max(largestScratchpad, p.scratchpadBytes)
            let buffer = try pool.allocate(bytes: p.scratchpadBytes)
            args.append((DNNL_ARG_SCRATCHPAD, try Memory(p.scratchpad, buffer.pointer, engine: engine, op: op + " scratchpad")))
            scratch = buffer
        }
        let list = args.map { dnnl_exec_arg_t(arg: $0.0, memory: $0.1.handle) }
        try timed(op, "\(p.kindName) \(p.implementation)",
                  kind: [dnnl_convolution, dnnl_deconvolution, dnnl_inner_product, dnnl_matmul].contains(p.kind) ? .convolution : nil) {
            try dnnlCheck(dnnl_primitive_execute(p.primitive, stream, Int32(list.count), list), op)
            try dnnlCheck(dnnl_stream_wait(stream), op)
        }
        withExtendedLifetime((args, scratch)) {}
    }

    // MARK: profiling (`enhance forward --profile`)

    public func startProfile() throws -> Bool {
        sync { profile = OpProfileCollector() }
        return true
    }

    public func finishProfile() throws -> OpProfile? {
        sync {
            defer { profile = nil }
            return profile?.profile(clock: "host clock around each oneDNN primitive, own Winograd call and loop of the backend's own (each waits for its result); allocation, page faults and glue between them are not counted")
        }
    }

    /// `body` — a oneDNN primitive, an own Winograd call or a loop of the backend's own, which waits for its result —
    /// timed as one sample of the profile in progress (nothing is evaluated when none runs): backend op `label` (its
    /// first word names the row) ran `what` (e.g. a primitive kind and oneDNN's implementation); a convolution when
    /// `kind` says so, a copy for upload and download, else an op (reorders, loops, element-wise work of a
    /// convolution op that its primitive did not fuse).
    func timed<T>(_ label: String, _ what: @autoclosure () -> String, kind: @autoclosure () -> OpProfile.Kind? = nil,
                  _ body: () throws -> T) rethrows -> T {
        guard profile != nil else { return try body() }
        let start = ContinuousClock.now
        let result = try body()
        let d = start.duration(to: .now)
        let op = label.split(separator: " ").first.map(String.init) ?? label
        let k = kind() ?? (["upload", "uploadConstant", "download"].contains(op) ? .copy : .op)
        profile?.add(k, "\(op): \(what())", seconds: Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
        return result
    }

    func flushDenormalsOnThisThread() {
        let key = "enhance.dnnl.ftz"
        if Thread.current.threadDictionary[key] == nil {
            enhance_flush_denormals_all_threads(UInt32(max(1, omp_get_max_threads())))
            Thread.current.threadDictionary[key] = true
        }
    }

    /// Whether FTZ and DAZ are set on the calling thread (diagnostics).
    public static var denormalsFlushedOnThisThread: Bool { enhance_get_mxcsr() & 0x8040 == 0x8040 }

    struct MDPair: Hashable {
        let bytes: [UInt8]
        init(_ a: dnnl_memory_desc_t, _ b: dnnl_memory_desc_t) {
            var a = a, b = b
            bytes = withUnsafeBytes(of: &a) { Array($0) } + withUnsafeBytes(of: &b) { Array($0) }
        }
    }

    func reorderPrimitive(_ src: dnnl_memory_desc_t, _ dst: dnnl_memory_desc_t, op: String) throws -> Primitive {
        let key = MDPair(src, dst)
        if let p = reorderCache[key] { return p }
        var s = src, d = dst
        var pd: dnnl_primitive_desc_t?
        try dnnlCheck(dnnl_reorder_primitive_desc_create(&pd, &s, engine, &d, engine, nil), op + " reorder")
        let p = try Primitive(pd: pd!, op: op + " reorder")
        reorderCache[key] = p
        return p
    }

    /// Reorders raw memory described by `srcMD` into `dstMD`.
    func reorder(_ srcMD: dnnl_memory_desc_t, _ src: UnsafeMutableRawPointer, _ dstMD: dnnl_memory_desc_t,
                 _ dst: UnsafeMutableRawPointer, op: String) throws {
        let p = try reorderPrimitive(srcMD, dstMD, op: op)
        try execute(p, [(DNNL_ARG_FROM, Memory(srcMD, src, engine: engine, op: op)),
                        (DNNL_ARG_TO, Memory(dstMD, dst, engine: engine, op: op))], op: op + " reorder")
    }

    func reorder(_ src: Tensor, into dst: Tensor, op: String) throws {
        if src.layout != dst.layout { activationReorders += 1 }
        try reorder(md(src), src.buffer.pointer + src.byteOffset, md(dst), dst.buffer.pointer + dst.byteOffset, op: op)
    }

    // MARK: memory API

    public func upload(_ h: HostTensor) throws -> Tensor { try upload(h, pool: pool, op: "upload") }

    public func uploadConstant(_ h: HostTensor) throws -> Tensor { try upload(h, pool: weightPool, op: "uploadConstant") }

    private func upload(_ h: HostTensor, pool: BufferPool, op: String) throws -> Tensor {
        try sync {
            let shape = try h.tensorShape()
            // Inputs with a channel count off the block size (RGB images) stay plain: the first convolution reads
            // NCHW directly, which oneDNN's JIT supports, and nothing gets padded to a full block.
            let layout: TensorLayout = shape.c % blockedLayout.channelBlock != 0 ? .nchw : preferredLayout(shape)
            let out = try alloc(shape, layout, pool: pool, op: op)
            let src = MD.make(shape.dims, dnnl_nchw)
            try h.data.withUnsafeBufferPointer { p in
                try reorder(src, UnsafeMutableRawPointer(mutating: p.baseAddress!), md(out), out.buffer.pointer, op: op)
            }
            return out
        }
    }

    public func download(_ t: Tensor) throws -> HostTensor {
        try sync {
            try check(t, "download")
            var data = [Float](repeating: 0, count: t.shape.count)
            let dst = MD.make(t.shape.dims, dnnl_nchw)
            try data.withUnsafeMutableBufferPointer { p in
                try reorder(md(t), t.buffer.pointer + t.byteOffset, dst, UnsafeMutableRawPointer(p.baseAddress!), op: "download")
            }
            return try HostTensor(shape: t.shape.dims, data: data)
        }
    }

    public func empty(_ shape: TensorShape) throws -> Tensor {
        try sync { try alloc(shape, op: "empty") }
    }

    public func zeros(_ shape: TensorShape) throws -> Tensor {
        try sync { try alloc(shape, zeroed: true, op: "zeros") }
    }

    public func channelView(_ t: Tensor, _ range: Range<Int>) throws -> Tensor {
        try check(t, "channelView")
        guard range.lowerBound >= 0, range.upperBound <= t.shape.c, !range.isEmpty else {
            throw TensorError.invalidShape(op: "channelView", message: "range \(range) outside C=\(t.shape.c)")
        }
        let b = t.layout.channelBlock
        guard range.lowerBound % b == 0, range.upperBound % b == 0 || range.upperBound == t.shape.c else {
            throw TensorError.unsupported(op: "channelView",
                message: "channels \(range) of \(t.shape): \(t.layout) views must start (and end, unless at C) on a multiple of \(b); use sliceChannels/concat")
        }
        var s = t.shape; s.c = range.count
        let offset = range.lowerBound * t.shape.h * t.shape.w * 4
        return Tensor(shape: s, layout: t.layout, buffer: t.buffer, byteOffset: t.byteOffset + offset,
                      storageChannels: t.storageChannels, backendID: id)
    }

    public func copy(_ source: Tensor, into destination: Tensor) throws {
        try sync {
            try check(source, "copy"); try check(destination, "copy")
            guard source.shape == destination.shape else {
                throw TensorError.shapeMismatch(op: "copy", expected: destination.shape.description, actual: source.shape.description)
            }
            if source.buffer === destination.buffer && source.byteOffset == destination.byteOffset
                && source.layout == destination.layout && source.storageChannels == destination.storageChannels { return }
            let b = blockedLayout.channelBlock
            if source.layout == blockedLayout, destination.layout == blockedLayout, source.shape.c % b == 0,
               source.buffer !== destination.buffer {
                // whole channel blocks (RRDB's block input into its dense concatenation): every block's plane (H·W·b
                // floats) is contiguous in both, views included, so a memcpy per plane on OpenMP's threads. oneDNN
                // took its generic `simple:any` reorder into the view: x2plus 256², 69 copies, 19–26 → 7.7–8.3 ms.
                let plane = source.shape.h * source.shape.w * b
                let sImage = source.layout.paddedChannels(source.storageChannels) * source.shape.h * source.shape.w
                let dImage = destination.layout.paddedChannels(destination.storageChannels) * destination.shape.h * destination.shape.w
                timed("copy", "memcpy per block plane") {
                    enh_copy_planes(source.basePointer, destination.basePointer, source.shape.n, source.shape.c / b, plane, sImage, dImage, ompThreads)
                }
                return
            }
            try reorder(source, into: destination, op: "copy")
        }
    }

    public func copyRows(_ source: Tensor, _ rows: Range<Int>, into destination: Tensor, atRow: Int) throws {
        try sync {
            try check(source, "copyRows"); try check(destination, "copyRows")
            try Validate.rowCopy(source.shape, rows, destination.shape, atRow)
            guard !rows.isEmpty else { return }
            let (src, srcOffset) = rowsMD(source, rows.lowerBound, rows.count)
            let (dst, dstOffset) = rowsMD(destination, atRow, rows.count)
            if source.layout != destination.layout { activationReorders += 1 }
            try reorder(src, source.buffer.pointer + source.byteOffset + srcOffset,
                        dst, destination.buffer.pointer + destination.byteOffset + dstOffset, op: "copyRows")
        }
    }

    /// `count` rows of `t` from row `first` as a strided descriptor over `t`'s storage, and the byte offset of its first row.
    func rowsMD(_ t: Tensor, _ first: Int, _ count: Int) -> (dnnl_memory_desc_t, Int) {
        let s = t.shape, b = t.layout.channelBlock
        var m = MD.make([s.n, s.c, count, s.w], b == 1 ? dnnl_nchw : b == 16 ? dnnl_nChw16c : dnnl_nChw8c)
        MD.setStrides(&m, [t.layout.paddedChannels(t.storageChannels) * s.h * s.w, b * s.h * s.w, b * s.w, b])
        return (m, first * s.w * b * 4)
    }
}
