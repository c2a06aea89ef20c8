import Foundation
import Testing

/// Runs the built `enhance` binary as a user would.
enum EnhanceBinary {
    static var url: URL {
        // The test bundle sits next to the built products in .build/<config>/.
        if let path = ProcessInfo.processInfo.environment["ENHANCE_BIN"] { return URL(fileURLWithPath: path) }
        let here = Bundle.main.bundleURL
        for dir in [here, here.deletingLastPathComponent()] {
            let candidate = dir.appendingPathComponent("enhance")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return here.appendingPathComponent("enhance")
    }

    struct Result { var status: Int32; var stdout: String; var stderr: String }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = url
        process.arguments = arguments
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

@Test func versionPrintsSemver() throws {
    let r = try EnhanceBinary.run(["--version"])
    #expect(r.status == 0)
    #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".").count == 3)
}

@Test func unknownCommandFails() throws {
    let r = try EnhanceBinary.run(["no-such-command"])
    #expect(r.status != 0)
    #expect(r.stderr.contains("no-such-command"))
}
