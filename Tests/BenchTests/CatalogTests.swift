import Foundation
import Testing
@testable import Bench

@Suite struct CatalogTests {
    func config(quick: Bool = false) -> BenchConfiguration {
        var c = BenchConfiguration(enhanceBinary: "/opt/enhance", assets: URL(fileURLWithPath: "/nonexistent"),
                                   weightsDir: URL(fileURLWithPath: "/w"))
        c.quick = quick
        c.alignedInput = "aligned"
        c.peersDir = URL(fileURLWithPath: "/repo/scripts/bench/peers")
        c.torchPython = "/bin/sh"  // any executable; the probe decides availability
        c.detector = "/w/RetinaFace-R50.synthetic.safetensors"
        c.detectorSynthetic = true
        return c
    }
    let synthetic = ["GPEN-BFR-512": "/w/g512", "GPEN-BFR-256": "/w/g256", "ParseNet-latest": "/w/p",
                     "RealESRGAN_x2plus": "/w/x2"]

    @Test func everyFamilyWithVariantsAndPeers() throws {
        let (w, notes) = try WorkloadCatalog.build(config(), synthetic: synthetic, available: { $0 != "chain" },
                                                   probe: { _, args in args.last != "--check" })
        let labels = w.map(\.label)
        #expect(labels.contains("realesrgan-x2plus") && labels.contains("realesrgan-x2plus [tile 256]"))
        #expect(labels.contains("gpen-512") && labels.contains("gpen-512 [aligned]") && labels.contains("gpen-256"))
        #expect(labels.contains("chain-x2plus+gpen-512"))
        let chain = w.first { $0.family == "chain" }!
        #expect(chain.arguments.contains("--bg-upsampler") && chain.arguments.contains("/w/x2"))  // restore's chain form
        let restore = w.first { $0.label == "gpen-512" }!
        #expect(restore.arguments.starts(with: ["restore", "{input}", "-o", "{output}", "--overwrite"]))
        #expect(restore.arguments.contains("--gpen") && restore.synthetic && restore.onlyInputs == nil)
        #expect(w.first { $0.label == "gpen-512 [threads 1]" }!.threads == 1)
        #expect(w.first { $0.label == "gpen-512 [threads 1]" }!.arguments.contains("1"))
        #expect(w.first { $0.label == "realesrgan-x2plus [tile 256]" }!.onlyInputs == ["frontal"])
        #expect(w.first { $0.label == "gpen-512 [aligned]" }!.onlyInputs == ["aligned"])
        #expect(w.first { $0.variant == "folder --jobs 2" }!.input == .folder)
        let torchESR = w.first { $0.name == "torch-realesrgan-x2plus" }!
        #expect(torchESR.peerOf == "realesrgan-x2plus" && torchESR.family == "peer")
        #expect(w.first { $0.name == "torch-gpen-512" }!.peerOf == "gpen-512 [aligned]")
        #expect(notes.contains { $0.contains("synthetic RetinaFace-R50") })
        #expect(notes.contains { $0.contains("ncnn peer skipped") })
    }

    /// With the real RetinaFace the PyTorch peer also runs upstream's whole-photo pipeline beside `restore`; with the
    /// synthetic detector (no faces) it does not, and a note says why.
    @Test func wholePhotoRestorePeerNeedsTheRealDetector() throws {
        var c = config()
        c.detector = "/a/RetinaFace-mnet025.safetensors"
        c.detectorSynthetic = false
        let (w, _) = try WorkloadCatalog.build(c, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        let peer = try #require(w.first { $0.name == "torch-gpen-512" && $0.variant == "default" })
        #expect(peer.peerOf == "gpen-512" && peer.onlyInputs == nil && peer.synthetic)
        #expect(Array(peer.arguments.dropFirst().prefix(8)) == ["restore", "--weights", "/w/g512", "--parser", "/w/p", "--detector",
                                                                  "/a/RetinaFace-mnet025.safetensors", "--input"])
        #expect(w.contains { $0.name == "torch-gpen-512" && $0.variant == "aligned" })
        let (none, notes) = try WorkloadCatalog.build(config(), synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        #expect(!none.contains { $0.name == "torch-gpen-512" && $0.variant == "default" })
        #expect(notes.contains { $0.contains("whole-photo restore skipped") })
    }

