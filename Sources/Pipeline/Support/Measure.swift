import Foundation

/// Seconds elapsed on the monotonic clock since `start`.
public func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
}

/// Peak resident set size (Linux `VmHWM` of /proc/PID/status) in bytes: of this process, or of `pid`; nil when
/// /proc cannot be read (no /proc, the process is gone or has not exec'd yet).
public func peakRSSBytes(pid: pid_t? = nil) -> Int64? { procStatusBytes("VmHWM:", pid: pid) }

/// Resident memory now (VmRSS) of this process or of `pid`, in bytes; nil where /proc is not available.
public func residentBytes(pid: pid_t? = nil) -> Int64? { procStatusBytes("VmRSS:", pid: pid) }

/// A kB field of /proc/PID/status, in bytes.
private func procStatusBytes(_ field: String, pid: pid_t?) -> Int64? {
    let path = "/proc/\(pid.map(String.init) ?? "self")/status"
    guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix(field) {
        let parts = line.split(separator: " ", omittingEmptySubsequences: true)
        if parts.count >= 2, let kb = Int64(parts[1]) { return kb * 1024 }
    }
    return nil
}
