// Runs one workload process and measures it from outside: wall time, CPU time, peak RSS.

import Foundation
import Pipeline
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the operating system reports about one finished child process.
public struct ProcessMeasurement: Sendable, Codable, Equatable {
    /// Wall-clock seconds from spawn to exit (monotonic clock).
    public var wallSeconds: Double
    /// User CPU seconds of the child (`ru_utime`).
    public var userSeconds: Double
    /// System CPU seconds of the child (`ru_stime`).
    public var systemSeconds: Double
    /// Peak resident set size of the child in bytes: the largest `VmHWM` of /proc/<pid>/status, sampled every
    /// 5 ms until exit (on Linux `ru_maxrss` also carries the spawning process's own peak across the
    /// vfork/exec, so it is only an upper bound); `ru_maxrss` where /proc is unavailable.
    public var peakRSSBytes: Int64
    /// `ru_maxrss` from wait4, in bytes (an upper bound of the child's peak, see `peakRSSBytes`).
    public var ruMaxRSSBytes: Int64
    /// Exit status (0…255), or 128 + signal number when it was killed by a signal.
    public var exitCode: Int32
    /// True when the bench killed the child for running past its time limit.
    public var timedOut: Bool
    /// Device memory in use just before the spawn (the idle level), bytes; nil without a device probe.
    public var deviceIdleBytes: Int64? = nil
    /// The highest device memory in use while the child ran (sampled with the RSS), bytes; nil without a probe.
    public var deviceUsedPeakBytes: Int64? = nil
    /// Mean of the device's busy fraction over the samples taken while the child ran (NVML's GPU utilisation:
    /// the share of time a kernel was running, any process); nil without a probe that reports it.
    public var deviceBusy: Double? = nil

    /// What the child added to the device at its peak: peak used − idle level (nil without both).
    public var deviceProcessPeakBytes: Int64? {
        guard let idle = deviceIdleBytes, let peak = deviceUsedPeakBytes else { return nil }
        return max(0, peak - idle)
    }

    /// User + system CPU seconds.
    public var cpuSeconds: Double { userSeconds + systemSeconds }
}

/// Spawns a program with `posix_spawn`, waits with `wait4` and returns its resource usage.
public enum ChildProcess {
    /// Runs `executable` with `arguments` (argv[0] is the executable path), extra `environment` entries on top
    /// of this process's environment, stdout and stderr written to the given files (created or truncated),
    /// and kills it with SIGKILL after `timeout` seconds. With `deviceMemory`, the device's idle level is read
    /// before the spawn and its memory in use sampled with the RSS until the child exits.
    public static func run(executable: String, arguments: [String], environment: [String: String] = [:],
                           stdoutPath: String, stderrPath: String, timeout: Double = 3600,
                           deviceMemory: DeviceMemoryProbe? = nil) throws(BenchError) -> ProcessMeasurement {
        guard access(executable, X_OK) == 0 else {
            throw .spawn(program: executable, reason: "not an executable file (\(String(cString: strerror(errno))))")
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        let argv = [executable] + arguments
        let envp = env.map { "\($0.key)=\($0.value)" }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdoutPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderrPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        let deviceIdle = deviceMemory.flatMap { idleDeviceBytes($0) }
        var deviceUsed: Int64? = nil
        var busySum = 0.0, busySamples = 0
        var pid: pid_t = 0
        let start = monotonicSeconds()
        let rc = withCStrings(argv) { cargv in
            withCStrings(envp) { cenv in posix_spawn(&pid, executable, &actions, nil, cargv, cenv) }
        }
        guard rc == 0 else { throw .spawn(program: executable, reason: String(cString: strerror(rc))) }

        let guardState = KillGuard(pid: pid)
        let timer = DispatchWorkItem { guardState.killIfRunning() }
        DispatchQueue.global().asyncAfter(deadline: .now() + max(0.001, timeout), execute: timer)

        // Wait for the exit without reaping (so the timer can never signal a recycled pid), sampling the child's
        // high-water mark: VmHWM belongs to the program's own address space, created at exec.
        var info = siginfo_t()
        var hwm: Int64 = 0
        while true {
            // The device is sampled before the exit check, so even a child that is gone by the first check has one
            // sample (its process figure is then what it held then, possibly 0, never missing).
            if let v = deviceMemory?.usedBytes() { deviceUsed = max(deviceUsed ?? v, v) }
            if let b = deviceMemory?.busyFraction() { busySum += b; busySamples += 1 }
            info = siginfo_t()
            let r = waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT | WNOHANG)
            if r != 0 && errno != EINTR { break }
            #if os(Linux)
            let exitedPid = info._sifields._sigchld.si_pid
            #else
            let exitedPid = info.si_pid
            #endif
            if r == 0 && exitedPid == pid { break }
            if let v = vmHWM(pid) { hwm = max(hwm, v) }
            usleep(5_000)
        }
        let timedOut = guardState.markExited()
        timer.cancel()
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            if errno != EINTR { throw .spawn(program: executable, reason: "wait4 failed: \(String(cString: strerror(errno)))") }
        }
        let wall = monotonicSeconds() - start
        let code: Int32 = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        #if os(Linux)
        let rssBytes = Int64(usage.ru_maxrss) * 1024  // kilobytes on Linux
        #else
        let rssBytes = Int64(usage.ru_maxrss)  // bytes on macOS
        #endif
        return ProcessMeasurement(wallSeconds: wall, userSeconds: seconds(usage.ru_utime),
                                  systemSeconds: seconds(usage.ru_stime), peakRSSBytes: hwm > 0 ? hwm : rssBytes,
                                  ruMaxRSSBytes: rssBytes, exitCode: code, timedOut: timedOut,
                                  deviceIdleBytes: deviceIdle, deviceUsedPeakBytes: deviceUsed,
                                  deviceBusy: busySamples > 0 ? busySum / Double(busySamples) : nil)
    }

    /// `VmHWM` of a live process in bytes, or nil (no /proc, process gone, or not yet exec'd into).
    static func vmHWM(_ pid: pid_t) -> Int64? { peakRSSBytes(pid: pid) }

    /// Seconds on the monotonic clock.
    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    static func seconds(_ tv: timeval) -> Double { Double(tv.tv_sec) + Double(tv.tv_usec) * 1e-6 }

    /// Calls `body` with a NULL-terminated C array of the strings.
    static func withCStrings<R>(_ strings: [String], _ body: ([UnsafeMutablePointer<CChar>?]) -> R) -> R {
        let ptrs: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) } + [nil]
        defer { for p in ptrs { free(p) } }
        return body(ptrs)
    }
}

/// Serialises the timeout kill against the exit, so a reaped pid is never signalled.
final class KillGuard: @unchecked Sendable {
    // SAFETY: every access to `exited` and `killed` holds `lock`.
    private let lock = NSLock()
    private let pid: pid_t
    private var exited = false
    private var killed = false

    init(pid: pid_t) { self.pid = pid }

    func killIfRunning() {
        lock.lock()
        defer { lock.unlock() }
        if !exited {
            kill(pid, SIGKILL)
            killed = true
        }
    }

    /// Marks the child as exited (not yet reaped); returns whether the timer killed it.
    func markExited() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        exited = true
        return killed
    }
}