    /// `bench --device cuda --precision fp16`: every enhance workload and the PyTorch peer carry the device and precision;
    /// without them nothing is added (each command's own default).
    @Test func deviceAndPrecisionReachEveryEngine() throws {
        var c = config()
        c.device = "cuda"
        c.precision = "fp16"
        let (w, _) = try WorkloadCatalog.build(c, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        let ours = w.filter { $0.family != "peer" }
        #expect(!ours.isEmpty)
        for x in ours {
            let a = x.arguments
            #expect(a.firstIndex(of: "--device").map { a[$0 + 1] } == "cuda" && a.firstIndex(of: "--precision").map { a[$0 + 1] } == "fp16", "\(x.label): \(a)")
        }
        for peer in w where peer.name.hasPrefix("torch-") && ["default", "aligned"].contains(peer.variant) {
            #expect(Array(peer.arguments.suffix(4)) == ["--device", "cuda", "--precision", "fp16"], "\(peer.name): \(peer.arguments)")
        }
        let (plain, _) = try WorkloadCatalog.build(config(), synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        #expect(!plain.contains { $0.arguments.contains("--device") || $0.arguments.contains("--precision") })
    }

    /// On cuda (not `--quick`) each PyTorch peer also runs the study's other settings beside the same-precision one:
    /// fp32 → TF32 on, fp16 → channels_last, and torch.compile at the bench's precision; each mirrors the same row, so
    /// the ratios are keyed by peer label.
    @Test func cudaPeersShowTheStudysSettings() throws {
        for (precision, extra) in [("fp32", ["--precision", "tf32"]), ("fp16", ["--precision", "fp16", "--channels-last"])] {
            var c = config()
            c.device = "cuda"
            c.precision = precision
            let (w, _) = try WorkloadCatalog.build(c, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
            let esr = w.filter { $0.name == "torch-realesrgan-x2plus" }
            #expect(esr.map(\.variant) == ["default", extra == ["--precision", "tf32"] ? "tf32" : "fp16 channels_last", "\(precision) compile"], "\(esr.map(\.variant))")
            #expect(esr.allSatisfy { $0.peerOf == "realesrgan-x2plus" })
            #expect(Array(esr[1].arguments.suffix(extra.count)) == extra)
            #expect(Array(esr[2].arguments.suffix(4)) == ["--precision", precision, "--compile", "default"])
            #expect(w.filter { $0.name == "torch-gpen-512" }.map(\.variant).contains("aligned \(precision) compile"))
            c.quick = true
            let (quick, _) = try WorkloadCatalog.build(c, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
            #expect(quick.filter { $0.name == "torch-realesrgan-x2plus" }.map(\.variant) == ["default"])
        }
        // Our GPU settings as variants on cuda, --quick included: channels-last and CUDA graphs for the upscale and the
        // aligned GPEN rows; the folder run merging images only without --quick; none on the CPU.
        var g = config()
        g.device = "cuda"
        g.quick = true
        let (gq, _) = try WorkloadCatalog.build(g, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        for (name, variant, flag) in [("realesrgan-x2plus", "nhwc", "--layout"), ("realesrgan-x2plus", "cuda-graph", "--cuda-graph"),
                                      ("gpen-512", "aligned nhwc", "--layout"), ("gpen-512", "aligned cuda-graph", "--cuda-graph")] {
            let row = gq.first { $0.name == name && $0.variant == variant }
            #expect(row?.arguments.contains(flag) == true, "\(name) [\(variant)]: \(gq.map(\.label))")
        }
        #expect(!gq.contains { $0.variant.contains("image-batch") })
        g.quick = false
        let (gf, _) = try WorkloadCatalog.build(g, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        #expect(gf.filter { $0.variant == "folder --image-batch 2" }.map(\.name).sorted() == ["gpen-512", "realesrgan-x2plus"])
        let (cpu, _) = try WorkloadCatalog.build(config(), synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        #expect(!cpu.contains { $0.arguments.contains("--cuda-graph") || $0.arguments.contains("--layout") || $0.arguments.contains("--image-batch") })

        // Ratios of several peers of one row stay apart (keyed by label).
        let w = WorkloadSpec(name: "x", family: "upscale", executable: "/bin/true", arguments: [])
        let p1 = WorkloadSpec(name: "torch-x", family: "peer", executable: "/bin/true", arguments: [], peerOf: "x")
        let p2 = WorkloadSpec(name: "torch-x", family: "peer", variant: "tf32", executable: "/bin/true", arguments: [], peerOf: "x")
        func m(_ s: Double) -> RunMeasurement {
            RunMeasurement(wallSeconds: s, cpuSeconds: s, peakRSSBytes: 1, utilisation: 0.5, stages: [:], memory: [:])
        }
        let rows = [(w, 1.0), (p1, 3.0), (p2, 2.0)].map { spec, s in
            BenchRunner.makeRow(spec, image: "a", images: 1, input: "/a", output: nil, measurements: [m(s)], quality: nil, error: nil, budget: 1 << 30)
        }
        let report = BenchRunner.assemble(rows: rows, inputs: [], settings: BenchProtocol(), notes: [], started: Date(), duration: 1)
        #expect(report.summaries.first { $0.workload == "x" }?.peerRatios == ["torch-x": 3.0, "torch-x [tf32]": 2.0])
    }

    /// `bench --precision bf16` (CPU): the enhance workloads compute in bf16, the PyTorch peer keeps its fp32 and no
    /// device arguments, and a note says the ratios compare bf16 with fp32.
    @Test func cpuBF16ReachesOurWorkloadsOnly() throws {
        var c = config()
        c.precision = "bf16"
        let (w, notes) = try WorkloadCatalog.build(c, synthetic: synthetic, available: { _ in true }, probe: { _, args in args.last != "--check" })
        let ours = w.filter { $0.family != "peer" }
        #expect(!ours.isEmpty)
        for x in ours { #expect(x.arguments.firstIndex(of: "--precision").map { x.arguments[$0 + 1] } == "bf16", "\(x.label)") }
        let torch = w.filter { $0.name.hasPrefix("torch-") }
        #expect(!torch.isEmpty && torch.allSatisfy { !$0.arguments.contains("--precision") && !$0.arguments.contains("--device") })
        #expect(notes.contains { $0.contains("bf16") && $0.contains("fp32") })
    }

    @Test func missingCommandsBecomeNotes() throws {
        let (w, notes) = try WorkloadCatalog.build(config(quick: true), synthetic: synthetic, available: { $0 == "upscale" },
                                                   probe: { _, _ in false })
        #expect(w.allSatisfy { $0.family == "upscale" })
        #expect(!w.contains { $0.variant.hasPrefix("tile 128") || $0.input == .folder })  // quick drops these
        #expect(notes.contains { $0.contains("enhance restore is not in this build") })
        #expect(notes.contains { $0.contains("chain rows skipped") })
        #expect(notes.contains { $0.contains("PyTorch peer for realesrgan-x2plus skipped") })
    }

    @Test func realesrganChoices() throws {
        let c = config()
        #expect(try WorkloadCatalog.realesrganWeights(c, synthetic: synthetic).synthetic)
        var x4 = c
        x4.realesrgan = "x4plus"
        #expect(throws: BenchError.self) { try WorkloadCatalog.realesrganWeights(x4, synthetic: synthetic) }  // no assets here
        var bad = c
        bad.realesrgan = "x3plus"
        #expect(throws: BenchError.self) { try WorkloadCatalog.realesrganWeights(bad, synthetic: synthetic) }
    }
}
