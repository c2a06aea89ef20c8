import Foundation
import TestSupport
@testable import Bench

/// Absolute path of an executable found on PATH, or nil.
func which(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

let python3 = which("python3")

/// A fresh temporary folder.
func tempDir(_ tag: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(tag)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The repository root and the assets folder (`ENHANCE_ASSETS` or `<root>/.cache/assets`).
let repoRoot = Repository.root
let assetsDir = Repository.assets

let haveSceneAssets = SceneKind.allCases.allSatisfy {
    FileManager.default.fileExists(atPath: assetsDir.appendingPathComponent($0.sourceFile).path)
}

/// A real external workload: a Python program that copies each input image into the output folder, sleeps,
/// optionally holds `allocMB` of touched memory, and appends a batch record with stage timings and an
/// engine peak figure to results.jsonl — the contract `enhance` commands follow.
let fakeWorkloadSource = #"""
import json, os, shutil, sys, time
inp, out, sleep_s, alloc_mb = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
fail = len(sys.argv) > 5 and sys.argv[5] == "fail"
t0 = time.time()
hold = b"x" * (alloc_mb << 20)
files = sorted(os.path.join(inp, f) for f in os.listdir(inp)) if os.path.isdir(inp) else [inp]
os.makedirs(out, exist_ok=True)
for f in files:
    time.sleep(sleep_s)
    dst = os.path.join(out, os.path.basename(f))
    shutil.copyfile(f, dst)
    rec = {"input": f, "output": os.path.basename(f), "status": "failed" if fail else "ok",
           "timings": {"decode": 0.001, "restore": sleep_s, "encode": 0.002},
           "engine_peak_bytes": 1000000 + len(hold)}
    if fail: rec["error"] = "synthetic failure"
    with open(os.path.join(out, "results.jsonl"), "a") as fh:
        fh.write(json.dumps(rec) + "\n")
"""#

/// Writes the fake workload script into `dir` and returns a spec running it.
func fakeWorkload(in dir: URL, name: String, sleep: Double, allocMB: Int = 0, family: String = "restore",
                  variant: String = "default", peerOf: String? = nil, input: WorkloadInput = .file,
                  fail: Bool = false) throws -> WorkloadSpec {
    let script = dir.appendingPathComponent("fake_workload.py")
    try fakeWorkloadSource.write(to: script, atomically: true, encoding: .utf8)
    return WorkloadSpec(name: name, family: family, variant: variant, executable: python3!,
                        arguments: [script.path, "{input}", "{output}", String(sleep), String(allocMB)] + (fail ? ["fail"] : []),
                        threads: 1, input: input, peerOf: peerOf, timeout: 60)
}

/// Writes two small PNG inputs (with clean references) for harness tests.
func smallInputs(in dir: URL) throws -> [BenchInput] {
    let folder = dir.appendingPathComponent("inputs")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    var out: [BenchInput] = []
    for (i, name) in ["alpha", "beta"].enumerated() {
        let clean = try pattern(24 + 8 * i, 24)
        let degraded = try clean.gaussianBlurred(sigma: 1).quantized()
        let p = folder.appendingPathComponent("\(name).png"), c = folder.appendingPathComponent("\(name).clean.png")
        try degraded.write(to: p)
        try clean.write(to: c)
        out.append(BenchInput(name: name, summary: "test", path: p.path, cleanPath: c.path))
    }
    return out
}
