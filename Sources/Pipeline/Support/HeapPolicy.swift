import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Makes the process's peak memory steady from run to run. glibc's malloc gives a request above its mmap threshold a
/// mapping of its own, returned to the system on free, and serves smaller ones from the heap, which keeps what is
/// freed. The threshold moves up (to 32 MiB) each time such a mapping is freed, so once a checkpoint's host weights had
/// been freed, later large buffers came from the heap, and a restore's peak RSS differed by ≈0.27 GB between runs
/// of the same command (1.51–1.78 GB). With the threshold fixed at 1 MiB every large buffer has its own mapping: 1.379–
/// 1.387 GB over four runs. A `MALLOC_MMAP_THRESHOLD_` set in the environment is left to glibc. Returns whether the
/// threshold was set.
@discardableResult
public func useSteadyHeapPolicy() -> Bool {
#if canImport(Glibc)
    guard ProcessInfo.processInfo.environment["MALLOC_MMAP_THRESHOLD_"] == nil,
          let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return false }   // RTLD_DEFAULT
    // <malloc.h> is not part of Swift's Glibc module: mallopt(M_MMAP_THRESHOLD = -3, bytes) through its symbol.
    let mallopt = unsafeBitCast(symbol, to: (@convention(c) (Int32, Int32) -> Int32).self)
    return mallopt(-3, 1 << 20) == 1
#else
    return false
#endif
}
