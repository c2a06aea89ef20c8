import Foundation
import Testing
import TensorCore
@testable import Bench

@Suite struct StatsTests {
    @Test func medianAndPercentileInterpolate() {
        #expect(Stats.median([5, 1, 3]) == 3)
        #expect(Stats.median([4, 1, 3, 2]) == 2.5)
        #expect(abs(Stats.percentile([1, 2, 3, 4, 5], 95)! - 4.8) < 1e-12)
        #expect(Stats.percentile([7], 95) == 7)
        #expect(Stats.median([]) == nil)
    }

    @Test func percentilesStayWithinTheSamples() {
        var rng = SplitMix64(seed: 3)
        for n in 1...12 {
            let xs = (0..<n).map { _ in rng.nextUnit() * 10 }
            for p in [0.0, 50, 95, 100] {
                let v = Stats.percentile(xs, p)!
                #expect(v >= xs.min()! && v <= xs.max()!)
            }
        }
    }

    @Test func capacityIsTheFloorOfBudgetOverPeak() {
        #expect(Stats.capacity(budgetBytes: 12 << 30, peakBytes: 1_500_000_000) == Int((12 << 30) / 1_500_000_000))
        #expect(Stats.capacity(budgetBytes: 10, peakBytes: 3) == 3)
        #expect(Stats.capacity(budgetBytes: 10, peakBytes: 0) == 0)
        #expect(Stats.imagesPerHourPerCore(images: 1, cpuSeconds: 7.2) == 500)
        #expect(abs(Stats.utilisation(cpuSeconds: 3, wallSeconds: 2, threads: 2) - 0.75) < 1e-12)
    }
}
