import Foundation
import Testing
import TestSupport

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

@Test func infoReportsEngineAndPrecision() throws {
    let r = try EnhanceBinary.run(["info", "--json"])
    #expect(r.status == 0)
    let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    let o = json.compactMapValues { $0 as? String }
    #expect(o["engine"]?.hasPrefix("oneDNN 2.") == true)
    #expect((json["cuda"] as? [String: Any])?["available"] is Bool)
    let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
    let native = o["bf16"]?.hasPrefix("available") == true
    if !cpu.contains("avx512_bf16") && !cpu.contains("amx_bf16") { #expect(!native, "\(o["bf16"] ?? "")") }
    if !native && ProcessInfo.processInfo.environment["ENHANCE_BF16_EMULATION"] != "1" {
        // No bf16 as oneDNN sees the CPU (ONEDNN_MAX_CPU_ISA may cap it): the option says so, with the "unsupported"
        // exit status, instead of emulating slowly.
        #expect(o["bf16"]?.contains("bf16 unavailable") == true)
        let u = try EnhanceBinary.run(["upscale", "nothing.png", "--precision", "bf16"])
        #expect(u.status == 69)
        #expect(u.stderr.contains("bf16 unavailable"), "\(u.stderr)")
    }
}

@Test func helpListsOnlyWorkingCommands() throws {
    let r = try EnhanceBinary.run(["--help"])
    #expect(r.status == 0)
    for c in ["upscale", "restore", "chain", "forward", "inspect", "info"] { #expect(r.stdout.contains(c), "\(c)") }
    // Every listed subcommand answers --help.
    for c in ["upscale", "restore", "chain", "forward", "inspect", "info"] {
        #expect(try EnhanceBinary.run([c, "--help"]).status == 0, "\(c) --help")
    }
}
