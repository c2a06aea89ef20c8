import Foundation

/// Runs the built `enhance` binary as a user would.
public enum EnhanceBinary {
    public static var url: URL {
        // The test bundle sits next to the built products in .build/<config>/ (ENHANCE_BIN overrides).
        if let path = ProcessInfo.processInfo.environment["ENHANCE_BIN"] { return URL(fileURLWithPath: path) }
        let here = Bundle.main.bundleURL
        for dir in [here, here.deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("enhance")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return here.appendingPathComponent("enhance")
    }

    public struct Result: Sendable { public var status: Int32; public var stdout: String; public var stderr: String }

    public static func run(_ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) throws -> Result {
        try run(executable: url, arguments, environment: environment, directory: directory)
    }

    /// Runs another program the same way (the caller's environment plus `environment`; stdout and stderr captured).
    public static func run(executable: URL, _ arguments: [String], environment: [String: String] = [:], directory: URL? = nil) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus,
                      stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }
}

/// Where the tests find their data: the checkout (from this file's path), its committed fixtures, the offline
/// assets scripts/setup fetches, and the upstream golden outputs beside the checkout.
public enum Repository {
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    /// `Tests/Fixtures`: the project's own committed fixtures.
    public static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    /// `$ENHANCE_ASSETS`, else `<root>/.cache/assets` (real weights and photos).
    public static var assets: URL {
        if let e = ProcessInfo.processInfo.environment["ENHANCE_ASSETS"], !e.isEmpty { return URL(fileURLWithPath: e) }
        return root.appendingPathComponent(".cache/assets")
    }
    /// `$ENHANCE_GOLDEN`, else `<root>/../shared/golden`, else (a git worktree one level deeper)
    /// `<root>/../../shared/golden`: outputs of the original upstream code.
    public static let golden: URL = {
        if let e = ProcessInfo.processInfo.environment["ENHANCE_GOLDEN"], !e.isEmpty { return URL(fileURLWithPath: e) }
        let up1 = root.deletingLastPathComponent().appendingPathComponent("shared/golden")
        let up2 = root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/golden")
        return FileManager.default.fileExists(atPath: up1.path) || !FileManager.default.fileExists(atPath: up2.path) ? up1 : up2
    }()
}
