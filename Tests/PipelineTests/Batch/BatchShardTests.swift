import Foundation
import Testing

@testable import Pipeline

@Suite struct BatchShardTests {
    @Test func shardsCoverEveryElementExactlyOnce() throws {
        var rng = SystemRandomNumberGenerator()
        for count in 1...9 {
            for size in [0, 1, 2, 7, 8, 9, 31, Int.random(in: 32...200, using: &rng)] {
                let list = Array(0..<size)
                var seen = [Int](repeating: 0, count: size)
                var sizes: [Int] = []
                for k in 0..<count {
                    let part = try BatchShard(index: k, count: count).select(list)
                    #expect(part == part.sorted())  // order preserved
                    sizes.append(part.count)
                    for x in part { seen[x] += 1 }
                }
                #expect(seen.allSatisfy { $0 == 1 }, "count \(count) size \(size)")
                #expect((sizes.max() ?? 0) - (sizes.min() ?? 0) <= 1)  // balanced within one
            }
        }
    }

    @Test func shardedPlansPartitionTheTree() throws {
        let t = try TempFolder()
        defer { t.remove() }
        try makeTree(t)
        for i in 0..<13 { try t.write("in/many/\(i).png", makePNG(width: 1, height: 1, seed: UInt8(i))) }
        let o = options(out: t.url("out"))
        let full = try BatchPlan.make(inputs: [t.url("in")], options: o)
        let everything = Set(full.items.map(\.input) + full.rejected.map(\.input))
        #expect(everything.count == 22)
        for n in 1...5 {
            var union: [String] = []
            for k in 0..<n {
                var so = o
                so.shard = try BatchShard(index: k, count: n)
                let part = try BatchPlan.make(inputs: [t.url("in")], options: so)
                #expect(part.totalCandidates == full.totalCandidates)
                #expect(part.items.allSatisfy { $0.position % n == k })
                union += part.items.map(\.input) + part.rejected.map(\.input)
            }
            #expect(union.count == everything.count, "N=\(n)")
            #expect(Set(union) == everything, "N=\(n)")
        }
    }

    @Test func parsesExplicitSpecs() throws {
        #expect(try BatchShard.parse("2/4", environment: [:]) == BatchShard(index: 2, count: 4))
        #expect(try BatchShard.parse(" 0/1 ", environment: [:]) == BatchShard(index: 0, count: 1))
        for bad in ["4/4", "-1/2", "a/b", "3", "1/0", "1/2/3", ""] {
            #expect(throws: BatchError.self, "\(bad)") { try BatchShard.parse(bad, environment: [:]) }
        }
        do {
            _ = try BatchShard.parse("4/4", environment: [:])
        } catch {
            #expect(error.description.contains("0-based"))
        }
    }

    @Test func autoReadsKubernetesIndexedJob() throws {
        let env = ["JOB_COMPLETION_INDEX": "3", "JOB_COMPLETIONS": "8"]
        #expect(try BatchShard.parse("auto", environment: env) == BatchShard(index: 3, count: 8))
        #expect(throws: BatchError.self) { try BatchShard.fromEnvironment(["JOB_COMPLETION_INDEX": "3"]) }
        #expect(throws: BatchError.self) {
            try BatchShard.fromEnvironment(["JOB_COMPLETION_INDEX": "8", "JOB_COMPLETIONS": "8"])
        }
        #expect(throws: BatchError.self) {
            try BatchShard.fromEnvironment(["JOB_COMPLETION_INDEX": "x", "JOB_COMPLETIONS": "8"])
        }
    }

    @Test func autoReadsSlurmArrays() throws {
        // --array=0-9
        #expect(try BatchShard.fromEnvironment(["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "10"])
            == BatchShard(index: 4, count: 10))
        // --array=1-5 with only MIN/MAX
        #expect(try BatchShard.fromEnvironment(
            ["SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "5"])
            == BatchShard(index: 4, count: 5))
        // --array=1-5 with COUNT and MIN (index is relative to MIN)
        #expect(try BatchShard.fromEnvironment(
            ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "5"])
            == BatchShard(index: 0, count: 5))
        // --array=0-8:2 → ids 0,2,4,6,8
        #expect(try BatchShard.fromEnvironment(
            ["SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "8",
             "SLURM_ARRAY_TASK_STEP": "2"])
            == BatchShard(index: 3, count: 5))
        #expect(throws: BatchError.self) { try BatchShard.fromEnvironment(["SLURM_ARRAY_TASK_ID": "1"]) }
        #expect(throws: BatchError.self) {
            try BatchShard.fromEnvironment(["SLURM_ARRAY_TASK_ID": "10", "SLURM_ARRAY_TASK_COUNT": "10"])
        }
    }

    @Test func autoWithoutSchedulerIsAClearError() {
        #expect(throws: BatchError.shardEnvironmentMissing) { try BatchShard.parse("auto", environment: ["HOME": "/"]) }
        #expect(BatchError.shardEnvironmentMissing.description.contains("JOB_COMPLETION_INDEX"))
        #expect(BatchError.shardEnvironmentMissing.description.contains("SLURM_ARRAY_TASK_ID"))
    }
}
