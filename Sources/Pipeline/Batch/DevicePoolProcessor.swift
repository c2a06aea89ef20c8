import Foundation

/// Spreads a folder's images over several processors of one kind — the same models on several GPUs — each image's
/// compute going to the least busy one (ties: the next in turn, so a one-at-a-time run alternates), and the notes
/// naming it when there are several. Decoding and encoding are the first processor's (they do not touch a device).
public final class DevicePoolProcessor<P: BatchProcessor>: BatchProcessor, @unchecked Sendable {
    // SAFETY: `busy` and `turn` are read and written under `lock`; the members are Sendable.
    public let members: [(name: String, processor: P)]
    private let lock = NSLock()
    private var busy: [Int]
    private var turn = 0

    /// `members`: a name for the record ("cuda:1") and its processor; at least one.
    public init(_ members: [(name: String, processor: P)]) {
        precondition(!members.isEmpty, "a device pool needs a member")
        self.members = members
        busy = Array(repeating: 0, count: members.count)
    }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> P.Loaded {
        try await members[0].processor.load(item, notes: &notes)
    }

    public func compute(_ loaded: P.Loaded, item: BatchItem, notes: inout BatchNotes) async throws -> P.Computed {
        let k = lock.withLock { () -> Int in
            let least = busy.min()!
            let k = (0..<busy.count).map { (turn + $0) % busy.count }.first { busy[$0] == least }!
            busy[k] += 1
            turn = (k + 1) % busy.count
            return k
        }
        defer { lock.withLock { busy[k] -= 1 } }
        if members.count > 1 { notes.device = members[k].name }
        return try await members[k].processor.compute(loaded, item: item, notes: &notes)
    }

    public func store(_ computed: P.Computed, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        try await members[0].processor.store(computed, item: item, temporaryPath: temporaryPath, notes: &notes)
    }
}
