import CCUDA
import Foundation
import TensorCore

/// The CUDA driver, NVRTC and cuDNN, opened at run time (`dlopen`, never linked), so the same `enhance` binary starts
/// on machines without CUDA and says why CUDA is unavailable there.
///
/// Where the libraries come from: the driver is `libcuda.so.1` from the system's library path (or
/// `ENHANCE_CUDA_DRIVER`, a full path: the tests' host emulator); NVRTC 13 (`libnvrtc.so.13`) and cuDNN 9
/// (`libcudnn.so.9`) are searched in the folders of `ENHANCE_CUDA_LIBS` (colon-separated; e.g. a PyTorch venv's
/// `site-packages/nvidia/cu13/lib:site-packages/nvidia/cudnn/lib`), then in the usual system folders.
public final class CUDALibrary: @unchecked Sendable {
    /// The function table the loader filled.
    public let api: enh_cuda_api
    /// Driver version as the driver reports it (13000 = CUDA 13.0).
    public let driverVersion: Int
    /// cuDNN version (e.g. 92801 = 9.28.1).
    public let cudnnVersion: Int
    /// NVRTC version (major, minor).
    public let nvrtcVersion: (major: Int, minor: Int)

    /// Where the loader looks, in order: `ENHANCE_CUDA_LIBS` folders, then these.
    public static let systemFolders = ["/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"]

    /// Opens the libraries; throws `unsupported` with the loader's reason (the file or symbol that is missing).
    public init(driverPath: String? = nil, libraryFolders: [String]? = nil) throws {
        let env = ProcessInfo.processInfo.environment
        let driver = driverPath ?? env["ENHANCE_CUDA_DRIVER"]
        let folders = libraryFolders
            ?? ((env["ENHANCE_CUDA_LIBS"].map { $0.split(separator: ":").map(String.init) } ?? []) + Self.systemFolders)
        var table = enh_cuda_api()
        var message = [CChar](repeating: 0, count: 1024)
        let status = folders.joined(separator: ":").withCString { dirs in
            enh_cuda_load(&table, driver, dirs, &message, message.count)
        }
        guard status == 0 else {
            throw TensorError.unsupported(op: "cuda", message: "CUDA unavailable: \(cText(message))")
        }
        api = table
        var v: Int32 = 0
        _ = api.cuDriverGetVersion?(&v)
        driverVersion = Int(v)
        cudnnVersion = Int(api.cudnnGetVersion?() ?? 0)
        var major: Int32 = 0, minor: Int32 = 0
        _ = api.nvrtcVersion?(&major, &minor)
        nvrtcVersion = (Int(major), Int(minor))
    }

    deinit {
        var table = api
        enh_cuda_unload(&table)
    }

    /// The process-wide instance (libraries are opened once), or why there is none.
    public static let shared: Result<CUDALibrary, Error> = Result { try CUDALibrary() }

    // MARK: status checks

    /// Throws with the driver's error name unless `r` is CUDA_SUCCESS.
    func check(_ r: CUresult, _ what: @autoclosure () -> String) throws {
        guard r != CUDA_SUCCESS else { return }
        throw TensorError.backendFailure(op: what(), message: "CUDA \(errorName(r))")
    }

    /// Driver errors that leave the context unusable until the process ends ("any further CUDA work will return the
    /// same error"): illegal address, launch timeout, device assert, hardware stack error, illegal instruction,
    /// misaligned address, invalid address space, invalid PC, launch failure.
    static func isSticky(_ r: CUresult) -> Bool { [700, 702, 710, 714, 715, 716, 717, 718, 719].contains(r.rawValue) }

    /// "cuda:1 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700): … (at `what`)".
    func lost(_ r: CUresult, device: Int, at what: String) -> TensorError {
        .deviceLost(device: "cuda:\(device)", message: "\(errorName(r)) (at \(what))")
    }

    /// "CUDA_ERROR_OUT_OF_MEMORY (2): out of memory".
    func errorName(_ r: CUresult) -> String {
        var name: UnsafePointer<CChar>?, text: UnsafePointer<CChar>?
        _ = api.cuGetErrorName?(r, &name)
        _ = api.cuGetErrorString?(r, &text)
        return "\(name.map { String(cString: $0) } ?? "error") (\(r.rawValue))\(text.map { ": " + String(cString: $0) } ?? "")"
    }

