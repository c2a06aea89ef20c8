import Foundation

/// The models folder: `$ENHANCE_MODELS_DIR`, else `$XDG_CACHE_HOME/enhance/models`, else `~/.cache/enhance/models`.
public struct ModelStore: Sendable {
    /// The folder files are fetched into and looked up in.
    public let directory: URL

    public init(directory: URL) { self.directory = directory }

    /// The folder `path` names (`~` expanded), else the default one.
    public init(path: String?) {
        self.init(directory: path.map { URL(fileURLWithPath: ($0 as NSString).expandingTildeInPath) } ?? Self.defaultDirectory())
    }

    /// The default folder for this environment.
    public static func defaultDirectory(environment env: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        func expand(_ p: String) -> URL { URL(fileURLWithPath: (p as NSString).expandingTildeInPath) }
        if let d = env["ENHANCE_MODELS_DIR"], !d.isEmpty { return expand(d) }
        if let x = env["XDG_CACHE_HOME"], !x.isEmpty { return expand(x).appendingPathComponent("enhance/models") }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/enhance/models")
    }

    /// Where `entry` lives in this folder.
    public func url(of entry: ModelEntry) -> URL { directory.appendingPathComponent(entry.fileName) }

    /// The installed file of `entry`, if present.
    public func installed(_ entry: ModelEntry) -> URL? {
        let u = url(of: entry)
        return FileManager.default.fileExists(atPath: u.path) ? u : nil
    }

    /// One line of `enhance models list`.
    public struct Listing: Sendable {
        public let entry: ModelEntry
        public let path: String?
        public let bytes: Int?
    }

    /// Every catalog entry with its installed file, if any.
    public func list() -> [Listing] {
        ModelCatalog.all.map { e in
            let u = installed(e)
            let size = u.flatMap { try? FileManager.default.attributesOfItem(atPath: $0.path)[.size] as? Int }
            return Listing(entry: e, path: u?.path, bytes: size)
        }
    }
}
