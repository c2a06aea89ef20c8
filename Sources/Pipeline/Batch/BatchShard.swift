// Deterministic partition of the sorted input list across independent processes (schedulers do the rest).

/// One shard of a batch: process the files whose position `i` in the sorted input list has `i % count == index`.
///
/// Round-robin over the sorted list balances shards to within one file. It assumes every shard lists the same
/// inputs; with resume (skip-existing) and atomic writes, any shard can be retried or the whole job rerun.
public struct BatchShard: Sendable, Equatable, CustomStringConvertible {
    /// 0-based shard index, `0 ..< count`.
    public let index: Int
    /// Number of shards, at least 1.
    public let count: Int

    /// Creates shard `index` of `count`; throws if `count < 1` or `index` is out of range.
    public init(index: Int, count: Int) throws(BatchError) {
        guard count >= 1 else { throw .invalidShard(spec: "\(index)/\(count)", reason: "shard count must be at least 1") }
        guard index >= 0 && index < count else {
            throw .invalidShard(spec: "\(index)/\(count)", reason: "index must be in 0..<\(count) (0-based)")
        }
        self.index = index
        self.count = count
    }

    public var description: String { "\(index)/\(count)" }

    /// Whether the element at `position` of the sorted list belongs to this shard.
    public func contains(position: Int) -> Bool { position % count == index }

    /// The elements of `sorted` that belong to this shard, in order.
    public func select<T>(_ sorted: [T]) -> [T] {
        sorted.enumerated().compactMap { contains(position: $0.offset) ? $0.element : nil }
    }

    /// Parses `"K/N"` (0-based K) or `"auto"`; `auto` reads scheduler variables from `environment`.
    public static func parse(_ spec: String, environment: [String: String]) throws(BatchError) -> BatchShard {
        let trimmed = spec.trimmingSpaces
        if trimmed.lowercased() == "auto" { return try fromEnvironment(environment) }
        let parts = trimmed.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw .invalidShard(spec: spec, reason: "expected K/N with 0-based K (for example 0/4) or 'auto'")
        }
        do { return try BatchShard(index: k, count: n) } catch { throw .invalidShard(spec: spec, reason: "\(error)") }
    }

    /// Reads Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, `JOB_COMPLETIONS`) or Slurm array variables
    /// (`SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT`, or with `SLURM_ARRAY_TASK_MIN`/`MAX`/`STEP`).
    public static func fromEnvironment(_ env: [String: String]) throws(BatchError) -> BatchShard {
        func int(_ key: String) throws(BatchError) -> Int? {
            guard let raw = env[key] else { return nil }
            guard let v = Int(raw.trimmingSpaces) else {
                throw .invalidShard(spec: "auto", reason: "\(key)='\(raw)' is not an integer")
            }
            return v
        }
        if let k = try int("JOB_COMPLETION_INDEX") {
            guard let n = try int("JOB_COMPLETIONS") else {
                throw .invalidShard(
                    spec: "auto",
                    reason: "JOB_COMPLETION_INDEX is set but JOB_COMPLETIONS is not; set it to the Job's completions "
                        + "in the pod template (Kubernetes does not set it)")
            }
            return try checked(k, n, source: "JOB_COMPLETION_INDEX=\(k), JOB_COMPLETIONS=\(n)")
        }
        if let id = try int("SLURM_ARRAY_TASK_ID") {
            let minID = try int("SLURM_ARRAY_TASK_MIN")
            let maxID = try int("SLURM_ARRAY_TASK_MAX")
            let step = try int("SLURM_ARRAY_TASK_STEP") ?? 1
            guard step >= 1 else { throw .invalidShard(spec: "auto", reason: "SLURM_ARRAY_TASK_STEP=\(step)") }
            let base = minID ?? 0
            guard (id - base) % step == 0 else {
                throw .invalidShard(spec: "auto", reason: "SLURM_ARRAY_TASK_ID=\(id) is not on the array's step grid")
            }
            let k = (id - base) / step
            let n: Int
            if let count = try int("SLURM_ARRAY_TASK_COUNT") {
                n = count
            } else if let lo = minID, let hi = maxID {
                n = (hi - lo) / step + 1
            } else {
                throw .invalidShard(
                    spec: "auto",
                    reason: "SLURM_ARRAY_TASK_ID is set but neither SLURM_ARRAY_TASK_COUNT nor SLURM_ARRAY_TASK_MIN/MAX")
            }
            return try checked(k, n, source: "SLURM_ARRAY_TASK_ID=\(id)")
        }
        throw .shardEnvironmentMissing
    }

    private static func checked(_ k: Int, _ n: Int, source: String) throws(BatchError) -> BatchShard {
        do { return try BatchShard(index: k, count: n) } catch {
            throw .invalidShard(spec: "auto", reason: "\(source) gives shard \(k)/\(n), out of range")
        }
    }
}

fileprivate extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}
