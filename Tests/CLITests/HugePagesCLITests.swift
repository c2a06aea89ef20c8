import Foundation
import Testing
import TestSupport

/// Transparent huge pages (opt-in): with `ENHANCE_THP=1` on a `madvise` kernel `enhance` re-executes itself once with
/// glibc's malloc tunable set (`enhance info` says so) and gives its children the caller's environment back; without
/// it nothing is asked for.
@Suite struct HugePagesCLITests {
    static var kernelMode: String? {
        guard let t = try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8),
              let a = t.firstIndex(of: "["), let b = t.firstIndex(of: "]") else { return nil }
        return String(t[t.index(after: a)..<b])
    }

    @Test func infoSaysWhatWasAskedFor() throws {
        let on = try EnhanceBinary.run(["info", "--json"], environment: ["ENHANCE_THP": "1"])
        let off = try EnhanceBinary.run(["info", "--json"])
        #expect(on.status == 0 && off.status == 0)
        let a = try #require(try JSONSerialization.jsonObject(with: Data(on.stdout.utf8)) as? [String: Any])["huge_pages"] as? String
        let b = try #require(try JSONSerialization.jsonObject(with: Data(off.stdout.utf8)) as? [String: Any])["huge_pages"] as? String
        switch Self.kernelMode {
        case "madvise"?:
            #expect(a == "kernel madvise; asked for by the activation pool and malloc (glibc.malloc.hugetlb=1)", "\(a ?? "nil")")
            #expect(b == "kernel madvise; not asked for (ENHANCE_THP=1 asks)", "\(b ?? "nil")")
            // A caller that set the tunable itself keeps its choice (no re-exec).
            let own = try EnhanceBinary.run(["info", "--json"], environment: ["ENHANCE_THP": "1", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"])
            let c = try #require(try JSONSerialization.jsonObject(with: Data(own.stdout.utf8)) as? [String: Any])["huge_pages"] as? String
            #expect(c == "kernel madvise; asked for by the activation pool", "\(c ?? "nil")")
        case let m?:
            #expect(a == "kernel \(m)" && b == "kernel \(m)")
        case nil:
            #expect(a?.hasPrefix("unknown") == true)
        }
    }

    /// A workload the bench starts sees the bench's caller's GLIBC_TUNABLES and none of the re-exec's variables.
    @Test func childrenGetTheCallersEnvironment() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("thp-env-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try ChainAndBatchCLITests.writePhoto(images.appendingPathComponent("a.png"), size: 16, seed: 2)
        let probe = dir.appendingPathComponent("probe.sh"), seen = dir.appendingPathComponent("env.txt")
        // The probe records its environment, then writes the record contract's output so the run counts.
        try """
        #!/bin/sh
        env > '\(seen.path)'
        cp "$1" "$2/a_out.png"
        printf '{"input": "%s", "output": "%s/a_out.png", "status": "ok", "timings": {}}\\n' "$1" "$2" > "$2/results.jsonl"
        """.write(to: probe, atomically: true, encoding: .utf8)
        chmod(probe.path, 0o755)
        let r = try EnhanceBinary.run(["bench", "--quick", "--models", "upscale", "--no-peers", "--no-variants", "--warmups", "0", "--runs", "1",
                                       "--realesrgan", Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2/weights.pth").path,
                                       "--workload", "probe=\(probe.path) {input} {output}", "--images", images.path,
                                       "--out", dir.appendingPathComponent("out").path],
                                      environment: ["ENHANCE_THP": "1", "GLIBC_TUNABLES": "glibc.malloc.mxfast=0"])
        #expect(r.status == 0, "\(r.stderr)")
        let env = try String(contentsOf: seen, encoding: .utf8).split(separator: "\n")
        #expect(env.contains("GLIBC_TUNABLES=glibc.malloc.mxfast=0"), "\(env.filter { $0.contains("GLIBC") })")
        #expect(!env.contains { $0.hasPrefix("ENHANCE_THP_") }, "\(env.filter { $0.contains("ENHANCE_THP") })")
        #expect(env.contains("ENHANCE_THP=1"))
    }
}
