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

/// Byte sizes as people write them: `12G`, `12GiB`, `512M`, `800MB`, `1.5G` (binary units) or plain bytes.
public enum ByteSize {
    /// Parses a size; throws naming the text when it is malformed, not positive or above 1 PiB.
    public static func parse(_ text: String) throws(BenchError) -> Int64 {
        let t = text.trimmingCharacters(in: .whitespaces).lowercased()
        let units: [(String, Double)] = [("tib", 0x1p40), ("tb", 0x1p40), ("t", 0x1p40), ("gib", 0x1p30), ("gb", 0x1p30),
                                         ("g", 0x1p30), ("mib", 0x1p20), ("mb", 0x1p20), ("m", 0x1p20),
                                         ("kib", 0x1p10), ("kb", 0x1p10), ("k", 0x1p10), ("b", 1)]
        var number = t, factor = 1.0
        for (suffix, f) in units where t.hasSuffix(suffix) {
            number = String(t.dropLast(suffix.count)).trimmingCharacters(in: .whitespaces)
            factor = f
            break
        }
        guard let v = Double(number), v.isFinite, v > 0, v * factor <= 0x1p50 else {
            throw .invalidArgument("memory size \"\(text)\" must be a positive number with an optional unit (K, M, G, T)")
        }
        return Int64(v * factor)
    }

    /// A short human form in binary units: `1.25 GiB`, `730 MiB`.
    public static func format(_ bytes: Int64) -> String {
        let b = Double(bytes)
        if b >= 0x1p30 { return String(format: "%.2f GiB", b / 0x1p30) }
        if b >= 0x1p20 { return String(format: "%.0f MiB", b / 0x1p20) }
        if b >= 0x1p10 { return String(format: "%.0f KiB", b / 0x1p10) }
        return "\(bytes) B"
    }
}
