import CCUDA
import Foundation
import TensorCore

/// The kernel source (kernels.cu, embedded at build time) compiled by NVRTC to a cubin for one architecture, loaded
/// into the context, with every entry point looked up once. Cubins are cached on disk by a hash of source, options
/// and NVRTC version, so only the first start on a machine compiles (~0.5 s).
final class CUDAKernels: @unchecked Sendable {
    /// kernels.cu as text.
    static let source = String(decoding: PackageResources.kernels_cu, as: UTF8.self)

    /// Every entry point of kernels.cu (per storage type where it has one).
    static let names: [String] = ["enh_cast_f32_f16", "enh_cast_f16_f32", "enh_pack_f16"] + ["f32", "f16"].flatMap { t in
        ["epilogue", "unary", "binary", "copy", "gather", "upfirdn", "maxpool", "softmax", "channel_reduce"].map { "enh_\($0)_\(t)" }
    }

    let module: CUmodule
    /// The context the module lives in (kept until the module is unloaded).
    let handles: CUDAHandles
    private var functions: [String: CUfunction] = [:]
    /// How the cubin was obtained: "compiled in 0.48 s" or "cached".
    let origin: String

    /// Compiles (or reads from the cache) and loads the kernels for `device` in the current context. The cache key
    /// covers the source, the options, the NVRTC version and the device (name, architecture, driver), and a cached
    /// cubin the driver refuses is compiled again and replaced.
    init(handles: CUDAHandles, device: CUDADeviceInfo, cacheFolder: URL? = CUDAKernels.defaultCacheFolder) throws {
        self.handles = handles
        let lib = handles.lib
        let target = try Self.target(library: lib, device: device)
        let options = ["-arch=\(target.arch)", "-std=c++17"]
        let key = Self.cacheKey(options: options, nvrtc: lib.nvrtcVersion, target: "\(device.name) \(device.architecture) driver \(lib.driverVersion)")
        let cached = cacheFolder.map { $0.appendingPathComponent("\(key).cubin") }
        func load(_ cubin: [UInt8]) -> (CUmodule?, CUresult) {
            var m: CUmodule?
            let r = cubin.withUnsafeBytes { lib.api.cuModuleLoadData!(&m, $0.baseAddress) }
            return (m, r)
        }
        var loaded: CUmodule?
        var from = ""
        if let cached, let data = try? Data(contentsOf: cached), !data.isEmpty {
            let (m, r) = load([UInt8](data))
            if r == CUDA_SUCCESS { loaded = m; from = "cached \(cached.path)" }
        }
        if loaded == nil {
            let start = ContinuousClock.now
            let cubin = try Self.compile(library: lib, options: options, ptx: target.ptx)
            let d = ContinuousClock.now - start
            from = String(format: "compiled by NVRTC in %.2f s", Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18)
                + (target.ptx ? " to PTX for \(target.arch) (NVRTC \(lib.nvrtcVersion.major).\(lib.nvrtcVersion.minor) has no \(device.architecture)), JIT-compiled by the driver" : "")
            let (m, r) = load(cubin)
            try lib.check(r, "cuModuleLoadData (\(target.arch) \(target.ptx ? "PTX" : "cubin"), \(cubin.count) bytes)")
            loaded = m
            if let cached {
                try? FileManager.default.createDirectory(at: cached.deletingLastPathComponent(), withIntermediateDirectories: true)
                let tmp = cached.appendingPathExtension("tmp-\(ProcessInfo.processInfo.processIdentifier)")
                if (try? Data(cubin).write(to: tmp)) != nil { _ = rename(tmp.path, cached.path) }
            }
        }
        origin = from
        let m = loaded
        module = m!
        for name in Self.names {
            var f: CUfunction?
            try lib.check(lib.api.cuModuleGetFunction!(&f, module, name), "cuModuleGetFunction \(name)")
            functions[name] = f!
        }
    }

    deinit {
        _ = handles.lib.api.cuCtxSetCurrent!(handles.context)
        _ = handles.lib.api.cuModuleUnload!(module)
    }

    /// The entry point `name`.
    func function(_ name: String) -> CUfunction {
        guard let f = functions[name] else { preconditionFailure("no kernel \(name) in kernels.cu") }
        return f
    }

    /// `~/.cache/enhance/cubin` (or `$XDG_CACHE_HOME/enhance/cubin`); `ENHANCE_CUBIN_CACHE=off` disables it.
    static var defaultCacheFolder: URL? {
        let env = ProcessInfo.processInfo.environment
        if env["ENHANCE_CUBIN_CACHE"] == "off" { return nil }
        let base = env["XDG_CACHE_HOME"].map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache")
        return base.appendingPathComponent("enhance/cubin")
    }

    /// FNV-1a 64 of source, options, NVRTC version and target device (a cache key, not a security boundary).
    static func cacheKey(options: [String], nvrtc: (major: Int, minor: Int), target: String) -> String {
        var h: UInt64 = 0xcbf29ce484222325
        for byte in Array((source + "\u{0}" + options.joined(separator: " ") + "\u{0}nvrtc \(nvrtc.major).\(nvrtc.minor)\u{0}" + target).utf8) {
            h = (h ^ UInt64(byte)) &* 0x100000001b3
        }
        return String(h, radix: 16)
    }

