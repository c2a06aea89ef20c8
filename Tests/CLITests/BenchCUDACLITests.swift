import Foundation
import Testing
import TestSupport

/// `enhance bench --device cuda` on the CUDA host emulator: the study's GPU table — the three VRAM layers of
/// ../shared/docs/gpu.md §5 and instances per card — from the engine's own counters (records) and from NVML sampled
/// outside the child (the emulator's NVML sees the child's device memory through ENH_EMU_NVML_FILE).
@Suite struct BenchCUDACLITests {
    static let contextBytes: Int64 = 48 << 20   // what the emulator's NVML counts for a retained context
    static let emulatorTotal: Int64 = 8 << 30

    /// Runs a one-workload bench (a tiny SRVGG fixture on two 24 px photos) on the emulator; returns bench.json and stdout.
    static func bench(_ extra: [String: String], device: String = "cuda") throws -> (json: [String: Any], stdout: String, dir: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-cuda-\(UUID().uuidString)")
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        try ChainAndBatchCLITests.writePhoto(images.appendingPathComponent("a.png"), size: 24, seed: 5)
        try ChainAndBatchCLITests.writePhoto(images.appendingPathComponent("b.png"), size: 20, seed: 6)
        var env = try DeviceCLITests.emulatorEnvironment(extra)
        env["ENHANCE_NVML"] = env["ENHANCE_CUDA_DRIVER"]
        env["ENH_EMU_NVML_FILE"] = dir.appendingPathComponent("nvml-used").path
        let model = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        let r = try EnhanceBinary.run(["bench", "--device", device, "--models", "upscale", "--realesrgan", model,
                                       "--images", images.path, "--no-peers", "--no-variants", "--warmups", "0", "--runs", "2",
                                       "--out", dir.appendingPathComponent("out").path], environment: env)
        #expect(r.status == 0, "\(r.stderr)")
        let data = try Data(contentsOf: dir.appendingPathComponent("out/bench.json"))
        return (try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any]), r.stdout, dir)
    }

    @Test func reportsAllocatedReservedAndProcessVRAMWithInstancesPerCard() throws {
        let (json, stdout, dir) = try Self.bench([:])
        defer { try? FileManager.default.removeItem(at: dir) }
        let gpu = try #require(json["gpu"] as? [String: Any])
        #expect(gpu["name"] as? String == "Enhance host emulator")
        #expect((gpu["total_bytes"] as? NSNumber)?.int64Value == Self.emulatorTotal)
        let summaries = try #require(json["summaries"] as? [[String: Any]])
        #expect(summaries.count == 1)
        for s in summaries {
            let vram = try #require(s["vram"] as? [String: Any], "\(s)")
            let allocated = try #require((vram["allocated_bytes"] as? NSNumber)?.int64Value)
            let reserved = try #require((vram["reserved_bytes"] as? NSNumber)?.int64Value)
            let process = try #require((vram["process_bytes"] as? NSNumber)?.int64Value)
            // Weights and the activations of a 24 px upscale: more than the weights alone, far below a MiB of slack.
            #expect(allocated > 0 && reserved >= allocated, "allocated \(allocated) reserved \(reserved)")
            // NVML's view holds the context (retained for the whole run, so the 5 ms samples always see it) and what the
            // engine allocated (pool, weights, workspace) — sampled, so a peak in the last milliseconds before exit can be
            // missed (CI saw 253 of 365 KiB) — and nothing the engine did not allocate.
            #expect(process >= Self.contextBytes, "process \(process) reserved \(reserved)")
            #expect(process <= Self.contextBytes + 4 * reserved + (1 << 20), "process \(process) reserved \(reserved)")
            // NVML's utilisation while the child ran (the emulator says 100 % for a sample after kernels ran; the tiny
            // forward may fall between two 5 ms samples, so only presence and range are certain)
            let util = try #require((s["gpu_utilisation"] as? NSNumber)?.doubleValue, "\(s)")
            #expect(util >= 0 && util <= 1, "gpu utilisation \(util)")
            let cap = try #require(s["gpu_capacity"] as? [String: Any])
            #expect(cap["basis"] as? String == "process")
            #expect((cap["per_instance_bytes"] as? NSNumber)?.int64Value == process)
            #expect((cap["study_card"] as? NSNumber)?.int64Value == (Int64(24) << 30) / process)
            #expect((cap["this_card"] as? NSNumber)?.int64Value == Self.emulatorTotal / process)
        }
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(rows.count == 2 && rows.allSatisfy { ($0["vram"] as? [String: Any])?["process_bytes"] != nil }, "\(rows)")
        #expect(stdout.contains("GPU: Enhance host emulator, 8.00 GiB"), "\(stdout)")
        #expect(stdout.contains("GPU util") && stdout.contains("VRAM alloc") && stdout.contains("VRAM proc") && stdout.contains("fit 24 GiB"), "\(stdout)")
        let html = try String(contentsOf: dir.appendingPathComponent("out/report.html"), encoding: .utf8)
        #expect(html.contains("<table id=\"gpu\">") && html.contains("data-vram-process-bytes=\""))
        let csv = try String(contentsOf: dir.appendingPathComponent("out/bench.csv"), encoding: .utf8)
        #expect(csv.split(separator: "\n").first?.contains("vram_process_bytes") == true)
    }

    /// A GPU lost in a workload (the emulator's third kernel launch faults in every child): each run fails naming the
    /// loss, the reports are still written, and the bench exits 1 because nothing of ours was measured.
    @Test func aLostGPUFailsItsRowsAndTheBenchExits1() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bench-lost-\(UUID().uuidString)")
        let images = dir.appendingPathComponent("images")
        try FileManager.default.createDirectory(at: images, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try ChainAndBatchCLITests.writePhoto(images.appendingPathComponent("a.png"), size: 24, seed: 5)
        let model = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        let r = try EnhanceBinary.run(["bench", "--device", "cuda", "--models", "upscale", "--realesrgan", model, "--images", images.path,
                                       "--no-peers", "--no-variants", "--warmups", "0", "--runs", "1", "--out", dir.appendingPathComponent("out").path],
                                      environment: try DeviceCLITests.emulatorEnvironment(["ENH_EMU_FAULT": "0:3"]))
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.contains("enhance bench: no workload of enhance produced a measurement"), "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("out/bench.json"))) as? [String: Any])
        let rows = try #require(json["rows"] as? [[String: Any]])
        #expect(!rows.isEmpty && rows.allSatisfy { ($0["error"] as? String)?.contains("cuda:0 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700)") == true }, "\(rows)")
        #expect(r.stdout.contains("! ") && r.stdout.contains("exit status 69"), "\(r.stdout)")
    }

    /// NVML orders GPUs by PCI bus and ignores CUDA_VISIBLE_DEVICES, so the bench finds the GPU its children use (CUDA's
    /// device 0) by bus. Two emulated GPUs in reversed CUDA order (what CUDA_VISIBLE_DEVICES=1,0 does): the children run
    /// on physical GPU 1, and the process layer is that GPU's memory — NVML's device 0, which an index would pick,
    /// holds nothing.
    @Test func samplesTheGPUTheChildrenUseWhateverCUDAsOrder() throws {
        let (json, stdout, dir) = try Self.bench(["ENH_EMU_DEVICES": "2", "ENH_EMU_CUDA_ORDER": "1,0"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let gpu = try #require(json["gpu"] as? [String: Any])
        #expect(gpu["name"] as? String == "Enhance host emulator #1", "\(gpu)")
        #expect(stdout.contains("GPU: Enhance host emulator #1"), "\(stdout)")
        let summaries = try #require(json["summaries"] as? [[String: Any]])
        #expect(summaries.count == 1)
        for s in summaries {
            let vram = try #require(s["vram"] as? [String: Any], "\(s)")
            let process = try #require((vram["process_bytes"] as? NSNumber)?.int64Value)
            #expect(process >= Self.contextBytes, "process \(process)")
        }
    }

    /// `bench --device cuda:N` runs every child with CUDA_VISIBLE_DEVICES narrowed to GPU N — entry N of the bench's own
    /// list when it has one — and samples that GPU. Three emulated GPUs, the bench itself under CUDA_VISIBLE_DEVICES=2,1:
    /// cuda:1 is physical GPU 1, the children get CUDA_VISIBLE_DEVICES=1 and use it, and NVML reads its memory (had the
    /// children inherited "2,1" they would have run on GPU 2 and the process layer read nothing). A GPU that is not
    /// there is one line and exit 69; a list is a usage error.
    @Test func deviceCudaNBenchesThatGPU() throws {
        let (json, stdout, dir) = try Self.bench(["ENH_EMU_DEVICES": "3", "CUDA_VISIBLE_DEVICES": "2,1"], device: "cuda:1")
        defer { try? FileManager.default.removeItem(at: dir) }
        let gpu = try #require(json["gpu"] as? [String: Any])
        #expect(gpu["name"] as? String == "Enhance host emulator #1", "\(gpu)")
        #expect(stdout.contains("GPU: Enhance host emulator #1"), "\(stdout)")
        let notes = try #require(json["notes"] as? [String])
        #expect(notes.contains { $0.contains("GPU cuda:1 (PCI 0000:11:00.0)") && $0.contains("CUDA_VISIBLE_DEVICES=1") }, "\(notes)")
        let s = try #require((json["summaries"] as? [[String: Any]])?.first)
        let process = try #require(((s["vram"] as? [String: Any])?["process_bytes"] as? NSNumber)?.int64Value)
        #expect(process >= Self.contextBytes, "process \(process): the children did not run on the GPU NVML sampled")

        var env = try DeviceCLITests.emulatorEnvironment(["ENH_EMU_DEVICES": "2"])
        env["ENHANCE_NVML"] = env["ENHANCE_CUDA_DRIVER"]
        let absent = try EnhanceBinary.run(["bench", "--device", "cuda:2", "--models", "upscale", "--no-peers",
                                            "--out", dir.appendingPathComponent("absent").path], environment: env)
        #expect(absent.status == 69 && absent.stderr.contains("device 2 requested, the driver sees 2 (cuda:0…cuda:1)"), "\(absent.status) \(absent.stderr)")
        #expect(absent.stderr.split(separator: "\n").filter { !$0.hasPrefix("bench:") }.count == 1, "\(absent.stderr)")
        let list = try EnhanceBinary.run(["bench", "--device", "cuda:0,1", "--out", dir.appendingPathComponent("list").path], environment: env)
        #expect(list.status == 64 && list.stderr.contains("one GPU at a time"), "\(list.stderr)")
    }

    /// Should NVML not find the GPU by CUDA's bus string, the bench samples NVML's device 0 and says so in the notes.
    @Test func aBusNVMLDoesNotKnowFallsBackToItsFirstGPU() throws {
        let (json, _, dir) = try Self.bench(["ENH_EMU_NVML_NO_BUS": "1"])
        defer { try? FileManager.default.removeItem(at: dir) }
        let notes = try #require(json["notes"] as? [String])
        #expect(notes.contains { $0.contains("NVML found no GPU on PCI bus 0000:10:00.0") && $0.contains("sampling its device 0") }, "\(notes)")
        let s = try #require((json["summaries"] as? [[String: Any]])?.first)
        let process = try #require(((s["vram"] as? [String: Any])?["process_bytes"] as? NSNumber)?.int64Value)
        #expect(process >= Self.contextBytes)
    }

    /// Without NVML the bench still runs; the note says why, and instances per card come from the engine's reserved peak.
    @Test func withoutNVMLTheEnginesOwnCountsRemain() throws {
        let (json, _, dir) = try Self.bench(["ENH_EMU_NO_NVML": "1"])
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(json["gpu"] == nil)
        let notes = try #require(json["notes"] as? [String])
        #expect(notes.contains { $0.contains("GPU process memory not sampled") && $0.contains("nvmlInit_v2 failed") }, "\(notes)")
        let s = try #require((json["summaries"] as? [[String: Any]])?.first)
        let vram = try #require(s["vram"] as? [String: Any])
        #expect(vram["process_bytes"] == nil && vram["reserved_bytes"] != nil)
        #expect(s["gpu_utilisation"] == nil)
        let cap = try #require(s["gpu_capacity"] as? [String: Any])
        #expect(cap["basis"] as? String == "reserved" && cap["this_card"] == nil)
    }
}
