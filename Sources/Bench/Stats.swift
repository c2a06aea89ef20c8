// Order statistics and capacity arithmetic.

import Foundation

/// Summary statistics of measured samples.
public enum Stats {
    /// The median (mean of the two middle values for an even count); nil for no samples.
    public static func median(_ xs: [Double]) -> Double? { percentile(xs, 50) }

    /// The `p`-th percentile (0…100) by linear interpolation between closest ranks (rank p/100·(n−1),
    /// NumPy's default), so it always lies between the smallest and largest sample; nil for no samples.
    public static func percentile(_ xs: [Double], _ p: Double) -> Double? {
        guard !xs.isEmpty else { return nil }
        let s = xs.sorted()
        let rank = max(0, min(100, p)) / 100 * Double(s.count - 1)
        let lo = Int(rank.rounded(.down)), hi = min(lo + 1, s.count - 1)
        let f = rank - Double(lo)
        return s[lo] + (s[hi] - s[lo]) * f
    }

    /// Instances that fit in `budgetBytes` when each peaks at `peakBytes`: floor(budget / peak); 0 when peak ≤ 0.
    public static func capacity(budgetBytes: Int64, peakBytes: Int64) -> Int {
        guard peakBytes > 0, budgetBytes > 0 else { return 0 }
        return Int(budgetBytes / peakBytes)
    }

    /// Images per hour per core: 3600 · images / CPU-seconds (user + sys) spent on them; 0 when no CPU time.
    public static func imagesPerHourPerCore(images: Int, cpuSeconds: Double) -> Double {
        cpuSeconds > 0 ? 3600 * Double(images) / cpuSeconds : 0
    }

    /// CPU utilisation (user + sys) / (wall × threads), in 0…1 for a process that uses at most `threads` cores.
    public static func utilisation(cpuSeconds: Double, wallSeconds: Double, threads: Int) -> Double {
        wallSeconds > 0 && threads > 0 ? cpuSeconds / (wallSeconds * Double(threads)) : 0
    }
}

