import Foundation
import Models
import Pipeline

/// Networks loaded once and shared: a `ModelFactory` given a cache hands out the same prepared GPEN, RetinaFace,
/// ParseNet or Real-ESRGAN network for the same file (and backend) instead of reading the weights again. A service
/// keeps one for its lifetime; the CLI needs none. Thread-safe; loading happens outside the lock, so two first
/// requests for one file may both load it (the first stored wins).
public final class ModelCache: @unchecked Sendable {
    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    /// Called once per network actually loaded: its display name and the seconds the load took.
    private let onLoad: (@Sendable (_ name: String, _ seconds: Double) -> Void)?

    struct Entry {
        let name: String
        let value: Any
    }

    public init(onLoad: (@Sendable (_ name: String, _ seconds: Double) -> Void)? = nil) { self.onLoad = onLoad }

    /// The cached value for `key`, or `load()`'s result (stored under `key`, reported as `name`).
    func value<T>(_ key: String, name: String, _ load: () throws -> T) rethrows -> T {
        lock.lock()
        if let e = entries[key], let v = e.value as? T { lock.unlock(); return v }
        lock.unlock()
        let start = ContinuousClock.now
        let v = try load()
        let seconds = secondsSince(start)
        lock.lock()
        if let e = entries[key], let existing = e.value as? T { lock.unlock(); return existing }
        entries[key] = Entry(name: name, value: v)
        lock.unlock()
        onLoad?(name, seconds)
        return v
    }

    /// Names of the networks in memory (file stems, DNI pairs joined by '+'), sorted.
    public var loadedNames: [String] {
        lock.lock(); defer { lock.unlock() }
        return Set(entries.values.map(\.name)).sorted()
    }

    /// Forgets every network (their memory goes when the last user lets go).
    public func removeAll() {
        lock.lock(); entries.removeAll(); lock.unlock()
    }
}

extension URL {
    /// The file name without its extension: how a weights file is named in listings.
    var modelStem: String { deletingPathExtension().lastPathComponent }
}