    /// Throws with cuDNN's message unless `s` is CUDNN_STATUS_SUCCESS.
    func check(_ s: cudnnStatus_t, _ what: @autoclosure () -> String) throws {
        guard s != CUDNN_STATUS_SUCCESS else { return }
        var detail = ""
        if let last = api.cudnnGetLastErrorString {
            var buf = [CChar](repeating: 0, count: 512)
            last(&buf, buf.count)
            detail = cText(buf)
        }
        let name = api.cudnnGetErrorString.flatMap { $0(s) }.map { String(cString: $0) } ?? "cuDNN error"
        throw TensorError.backendFailure(op: what(), message: "\(name) (\(s.rawValue))\(detail.isEmpty ? "" : ": " + detail)")
    }

    /// Throws with NVRTC's message unless `r` is NVRTC_SUCCESS.
    func check(_ r: nvrtcResult, _ what: @autoclosure () -> String) throws {
        guard r != NVRTC_SUCCESS else { return }
        let name = api.nvrtcGetErrorString.flatMap { $0(r) }.map { String(cString: $0) } ?? "NVRTC error"
        throw TensorError.backendFailure(op: what(), message: "\(name) (\(r.rawValue))")
    }
}

/// One CUDA device as `enhance info` describes it.
public struct CUDADeviceInfo: Sendable, Equatable {
    public var ordinal: Int
    public var name: String
    public var computeCapability: (major: Int, minor: Int)
    public var multiprocessors: Int
    public var totalMemoryBytes: Int
    /// "00000000:17:00.0" (cuDeviceGetPCIBusId): how NVML finds the same GPU whatever CUDA_VISIBLE_DEVICES says; nil
    /// when the driver cannot say.
    public var pciBusId: String?

    public static func == (a: Self, b: Self) -> Bool {
        a.ordinal == b.ordinal && a.name == b.name && a.computeCapability == b.computeCapability
            && a.multiprocessors == b.multiprocessors && a.totalMemoryBytes == b.totalMemoryBytes && a.pciBusId == b.pciBusId
    }

    /// "sm_90".
    public var architecture: String { "sm_\(computeCapability.major)\(computeCapability.minor)" }
}

extension CUDALibrary {
    /// Initialises the driver and says how many devices it shows (CUDA_VISIBLE_DEVICES applied); throws
    /// `unsupported` when cuInit fails (no driver or no device).
    public func deviceCount() throws -> Int {
        let r = api.cuInit!(0)
        guard r == CUDA_SUCCESS else {
            throw TensorError.unsupported(op: "cuda", message: "CUDA unavailable: cuInit failed with \(errorName(r))")
        }
        var count: Int32 = 0
        try check(api.cuDeviceGetCount!(&count), "cuDeviceGetCount")
        return Int(count)
    }

    /// Initialises the driver and describes device `ordinal`; throws `unsupported` when the driver has no such device.
    public func device(_ ordinal: Int = 0) throws -> CUDADeviceInfo {
        let count = try deviceCount()
        guard ordinal >= 0, ordinal < count else {
            throw TensorError.unsupported(op: "cuda", message: "CUDA unavailable: device \(ordinal) requested, the driver sees \(count) (cuda:0\(count > 1 ? "…cuda:\(count - 1)" : ""))")
        }
        var dev: CUdevice = 0
        try check(api.cuDeviceGet!(&dev, Int32(ordinal)), "cuDeviceGet")
        var name = [CChar](repeating: 0, count: 256)
        try check(api.cuDeviceGetName!(&name, Int32(name.count), dev), "cuDeviceGetName")
        func attribute(_ a: CUdevice_attribute) throws -> Int {
            var v: Int32 = 0
            try check(api.cuDeviceGetAttribute!(&v, a, dev), "cuDeviceGetAttribute")
            return Int(v)
        }
        var total = 0
        try check(api.cuDeviceTotalMem!(&total, dev), "cuDeviceTotalMem")
        var bus = [CChar](repeating: 0, count: 32)
        let pciBusId = api.cuDeviceGetPCIBusId.flatMap { $0(&bus, Int32(bus.count), dev) == CUDA_SUCCESS ? cText(bus) : nil }
        return CUDADeviceInfo(ordinal: ordinal, name: cText(name),
                              computeCapability: (try attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR),
                                                  try attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)),
                              multiprocessors: try attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT),
                              totalMemoryBytes: total, pciBusId: pciBusId)
    }

    /// Library versions, "driver 13.0, cuDNN 9.28.1, NVRTC 13.0".
    public var versions: String {
        "driver \(driverVersion / 1000).\(driverVersion % 1000 / 10), cuDNN \(cudnnVersion / 10000).\(cudnnVersion % 10000 / 100).\(cudnnVersion % 100), NVRTC \(nvrtcVersion.major).\(nvrtcVersion.minor)"
    }
}

/// The text of a NUL-terminated C buffer.
func cText(_ buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}