    /// What to compile for: the device's own `sm_XY` (a cubin) when this NVRTC knows it; else PTX for the newest
    /// `compute_XY` it knows below the device's, which the driver JIT-compiles (a GPU newer than the NVRTC); a GPU
    /// older than every architecture it knows (CUDA 13 dropped Maxwell, Pascal and Volta) is `unsupported`.
    static func target(library lib: CUDALibrary, device: CUDADeviceInfo) throws -> (arch: String, ptx: Bool) {
        let cc = device.computeCapability.major * 10 + device.computeCapability.minor
        var n: Int32 = 0
        guard let count = lib.api.nvrtcGetNumSupportedArchs, let list = lib.api.nvrtcGetSupportedArchs,
              count(&n) == NVRTC_SUCCESS, n > 0 else { return (device.architecture, false) }
        var archs = [Int32](repeating: 0, count: Int(n))
        guard list(&archs) == NVRTC_SUCCESS else { return (device.architecture, false) }
        let known = archs.map(Int.init)
        if known.contains(cc) { return (device.architecture, false) }
        if let older = known.filter({ $0 < cc }).max() { return ("compute_\(older)", true) }
        let v = lib.nvrtcVersion
        throw TensorError.unsupported(op: "cuda", message: "NVRTC \(v.major).\(v.minor) compiles for sm_\(known.min()!)…sm_\(known.max()!); \(device.name) is \(device.architecture), older than all of them (it needs a CUDA 12 NVRTC and driver)")
    }

    /// Compiles kernels.cu with NVRTC to a cubin (or, with `ptx`, to PTX text with its NUL, for a `compute_XY`
    /// target); throws with NVRTC's log when it does not compile.
    static func compile(library lib: CUDALibrary, options: [String], ptx: Bool = false, source text: String = CUDAKernels.source) throws -> [UInt8] {
        let api = lib.api
        var program: nvrtcProgram?
        try lib.check(api.nvrtcCreateProgram!(&program, text, "kernels.cu", 0, nil, nil), "nvrtcCreateProgram")
        defer { _ = api.nvrtcDestroyProgram!(&program) }
        var cOptions = options.map { strdup($0) }
        defer { cOptions.forEach { free($0) } }
        let status = cOptions.withUnsafeMutableBufferPointer { buf in
            buf.baseAddress!.withMemoryRebound(to: UnsafePointer<CChar>?.self, capacity: buf.count) {
                api.nvrtcCompileProgram!(program, Int32(options.count), $0)
            }
        }
        var logSize = 0
        _ = api.nvrtcGetProgramLogSize!(program, &logSize)
        var log = [CChar](repeating: 0, count: max(logSize, 1))
        if logSize > 1 { _ = api.nvrtcGetProgramLog!(program, &log) }
        guard status == NVRTC_SUCCESS else {
            throw TensorError.backendFailure(op: "nvrtcCompileProgram kernels.cu (\(options.joined(separator: " ")))",
                                             message: cText(log))
        }
        var size = 0
        if ptx {
            try lib.check(api.nvrtcGetPTXSize!(program, &size), "nvrtcGetPTXSize")
            var text = [CChar](repeating: 0, count: size)
            try lib.check(api.nvrtcGetPTX!(program, &text), "nvrtcGetPTX")
            return text.map { UInt8(bitPattern: $0) }
        }
        try lib.check(api.nvrtcGetCUBINSize!(program, &size), "nvrtcGetCUBINSize")
        var bytes = [CChar](repeating: 0, count: size)
        try lib.check(api.nvrtcGetCUBIN!(program, &bytes), "nvrtcGetCUBIN")
        return bytes.map { UInt8(bitPattern: $0) }
    }
}

/// One argument of a kernel launch (the driver reads each through a pointer, with the size the kernel declares).
enum KernelArg {
    case pointer(CUdeviceptr?)
    case i32(Int)
    case i64(Int)
    case f32(Float)
}

/// Element strides of a tensor in kernels.cu's terms: image to image, channel to channel, pixel to pixel.
struct Strides: Equatable {
    var n: Int, c: Int, p: Int

    init(n: Int, c: Int, p: Int) { (self.n, self.c, self.p) = (n, c, p) }

    /// `shape` stored with `storageChannels` channels (a view's parent's count) in NCHW or NHWC.
    init(_ shape: TensorShape, storageChannels: Int? = nil, channelsLast: Bool = false) {
        let s = storageChannels ?? shape.c, hw = shape.h * shape.w
        (n, c, p) = channelsLast ? (s * hw, 1, s) : (s * hw, hw, 1)
    }
}

extension CUDABackend {
    /// Compiles kernels.cu (or `source`) with the library's NVRTC for `architecture` ("sm_90": the cubin;
    /// "compute_90": PTX text with its NUL) and returns it; throws with NVRTC's log when it does not compile. The
    /// backend does this at start (cached); tests call it to compile-check the kernels without a GPU.
    public static func compileKernels(library: CUDALibrary, architecture: String, source: String? = nil) throws -> [UInt8] {
        try CUDAKernels.compile(library: library, options: ["-arch=\(architecture)", "-std=c++17"], ptx: architecture.hasPrefix("compute_"),
                                source: source ?? CUDAKernels.source)
    }
}
