// Transparent huge pages for malloc'd memory: one re-exec at start-up with glibc's malloc tunable set.

import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// On kernels whose transparent huge pages are `madvise`-only (the default of many distributions), memory only gets
/// 2 MiB pages where the program asks. With `ENHANCE_THP=1` the activation pool asks for its own mappings
/// (HostAllocator) and, for the rest — checkpoint arrays, oneDNN's prepared weights and scratchpads, from glibc's
/// malloc, which asks only when the tunable `glibc.malloc.hugetlb=1` is set before the process starts — `enhance`
/// re-executes itself once with it set and takes it out of the environment again afterwards (children, such as the
/// bench's PyTorch peer, get the caller's environment). Opt-in because it is not a win everywhere (docs/bench.md):
/// on a 2-core Zen 4 VM the whole-photo restore ran 8–16 % faster (474 K → 113 K page faults), x2plus up to 6 %
/// slower when runs of different workloads alternate.
public enum HugePages {
    static let marker = "ENHANCE_THP_REEXEC"
    static let saved = "ENHANCE_THP_SAVED_TUNABLES"
    static let tunable = "glibc.malloc.hugetlb=1"

    /// The kernel's THP mode (`always`, `madvise`, `never`), or nil without the sysfs file.
    public static var kernelMode: String? {
        guard let text = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
              let open = text.firstIndex(of: "["), let close = text.firstIndex(of: "]"), open < close else { return nil }
        return String(text[text.index(after: open)..<close])
    }

    /// True in a process that was re-executed with glibc's malloc asking for huge pages.
    nonisolated(unsafe) public private(set) static var mallocAsks = false

    /// One line for `enhance info`.
    public static var summary: String {
        let on = ProcessInfo.processInfo.environment["ENHANCE_THP"] == "1"
        switch kernelMode {
        case nil: return "unknown (no /sys/kernel/mm/transparent_hugepage)"
        case "madvise"?:
            return !on ? "kernel madvise; not asked for (ENHANCE_THP=1 asks)"
                : "kernel madvise; asked for by the activation pool" + (mallocAsks ? " and malloc (glibc.malloc.hugetlb=1)" : "")
        case let m?: return "kernel \(m)"
        }
    }

    /// Call first thing in `main`: with ENHANCE_THP=1 re-executes this program with the tunable, or (in the re-executed
    /// process) restores the caller's GLIBC_TUNABLES. Returns when no re-exec happens.
    public static func prepareProcess() {
        let env = ProcessInfo.processInfo.environment
        /// Puts GLIBC_TUNABLES back to `tunables` and drops the re-exec's own variables.
        func restore(_ tunables: String?) {
            unsetenv(marker)
            if let tunables { setenv("GLIBC_TUNABLES", tunables, 1) } else { unsetenv("GLIBC_TUNABLES") }
            unsetenv(saved)
        }
        if env[marker] == "1" {
            // The re-executed process: glibc has read its tunables; give children the caller's environment.
            mallocAsks = true
            restore(env[saved])
            return
        }
        guard env["ENHANCE_THP"] == "1", !(env["GLIBC_TUNABLES"] ?? "").contains("glibc.malloc.hugetlb"),
              kernelMode == "madvise" else { return }
        if let old = env["GLIBC_TUNABLES"] { setenv(saved, old, 1) }
        setenv("GLIBC_TUNABLES", env["GLIBC_TUNABLES"].map { $0 + ":" + tunable } ?? tunable, 1)
        setenv(marker, "1", 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // exec failed (no /proc, say): carry on as we are, with the environment as it was
        restore(env["GLIBC_TUNABLES"])
    }
}
