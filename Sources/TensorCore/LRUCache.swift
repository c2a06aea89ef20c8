/// A dictionary that keeps at most `capacity` entries and drops the least recently used one to make room: the
/// plan and primitive caches of a process that sees many input shapes (a service) stay bounded. Not thread-safe:
/// its owner locks. Insertion scans for the oldest entry, which costs nothing next to building what is cached.
public struct LRUCache<Key: Hashable, Value> {
    /// The most entries kept.
    public let capacity: Int
    private var entries: [Key: (value: Value, used: UInt64)] = [:]
    private var clock: UInt64 = 0

    /// An empty cache holding up to `capacity` (≥ 1) entries.
    public init(capacity: Int) {
        precondition(capacity > 0, "LRUCache capacity must be positive")
        self.capacity = capacity
    }

    /// The value for `key` (a hit counts as a use); setting a value inserts or replaces it, setting nil removes it.
    public subscript(key: Key) -> Value? {
        mutating get {
            guard let hit = entries[key] else { return nil }
            clock += 1
            entries[key] = (hit.value, clock)
            return hit.value
        }
        set {
            guard let newValue else { entries[key] = nil; return }
            clock += 1
            if entries[key] == nil, entries.count >= capacity,
               let oldest = entries.min(by: { $0.value.used < $1.value.used })?.key {
                entries[oldest] = nil
            }
            entries[key] = (newValue, clock)
        }
    }

    /// Number of entries.
    public var count: Int { entries.count }

    /// Drops every entry.
    public mutating func removeAll() { entries.removeAll() }
}
