// GPU memory as the driver sees it from outside the workload: NVML's "used" bytes of one device, sampled while a
// child runs (the "process" layer of ../shared/docs/gpu.md §5: context, libraries' handles and kernels included).

import CCUDA
import Foundation

/// A source of one device's memory in use, across every process.
public protocol DeviceMemoryProbe: AnyObject, Sendable {
    /// The device's name.
    var deviceName: String { get }
    /// Device memory in bytes.
    var totalBytes: Int64 { get }
    /// Bytes in use now, or nil when the read failed.
    func usedBytes() -> Int64?
    /// Fraction of the driver's last sample period in which a kernel ran (0…1), or nil when not available.
    func busyFraction() -> Double?
}

extension DeviceMemoryProbe {
    public func busyFraction() -> Double? { nil }
}

/// NVML (`libnvidia-ml.so.1`), opened at run time: the bench starts on machines without it.
public final class NVMLProbe: DeviceMemoryProbe, @unchecked Sendable {
    // SAFETY: `handle` is written in init and deinit only; reads from several threads go through NVML, which is
    // thread-safe.
    private var handle: enh_nvml
    public let deviceName: String
    public let totalBytes: Int64
    /// The library that was opened.
    public let library: String

    /// Opens NVML from `path` (nil: `$ENHANCE_NVML`, else `libnvidia-ml.so.1` from the library path) for the device
    /// on PCI bus `pciBusId` (what CUDA reports for the ordinal the workload uses: NVML ignores CUDA_VISIBLE_DEVICES
    /// and orders by bus), or without one device `index` in NVML's order.
    public init(path: String? = nil, pciBusId: String? = nil, index: Int = 0) throws(BenchError) {
        let file = path ?? ProcessInfo.processInfo.environment["ENHANCE_NVML"]
        var h = enh_nvml()
        var message = [CChar](repeating: 0, count: 512)
        let rc = enh_nvml_open(&h, file, pciBusId, UInt32(max(0, index)), &message, message.count)
        guard rc == 0 else {
            let why = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw .io(path: file ?? "libnvidia-ml.so.1", reason: "NVML unavailable: \(why)")
        }
        handle = h
        library = file ?? "libnvidia-ml.so.1"
        var name = [CChar](repeating: 0, count: 96)
        deviceName = enh_nvml_name(&h, &name, UInt32(name.count)) == 0
            ? String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "device \(index)"
        var used: UInt64 = 0, total: UInt64 = 0
        totalBytes = enh_nvml_memory(&h, &used, &total) == 0 ? Int64(total) : 0
    }

    deinit { enh_nvml_close(&handle) }

    public func usedBytes() -> Int64? {
        var used: UInt64 = 0, total: UInt64 = 0
        return withUnsafePointer(to: handle) { enh_nvml_memory($0, &used, &total) } == 0 ? Int64(used) : nil
    }

    public func busyFraction() -> Double? {
        var percent: UInt32 = 0
        return withUnsafePointer(to: handle) { enh_nvml_utilization($0, &percent) } == 0 ? Double(percent) / 100 : nil
    }
}

/// The idle level of a device: the smallest of a few reads over `seconds` (a child that just exited may still be
/// releasing its memory for a moment).
public func idleDeviceBytes(_ probe: DeviceMemoryProbe, seconds: Double = 0.05) -> Int64? {
    var lowest: Int64? = nil
    let reads = max(1, Int(seconds / 0.005))
    for i in 0..<reads {
        if let v = probe.usedBytes() { lowest = min(lowest ?? v, v) }
        if i + 1 < reads { usleep(5_000) }
    }
    return lowest
}
