import Foundation
import TensorCore

/// Spreads a folder's images over several processors of one kind — the same models on several GPUs — each image's
/// compute going to the least busy one (ties: the next in turn, so a one-at-a-time run alternates), and the notes
/// naming it when there are several. Decoding and encoding are the first processor's (they do not touch a device).
///
/// A member whose device is lost (`TensorError.deviceLost`: a CUDA context broken for the rest of the process) takes
/// no more images; the image it failed is computed again by another member and its notes say so. With every member
/// lost, the loss is thrown (the batch runner then stops starting images).
public final class DevicePoolProcessor<P: BatchProcessor>: BatchProcessor, @unchecked Sendable {
    // SAFETY: `busy`, `turn` and `lost` are read and written under `lock`; the members are Sendable.
    public let members: [(name: String, processor: P)]
    private let lock = NSLock()
    private var busy: [Int]
    private var turn = 0
    private var lost: [Int: TensorError] = [:]

    /// `members`: a name for the record ("cuda:1") and its processor; at least one.
    public init(_ members: [(name: String, processor: P)]) {
        precondition(!members.isEmpty, "a device pool needs a member")
        self.members = members
        busy = Array(repeating: 0, count: members.count)
    }

    /// The members whose device is lost, by name, with the error that said so.
    public var lostMembers: [(name: String, error: TensorError)] {
        lock.withLock { lost.sorted { $0.key < $1.key }.map { (members[$0.key].name, $0.value) } }
    }

    public func load(_ item: BatchItem, notes: inout BatchNotes) async throws -> P.Loaded {
        try await members[0].processor.load(item, notes: &notes)
    }

    public func compute(_ loaded: P.Loaded, item: BatchItem, notes: inout BatchNotes) async throws -> P.Computed {
        var losses: [TensorError] = []
        while true {
            let picked = lock.withLock { () -> Int? in
                guard let least = busy.indices.filter({ lost[$0] == nil }).map({ busy[$0] }).min() else { return nil }
                let k = (0..<busy.count).map { (turn + $0) % busy.count }.first { lost[$0] == nil && busy[$0] == least }!
                busy[k] += 1
                turn = (k + 1) % busy.count
                return k
            }
            guard let k = picked else { throw losses.last ?? lock.withLock { lost.values.first! } }
            do {
                defer { lock.withLock { busy[k] -= 1 } }
                if members.count > 1 { notes.device = members[k].name }
                let out = try await members[k].processor.compute(loaded, item: item, notes: &notes)
                if !losses.isEmpty {
                    let moved = losses.map { "\($0); computed again on \(members[k].name)" }
                    notes.fallback = (moved + [notes.fallback].compactMap { $0 }).joined(separator: "; ")
                }
                return out
            } catch let e as TensorError where e.isDeviceLost && members.count > 1 {
                lock.withLock { if lost[k] == nil { lost[k] = e } }
                losses.append(e)
            }
        }
    }

    public func store(_ computed: P.Computed, item: BatchItem, temporaryPath: String, notes: inout BatchNotes) async throws {
        try await members[0].processor.store(computed, item: item, temporaryPath: temporaryPath, notes: &notes)
    }
}
