import Foundation
import Testing
import Pipeline

/// The enhance executable fixes glibc's mmap threshold at start (steady peak RSS, see HeapPolicy.swift); the symbol
/// lookup and the call must work on the glibc the project runs on.
@Test func steadyHeapPolicyIsAppliedOnGlibc() {
    #expect(useSteadyHeapPolicy(), "mallopt(M_MMAP_THRESHOLD) was not set")
}
