import Foundation
import ImageIO
import Models
import Testing
import TensorCore
import TestSupport

/// `--device`: auto/cpu/reference work, cuda where it cannot be used is a one-line error with exit status 69, and
/// `enhance info` lists the devices. On the CUDA host emulator (Tests/Fixtures/cuda-emulator), `forward --device
/// cuda` reproduces every network's fixture through the whole CUDA code path.
@Suite struct DeviceCLITests {
    @Test func cudaIsAOneLineUnavailableError() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("device-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try ChainAndBatchCLITests.writePhoto(dir.appendingPathComponent("a.png"), size: 16, seed: 1)
        let root = Repository.root
        let model = root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        for cmd in [["upscale", dir.appendingPathComponent("a.png").path, "-m", model, "-o", dir.appendingPathComponent("o").path],
                    ["detect", dir.appendingPathComponent("a.png").path]] {
            let r = try EnhanceBinary.run(cmd + ["--device", "cuda"], environment: ["ENHANCE_CUDA_DRIVER": "/nonexistent/libcuda.so.1"])
            #expect(r.status == 69, "\(cmd[0]): \(r.stderr)")
            #expect(r.stderr.contains("device cuda: CUDA unavailable") && r.stderr.contains("/nonexistent/libcuda.so.1"), "\(r.stderr)")
            #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("o").path))
        for device in ["auto", "cpu", "reference"] {
            let r = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("a.png").path, "-m", model, "--device", device,
                                           "-o", dir.appendingPathComponent("o-\(device)").path, "--quiet"])
            #expect(r.status == 0, "\(device): \(r.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("o-\(device)/a_out.png").path))
        }
        let both = try EnhanceBinary.run(["upscale", "a.png", "--device", "cpu", "--backend", "reference"])
        #expect(both.status == 64 && both.stderr.contains("give one of --device, -g/--gpu-id and --backend"), "\(both.stderr)")
        // NHWC is a GPU layout: asking the CPU for it is the same one-line unsupported error, and nothing is written
        let nhwc = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("a.png").path, "-m", model, "--device", "cpu",
                                          "--layout", "nhwc", "-o", dir.appendingPathComponent("o-nhwc").path])
        #expect(nhwc.status == 69 && nhwc.stderr.contains("layout nhwc runs on the cuda device only"), "\(nhwc.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("o-nhwc").path))
    }

    @Test func infoListsTheDevices() throws {
        let r = try EnhanceBinary.run(["info"], environment: ["ENHANCE_CUDA_DRIVER": "/nonexistent/libcuda.so.1"])
        #expect(r.status == 0)
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("devices:") })
        #expect(line.contains("cpu (oneDNN") && line.contains("reference (plain Swift") && line.contains("cuda (unavailable: "), "\(line)")
    }

    /// The emulator's environment: its driver and library folder.
    static func emulatorEnvironment(_ extra: [String: String] = [:]) throws -> [String: String] {
        switch CUDAEmulator.build {
        case let .success(b): return ["ENHANCE_CUDA_DRIVER": b.driver, "ENHANCE_CUDA_LIBS": b.folder, "ENHANCE_CUBIN_CACHE": "off"].merging(extra) { $1 }
        case let .failure(e): Issue.record("the CUDA host emulator did not build:\n\(e.log)"); throw e
        }
    }

    @Test func infoDescribesAUsableCUDADevice() throws {
        let r = try EnhanceBinary.run(["info", "--json"], environment: try Self.emulatorEnvironment())
        #expect(r.status == 0, "\(r.stderr)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
        let cuda = try #require(json["cuda"] as? [String: Any])
        #expect(cuda["available"] as? Bool == true, "\(cuda)")
        #expect(cuda["device"] as? String == "Enhance host emulator")
        #expect(cuda["compute_capability"] as? String == "9.0")
        #expect((json["devices"] as? String)?.contains("cuda (Enhance host emulator") == true, "\(json["devices"] ?? "")")
    }

    /// `info` starts each GPU's context as `--device cuda:N` would, so a GPU the driver lists but that will not start
    /// (busy in exclusive-process mode: `ENH_EMU_CTX_FAILS`) or whose kernels cannot be built (an NVRTC that knows
    /// only newer architectures) is shown as unusable with the reason, and a usable one with its free memory and
    /// kernel target (PTX when NVRTC predates it).
    @Test func infoChecksThatEachGPUStarts() throws {
        func info(_ env: [String: String]) throws -> (json: [String: Any], cuda: [String: Any], gpus: [[String: Any]], text: String) {
            let environment = try Self.emulatorEnvironment(env)
            let j = try EnhanceBinary.run(["info", "--json"], environment: environment)
            try #require(j.status == 0, "\(j.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [String: Any])
            let cuda = try #require(json["cuda"] as? [String: Any])
            let t = try EnhanceBinary.run(["info"], environment: environment)
            try #require(t.status == 0, "\(t.stderr)")
            return (json, cuda, cuda["gpus"] as? [[String: Any]] ?? [], t.stdout)
        }
        // two GPUs, the second busy: cuda (cuda:0) is available, cuda:1 is listed as unusable, saying why
        let busy = try info(["ENH_EMU_DEVICES": "2", "ENH_EMU_CTX_FAILS": "1:46", "ENH_EMU_MEMORY": "1G"])
        #expect(busy.cuda["available"] as? Bool == true, "\(busy.cuda)")
        #expect(busy.gpus.map { $0["usable"] as? Bool } == [true, false], "\(busy.gpus)")
        #expect(busy.gpus[0]["kernels"] as? String == "sm_90 cubin")
        let free = try #require(busy.gpus[0]["memory_free_bytes"] as? Int)
        #expect(free > 0 && free <= 1 << 30, "\(free)")
        #expect(busy.gpus[1]["memory_free_bytes"] == nil)
        let problem = try #require(busy.gpus[1]["problem"] as? String)
        #expect(problem.hasPrefix("would not start: ") && problem.contains("CUDA_ERROR_DEVICE_UNAVAILABLE (46)"), "\(problem)")
        let line = try #require(busy.text.split(separator: "\n").first { $0.hasPrefix("gpus:") })
        #expect(line.contains("cuda:0 Enhance host emulator (sm_90, ") && line.contains(" MiB free), kernels sm_90 cubin"), "\(line)")
        #expect(line.contains("cuda:1 Enhance host emulator #1 (sm_90, ") && line.contains("): would not start: "), "\(line)")

        // the only GPU busy: cuda is unavailable, in the JSON and on the devices line, with the driver's error
        let none = try info(["ENH_EMU_CTX_FAILS": "46"])
        #expect(none.cuda["available"] as? Bool == false)
        let reason = try #require(none.cuda["reason"] as? String)
        #expect(reason.hasPrefix("device cuda:0 would not start: ") && reason.contains("CUDA_ERROR_DEVICE_UNAVAILABLE (46)"), "\(reason)")
        #expect((none.json["devices"] as? String)?.contains("cuda (unavailable: device cuda:0 would not start: ") == true, "\(none.json["devices"] ?? "")")

        // NVRTC older than the GPU: PTX; newer than every architecture it knows: unusable, naming the range
        let ptx = try info(["ENH_EMU_NVRTC_ARCHS": "75,80,86"])
        #expect(ptx.cuda["available"] as? Bool == true)
        #expect(ptx.gpus.first?["kernels"] as? String == "PTX for compute_86 (the driver compiles it)", "\(ptx.gpus)")
        let old = try info(["ENH_EMU_NVRTC_ARCHS": "100,120"])
        #expect(old.cuda["available"] as? Bool == false)
        #expect((old.cuda["reason"] as? String)?.contains("device cuda:0: NVRTC 13.0 compiles for sm_100…sm_120; Enhance host emulator is sm_90") == true, "\(old.cuda)")
    }

    @Test func aDriverWithoutDevicesIsAOneLineError() throws {
        let c = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-nodev-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let r = try EnhanceBinary.run(["forward", "--device", "cuda", "--weights", c.appendingPathComponent("weights.pth").path,
                                       "--input", c.appendingPathComponent("input_0.npy").path, "--output", out.path],
                                      environment: try Self.emulatorEnvironment(["ENH_EMU_NO_DEVICE": "1"]))
        #expect(r.status == 69, "\(r.stderr)")
        #expect(r.stderr.contains("device cuda: CUDA unavailable: cuInit failed"), "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")
        let auto = try EnhanceBinary.run(["info"], environment: try Self.emulatorEnvironment(["ENH_EMU_NO_DEVICE": "1"]))
        #expect(auto.stdout.contains("cuda (unavailable: CUDA unavailable: cuInit failed"), "\(auto.stdout)")
    }

    /// `--device cuda:N` picks GPU N in CUDA's order (after CUDA_VISIBLE_DEVICES). Two emulated GPUs: cuda:1 runs on
    /// the second (named in the report) and matches the fixture; `info --json` lists both with their PCI buses. One
    /// GPU: cuda:1 is the one-line unavailable error (exit 69) saying what the driver has; a malformed value is a
    /// usage error (exit 64).
    @Test func deviceCudaNPicksTheGPU() throws {
        let c = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-n-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: out) }
        func forward(_ device: String, _ env: [String: String]) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["forward", "--device", device, "--weights", c.appendingPathComponent("weights.pth").path,
                                   "--input", c.appendingPathComponent("input_0.npy").path, "--output", out.path,
                                   "--report", out.appendingPathComponent("report.json").path], environment: env)
        }
        let two = try Self.emulatorEnvironment(["ENH_EMU_DEVICES": "2"])
        let r = try forward("cuda:1", two)
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("report.json"))) as? [String: Any])
        #expect(report["device"] as? String == "cuda:1")
        #expect((report["backend"] as? String)?.contains("Enhance host emulator #1") == true, "\(report["backend"] ?? "")")
        #expect(try Self.relativeL2(out.appendingPathComponent("output.npy"), c.appendingPathComponent("output_0.npy")) <= 1e-4)

        let info = try EnhanceBinary.run(["info", "--json"], environment: two)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(info.stdout.utf8)) as? [String: Any])
        let gpus = try #require((json["cuda"] as? [String: Any])?["gpus"] as? [[String: Any]])
        #expect(gpus.map { $0["device"] as? String } == ["cuda:0", "cuda:1"])
        #expect(gpus.map { $0["pci_bus_id"] as? String } == ["0000:10:00.0", "0000:11:00.0"])

        let one = try forward("cuda:1", try Self.emulatorEnvironment())
        #expect(one.status == 69)
        #expect(one.stderr.contains("device 1 requested, the driver sees 1") && one.stderr.split(separator: "\n").count == 1, "\(one.stderr)")
        for bad in ["cuda:x", "cpu:1", "cuda:-1"] {
            #expect(try forward(bad, two).status == 64, "\(bad)")
        }
    }

    /// `--device cuda:0,1` spreads a folder over two GPUs (two emulated devices): every image computed on one of them
    /// (the record and the progress line say which; both are used), each output byte-identical to the one-GPU run;
    /// commands that run on one device refuse the list (usage error).
    @Test func aFolderSpreadsOverSeveralGPUs() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("multi-gpu-\(UUID().uuidString)")
        let photos = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for i in 0..<4 { try ChainAndBatchCLITests.writePhoto(photos.appendingPathComponent("p\(i).png"), size: 20 + 2 * i, seed: i) }
        let model = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        let env = try Self.emulatorEnvironment(["ENH_EMU_DEVICES": "2"])
        let one = try EnhanceBinary.run(["upscale", photos.path, "-m", model, "-o", dir.appendingPathComponent("one").path,
                                         "--device", "cuda"], environment: env)
        #expect(one.status == 0, "\(one.stderr)")
        let two = try EnhanceBinary.run(["upscale", photos.path, "-m", model, "-o", dir.appendingPathComponent("two").path,
                                         "--device", "cuda:0,1", "--verbose"], environment: env)
        #expect(two.status == 0, "\(two.stderr)")
        #expect(two.stderr.contains("on CUDA Enhance host emulator (") && two.stderr.contains(" and CUDA Enhance host emulator #1 ("), "\(two.stderr)")
        let records = try String(contentsOf: dir.appendingPathComponent("two/results.jsonl"), encoding: .utf8)
        #expect(records.contains(#""device":"cuda:0""#) && records.contains(#""device":"cuda:1""#), "\(records)")
        #expect(two.stderr.contains("; cuda:1"), "\(two.stderr)")
        for i in 0..<4 {
            let a = try Data(contentsOf: dir.appendingPathComponent("one/p\(i)_out.png"))
            let b = try Data(contentsOf: dir.appendingPathComponent("two/p\(i)_out.png"))
            #expect(a == b, "p\(i): the two-GPU output differs")
        }
        for command in [["forward", "--weights", model, "--input", "x.npy", "--output", dir.path], ["detect", photos.path], ["serve"]] {
            let r = try EnhanceBinary.run(command + ["--device", "cuda:0,1"], environment: env)
            #expect(r.status == 64 && r.stderr.contains("runs on one GPU"), "\(command[0]): \(r.status) \(r.stderr)")
        }
    }

    static func overflowingSRVGG(_ dir: URL, first: Float, second: Float) throws -> URL {
        let url = dir.appendingPathComponent("overflow-\(first).safetensors")
        try OverflowingSRVGG.write(to: url, scale: 2, first: first, second: second)
        return url
    }

    /// `--precision fp16` whose activations overflow half's range: the image is computed again in fp32 — byte for byte
    /// what `--precision fp32` writes — and the progress line and the record say why, instead of the black image that
    /// clamping NaN would give. A model that overflows fp32 too is a failed file naming the network (exit 1), also on
    /// the CPU.
    /// The small SRVGGNetCompact ×2 fixture (PReLU), for runs that only need some network on the GPU.
    static let srvggX2 = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2/weights.pth").path

    /// A fresh folder holding one `size`² photo `p.png` (remove the folder when done).
    static func onePhoto(_ label: String, size: Int, seed: Int) throws -> (dir: URL, photo: URL) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let photo = dir.appendingPathComponent("p.png")
        try ChainAndBatchCLITests.writePhoto(photo, size: size, seed: seed)
        return (dir, photo)
    }

    /// A GPU whose context breaks (the emulator's `ENH_EMU_FAULT`: an illegal address a few kernels into an image,
    /// sticky as on a GPU, seen first by the next cuDNN call). One GPU: the batch stops (the image in hand fails, no
    /// later image starts), exit 69, and a rerun finishes the folder with the bytes of a clean run. Two GPUs: the lost
    /// one's image is computed again on the other, which takes every later image; exit 0, same bytes.
    @Test func aLostGPUStopsTheBatchOrHandsItsImagesToAnother() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("gpu-lost-\(UUID().uuidString)")
        let photos = dir.appendingPathComponent("in")
        try FileManager.default.createDirectory(at: photos, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let names = ["a", "b", "c", "d", "e", "f"]
        for (i, n) in names.enumerated() { try ChainAndBatchCLITests.writePhoto(photos.appendingPathComponent("\(n).png"), size: 24, seed: i + 1) }
        let model = Self.srvggX2
        func upscale(_ out: String, _ extra: [String], _ env: [String: String] = [:]) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", photos.path, "-m", model, "-o", dir.appendingPathComponent(out).path] + extra,
                                  environment: try Self.emulatorEnvironment(env))
        }
        func png(_ out: String, _ n: String) -> Data? { try? Data(contentsOf: dir.appendingPathComponent("\(out)/\(n)_out.png")) }
        let clean = try upscale("clean", ["--device", "cuda"])
        try #require(clean.status == 0, "\(clean.stderr)")

        let one = try upscale("one", ["--device", "cuda", "--jobs", "1"], ["ENH_EMU_FAULT": "0:20"])
        #expect(one.status == 69, "\(one.stderr)")
        #expect(one.stderr.contains("stopped: cuda:0 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700)"), "\(one.stderr)")
        // the fault surfaced at a cuDNN call: the backend asked the stream and named the real cause
        #expect(one.stderr.contains("cudnnConvolutionForward failed with cuDNN status 5001"), "\(one.stderr)")
        #expect(!one.stderr.contains("refused every algorithm"), "a lost GPU was taken for refused algorithms:\n\(one.stderr)")
        let written = names.filter { png("one", $0) != nil }
        let records = try String(contentsOf: dir.appendingPathComponent("one/results.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(!written.isEmpty && written.count < 5, "\(written)")
        #expect(records.count == written.count + 1, "one failed image, nothing else started: \(records)")
        #expect(one.stderr.contains("\(names.count - written.count - 1) not started"), "\(one.stderr)")
        let rerun = try upscale("one", ["--device", "cuda"])
        #expect(rerun.status == 0 && rerun.stderr.contains("\(names.count - written.count) ok, \(written.count) skipped"), "\(rerun.stderr)")
        for n in names { #expect(png("one", n) != nil && png("one", n) == png("clean", n), "\(n) differs from the clean run") }

        let two = try upscale("two", ["--device", "cuda:0,1"], ["ENH_EMU_DEVICES": "2", "ENH_EMU_FAULT": "1:12"])
        #expect(two.status == 0, "\(two.stderr)")
        #expect(two.stderr.contains("upscale: cuda:1 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700)") && two.stderr.contains("its images went to the other GPUs"), "\(two.stderr)")
        for n in names { #expect(png("two", n) != nil && png("two", n) == png("clean", n), "\(n) differs from the clean run") }
        let moved = try String(contentsOf: dir.appendingPathComponent("two/results.jsonl"), encoding: .utf8)
            .split(separator: "\n").filter { $0.contains("computed again on cuda:0") }
        #expect(moved.count == 1 && moved[0].contains(#""device":"cuda:0""#), "\(moved)")

        // forward (what scripts/device-check times) exits 69 as well, naming the loss
        let c = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2")
        let forward = try EnhanceBinary.run(["forward", "--device", "cuda", "--weights", model, "--input", c.appendingPathComponent("input_0.npy").path,
                                             "--output", dir.appendingPathComponent("forward").path, "--runs", "3"],
                                            environment: try Self.emulatorEnvironment(["ENH_EMU_FAULT": "0:12"]))
        #expect(forward.status == 69 && forward.stderr.contains("enhance forward: cuda:0 is lost: CUDA_ERROR_ILLEGAL_ADDRESS (700)"), "\(forward.stderr)")
    }

    /// A GPU with too little free memory for the whole image (the emulator's `ENH_EMU_MEMORY`: other processes hold
    /// the rest): the upscaler halves the tile until it fits, the pool giving back buffers cached for the larger tile
    /// first (before, they stayed and every smaller tile failed too), and the image equals the unconstrained run.
    @Test func outOfMemoryOnTheGPUTilesSmallerUntilItFits() throws {
        let (dir, photo) = try Self.onePhoto("gpu-oom", size: 96, seed: 9)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = Self.srvggX2
        func upscale(_ out: String, _ env: [String: String]) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", photo.path, "-m", model, "-o", dir.appendingPathComponent(out).path, "--device", "cuda"],
                                  environment: try Self.emulatorEnvironment(env))
        }
        let whole = try upscale("whole", [:])
        try #require(whole.status == 0, "\(whole.stderr)")
        // 1.4 MB of activations for the whole 96×96 image; 600 KiB of device memory in all
        let small = try upscale("small", ["ENH_EMU_MEMORY": "600K"])
        #expect(small.status == 0, "\(small.stderr)")
        let record = try String(contentsOf: dir.appendingPathComponent("small/results.jsonl"), encoding: .utf8)
        #expect(record.contains(#""tiles":"24×48, 8 passes, after 3 out-of-memory retries with larger tiles""#), "\(record)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("small/p_out.png")) == Data(contentsOf: dir.appendingPathComponent("whole/p_out.png")))
        // far too little: the failure names the GPU and its free memory
        let none = try upscale("none", ["ENH_EMU_MEMORY": "100K"])
        #expect(none.status == 1, "\(none.stderr)")
        #expect(none.stderr.contains("cuda:0 is out of memory (tensors, ") && none.stderr.contains("KiB free of 100.0 KiB on the GPU even with tile"), "\(none.stderr)")
    }

    /// `--device auto`: an image the GPU cannot hold even with the smallest tile (100 KiB of emulated device memory,
    /// where `--device cuda` fails it) is computed on the CPU — the CPU's bytes, the record's and the progress line's
    /// `fallback` naming the GPU's error, a closing line counting it.
    @Test func autoComputesOnTheCPUAnImageTheGPUCannotHold() throws {
        let (dir, photo) = try Self.onePhoto("auto-cpu-image", size: 96, seed: 9)
        defer { try? FileManager.default.removeItem(at: dir) }
        func upscale(_ out: String, _ device: String) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", photo.path, "-m", Self.srvggX2, "-o", dir.appendingPathComponent(out).path, "--device", device],
                                  environment: try Self.emulatorEnvironment(["ENH_EMU_MEMORY": "100K"]))
        }
        let cpu = try upscale("cpu", "cpu")
        try #require(cpu.status == 0, "\(cpu.stderr)")
        let auto = try upscale("auto", "auto")
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("auto/p_out.png")) == Data(contentsOf: dir.appendingPathComponent("cpu/p_out.png")))
        let record = try String(contentsOf: dir.appendingPathComponent("auto/results.jsonl"), encoding: .utf8)
        #expect(record.contains(#""fallback":"cuda:0 → cpu: allocation of "#) && record.contains("even with tile"), "\(record)")
        #expect(auto.stderr.contains("upscale: 1 image computed again (cuda:0 → cpu): out of GPU memory even with the smallest tile or face batch"),
                "\(auto.stderr)")
    }

    /// A GPU the driver lists that will not start (the emulator's `ENH_EMU_CTX_FAILS=46`: CUDA_ERROR_DEVICE_UNAVAILABLE,
    /// as when another process holds it in exclusive-process mode): `--device auto` says why, once, and runs on the
    /// CPU (the bytes of `--device cpu`); `--device cuda` is the one-line unavailable error (69); fp16, which the CPU
    /// cannot run, is an error naming both reasons.
    @Test func aGPUThatWillNotStartSendsAutoToTheCPU() throws {
        let (dir, photo) = try Self.onePhoto("gpu-busy", size: 24, seed: 5)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = Self.srvggX2
        let busy = try Self.emulatorEnvironment(["ENH_EMU_CTX_FAILS": "46"])
        func upscale(_ out: String, _ extra: [String], _ env: [String: String]) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", photo.path, "-m", model, "-o", dir.appendingPathComponent(out).path, "--threads", "2"] + extra, environment: env)
        }
        let auto = try upscale("auto", [], busy)
        #expect(auto.status == 0, "\(auto.stderr)")
        let warning = "enhance: --device auto: device cuda:0 would not start: "
        #expect(auto.stderr.components(separatedBy: warning).count == 2, "said once: \(auto.stderr)")
        #expect(auto.stderr.contains("CUDA_ERROR_DEVICE_UNAVAILABLE (46)") && auto.stderr.contains("; running on the CPU"), "\(auto.stderr)")
        let cpu = try upscale("cpu", ["--device", "cpu"], [:])
        try #require(cpu.status == 0, "\(cpu.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("auto/p_out.png")) == Data(contentsOf: dir.appendingPathComponent("cpu/p_out.png")))

        let cuda = try upscale("cuda", ["--device", "cuda"], busy)
        #expect(cuda.status == 69 && cuda.stderr.contains("device cuda:0 would not start: ") && cuda.stderr.contains("CUDA_ERROR_DEVICE_UNAVAILABLE (46)"), "\(cuda.stderr)")
        let half = try upscale("half", ["--precision", "fp16"], busy)
        #expect(half.status == 69, "\(half.stderr)")
        #expect(half.stderr.contains("--device auto: device cuda:0 would not start: ") && half.stderr.contains("and on the CPU: precision fp16 runs on the cuda device only"), "\(half.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("cuda/p_out.png").path))
    }

    /// An NVRTC that predates the GPU (the emulator's `ENH_EMU_NVRTC_ARCHS=75,80,86` beside its sm_90 device): the
    /// kernels go to PTX for compute_86, which the driver JIT-compiles, the report says so, and the image equals the
    /// usual run's. A GPU older than every architecture the NVRTC knows: the one-line unavailable error (69).
    /// Real-ESRGAN's `-g/--gpu-id N` (and realesrgan-ncnn-vulkan's `-g`, `-1` = the CPU) pick the device as `--device`
    /// does, and its `--fp32` is accepted (fp32 is already the default). Two emulated GPUs, the first busy
    /// (`ENH_EMU_CTX_FAILS=0:46`): `-g 1` runs on the second with `--device cuda:1`'s bytes, `-g 0` is the one-line
    /// unavailable error; `-g -1` gives `--device cpu`'s bytes; contradicting flags are usage errors.
    @Test func realESRGANsGPUIdAndFP32FlagsPickTheDevice() throws {
        let (dir, photo) = try Self.onePhoto("gpu-id", size: 24, seed: 4)
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = try Self.emulatorEnvironment(["ENH_EMU_DEVICES": "2", "ENH_EMU_CTX_FAILS": "0:46"])
        func upscale(_ out: String, _ flags: [String]) throws -> (EnhanceBinary.Result, Data?) {
            let o = dir.appendingPathComponent(out)
            let r = try EnhanceBinary.run(["upscale", photo.path, "-m", Self.srvggX2, "-o", o.path, "--quiet"] + flags, environment: env)
            return (r, try? Data(contentsOf: o.appendingPathComponent("p_out.png")))
        }
        let (d1, cuda1) = try upscale("device1", ["--device", "cuda:1"])
        try #require(d1.status == 0 && cuda1 != nil, "\(d1.stderr)")
        let (g1, gpu1) = try upscale("g1", ["-g", "1"])
        #expect(g1.status == 0 && gpu1 == cuda1, "\(g1.stderr)")
        let (long, gpuLong) = try upscale("gpu-id", ["--gpu-id", "1", "--fp32"])
        #expect(long.status == 0 && gpuLong == cuda1, "\(long.stderr)")
        let (g0, none) = try upscale("g0", ["-g", "0"])
        #expect(g0.status == 69 && none == nil && g0.stderr.contains("device cuda:0 would not start"), "\(g0.stderr)")
        let (cpu, cpuBytes) = try upscale("cpu", ["--device", "cpu"])
        try #require(cpu.status == 0 && cpuBytes != nil, "\(cpu.stderr)")
        let (minus1, minus1Bytes) = try upscale("g-1", ["-g", "-1"])
        #expect(minus1.status == 0 && minus1Bytes == cpuBytes, "\(minus1.stderr)")
        for flags in [["-g", "0", "--device", "cpu"], ["--fp32", "--precision", "fp16"], ["-g", "x"], ["-g", "0,0"]] {
            let (r, out) = try upscale("bad", flags)
            #expect(r.status == 64 && out == nil, "\(flags): \(r.status) \(r.stderr)")
        }
    }

    /// `upscale` holds one copy of its model: the weights on the GPU are the network's parameters once (it loaded the
    /// model a second time for its "model:" line and kept both for the whole run: twice the weights in VRAM).
    @Test func upscaleHoldsOneCopyOfItsWeights() throws {
        let (dir, photo) = try Self.onePhoto("one-copy", size: 24, seed: 4)
        defer { try? FileManager.default.removeItem(at: dir) }
        let r = try EnhanceBinary.run(["upscale", photo.path, "-m", Self.srvggX2, "-o", dir.appendingPathComponent("o").path,
                                       "--device", "cuda", "--json"], environment: try Self.emulatorEnvironment())
        #expect(r.status == 0, "\(r.stderr)")
        let line = try #require(r.stdout.split(separator: "\n").first { $0.contains("\"event\":\"file\"") }, "\(r.stdout)")
        let record = try #require((try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["record"] as? [String: Any])
        let memory = try #require(record["memory"] as? [String: Any], "\(record)")
        // 2884 fp32 parameters (11 536 B) plus a few prepared vectors; two copies were 23 680 B
        let weights = try #require(memory["weights_bytes"] as? Int, "\(memory)")
        #expect(weights >= 2884 * 4 && weights < 2 * 2884 * 4, "srvgg_prelu_x2 has 2884 fp32 parameters: \(memory)")
    }

    /// `--device auto` loads the models on the CPU when they do not fit the GPU's free memory (said on stderr), with the
    /// CPU's bytes; `--device cuda` keeps the out-of-memory error. Emulated GPU of 8 KiB: the 11.5 KB of weights do not fit.
    @Test func autoLoadsOnTheCPUWhenTheModelsDoNotFitTheGPU() throws {
        let (dir, photo) = try Self.onePhoto("auto-oom", size: 24, seed: 4)
        defer { try? FileManager.default.removeItem(at: dir) }
        let env = try Self.emulatorEnvironment(["ENH_EMU_MEMORY": "8K"])
        func upscale(_ out: String, _ device: String) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", photo.path, "-m", Self.srvggX2, "-o", dir.appendingPathComponent(out).path, "--device", device],
                                  environment: env)
        }
        let cpu = try upscale("cpu", "cpu")
        try #require(cpu.status == 0, "\(cpu.stderr)")
        let auto = try upscale("auto", "auto")
        #expect(auto.status == 0, "\(auto.stderr)")
        #expect(auto.stderr.contains("enhance: --device auto: the models do not fit cuda:0 (") && auto.stderr.contains("running on the CPU"), "\(auto.stderr)")
        #expect(auto.stderr.contains("on oneDNN"), "\(auto.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("auto/p_out.png")) == Data(contentsOf: dir.appendingPathComponent("cpu/p_out.png")))
        let cuda = try upscale("cuda", "cuda")
        #expect(cuda.status == 2 && cuda.stderr.contains("cuda:0 is out of memory"), "\(cuda.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("cuda/p_out.png").path))
    }

    /// `forward --device auto` runs on the CPU when the network does not fit the GPU's free memory — its weights
    /// (8 KiB of emulated device memory) or its activations at the input's size (100 KiB: the 11.5 KB of weights fit,
    /// the 1.4 MB of a 96×96 forward do not) — said on stderr, with the CPU's outputs and a report naming the CPU;
    /// `--device cuda` keeps the out-of-memory error and writes nothing.
    @Test func forwardWithAutoRunsOnTheCPUWhenTheNetworkDoesNotFitTheGPU() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("forward-auto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("x.npy")
        var rng = SyntheticCheckpoint.Random(seed: 5)
        try NPYArray(shape: [1, 3, 96, 96], floats: rng.normals(3 * 96 * 96, 0.5, 0.2)).write(to: input)
        func forward(_ out: String, _ device: String, _ memory: String, _ extra: [String] = []) throws -> EnhanceBinary.Result {
            let o = dir.appendingPathComponent(out)
            return try EnhanceBinary.run(["forward", "--device", device, "--weights", Self.srvggX2, "--input", input.path,
                                          "--output", o.path, "--report", o.path + ".json"] + extra,
                                         environment: try Self.emulatorEnvironment(["ENH_EMU_MEMORY": memory]))
        }
        let cpu = try forward("cpu", "cpu", "100K")
        try #require(cpu.status == 0, "\(cpu.stderr)")
        let expected = try Data(contentsOf: dir.appendingPathComponent("cpu/output.npy"))
        for memory in ["8K", "100K"] {
            let auto = try forward("auto-\(memory)", "auto", memory)
            #expect(auto.status == 0, "\(memory): \(auto.stderr)")
            #expect(auto.stderr.contains("enhance: --device auto: SRVGGNetCompact") && auto.stderr.contains("at 1×3×96×96 does not fit cuda:0 (")
                    && auto.stderr.contains("); running on the CPU"), "\(memory): \(auto.stderr)")
            #expect(try Data(contentsOf: dir.appendingPathComponent("auto-\(memory)/output.npy")) == expected, "\(memory)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("auto-\(memory).json"))) as? [String: Any])
            #expect(report["device"] as? String == "cpu" && (report["backend"] as? String)?.contains("oneDNN") == true, "\(report)")
            let cuda = try forward("cuda-\(memory)", "cuda", memory)
            #expect(cuda.status == 1 && cuda.stderr.contains("cuda:0 is out of memory"), "\(memory): \(cuda.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("cuda-\(memory)/output.npy").path))
        }
        // --layout nhwc is the GPU's layout: on the CPU, the CPU's own (it refused to run there before)
        let nhwc = try forward("auto-nhwc", "auto", "8K", ["--layout", "nhwc"])
        #expect(nhwc.status == 0 && nhwc.stderr.contains("running on the CPU"), "\(nhwc.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("auto-nhwc/output.npy")) == expected)
    }

    @Test func anNVRTCThatPredatesTheGPUCompilesToPTX() throws {
        let (dir, photo) = try Self.onePhoto("gpu-ptx", size: 24, seed: 3)
        defer { try? FileManager.default.removeItem(at: dir) }
        func upscale(_ out: String, _ env: [String: String]) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", photo.path, "-m", Self.srvggX2, "-o", dir.appendingPathComponent(out).path, "--device", "cuda", "--verbose"],
                                  environment: try Self.emulatorEnvironment(env))
        }
        let usual = try upscale("usual", [:])
        try #require(usual.status == 0, "\(usual.stderr)")
        let ptx = try upscale("ptx", ["ENH_EMU_NVRTC_ARCHS": "75,80,86"])
        #expect(ptx.status == 0, "\(ptx.stderr)")
        #expect(ptx.stderr.contains("to PTX for compute_86 (NVRTC 13.0 has no sm_90), JIT-compiled by the driver"), "\(ptx.stderr)")
        #expect(try Data(contentsOf: dir.appendingPathComponent("ptx/p_out.png")) == Data(contentsOf: dir.appendingPathComponent("usual/p_out.png")))
        let old = try upscale("old", ["ENH_EMU_NVRTC_ARCHS": "100,120"])
        #expect(old.status == 69, "\(old.stderr)")
        #expect(old.stderr.contains("NVRTC 13.0 compiles for sm_100…sm_120; Enhance host emulator is sm_90, older than all of them"), "\(old.stderr)")
    }

    @Test func fp16OverflowIsComputedAgainInFP32() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fp16-overflow-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try ChainAndBatchCLITests.writePhoto(dir.appendingPathComponent("a.png"), size: 24, seed: 3)
        let model = try Self.overflowingSRVGG(dir, first: 1e5, second: 1e-5)
        let env = try Self.emulatorEnvironment()
        func upscale(_ extra: [String], _ out: String) throws -> EnhanceBinary.Result {
            try EnhanceBinary.run(["upscale", dir.appendingPathComponent("a.png").path, "-m", model.path, "-o",
                                   dir.appendingPathComponent(out).path, "--device", "cuda", "--verbose"] + extra, environment: env)
        }
        let fp32 = try upscale(["--precision", "fp32"], "fp32")
        #expect(fp32.status == 0, "\(fp32.stderr)")
        let fp16 = try upscale(["--precision", "fp16"], "fp16")
        #expect(fp16.status == 0, "\(fp16.stderr)")
        #expect(fp16.stderr.contains("fp16 → fp32: SRVGGNetCompact ×2:") && fp16.stderr.contains("output values are NaN or infinite"), "\(fp16.stderr)")
        #expect(fp16.stderr.contains("upscale: 1 image computed again (fp16 → fp32)"), "\(fp16.stderr)")
        let a = try Data(contentsOf: dir.appendingPathComponent("fp32/a_out.png"))
        let b = try Data(contentsOf: dir.appendingPathComponent("fp16/a_out.png"))
        #expect(a == b, "the fallback's image differs from the fp32 run's")
        let record = try String(contentsOf: dir.appendingPathComponent("fp16/results.jsonl"), encoding: .utf8)
        #expect(record.contains(#""fallback":"fp16 → fp32: SRVGGNetCompact ×2:"#), "\(record)")

        // two GPUs: an image that overflows on GPU k is computed again in fp32 on GPU k (its fallback models loaded
        // there on first need), so the record's device is where the image was computed; the bytes are the fp32 run's
        let folder = dir.appendingPathComponent("folder")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for name in ["a", "b", "c", "d"] {
            try FileManager.default.copyItem(at: dir.appendingPathComponent("a.png"), to: folder.appendingPathComponent("\(name).png"))
        }
        let two = try EnhanceBinary.run(["upscale", folder.path, "-m", model.path, "-o", dir.appendingPathComponent("two").path,
                                         "--device", "cuda:0,1", "--precision", "fp16", "--verbose"],
                                        environment: env.merging(["ENH_EMU_DEVICES": "2"]) { $1 })
        #expect(two.status == 0, "\(two.stderr)")
        for gpu in ["cuda:0", "cuda:1"] {
            #expect(two.stderr.components(separatedBy: "\(gpu): fp16 → fp32 fallback models loaded").count == 2, "\(gpu) loaded its fallback once:\n\(two.stderr)")
        }
        #expect(two.stderr.contains("upscale: 4 images computed again (fp16 → fp32)"), "\(two.stderr)")
        let records = try String(contentsOf: dir.appendingPathComponent("two/results.jsonl"), encoding: .utf8).split(separator: "\n")
        #expect(records.count == 4 && records.allSatisfy { $0.contains(#""fallback":"fp16 → fp32"#) }, "\(records)")
        let devices = Set(records.filter { $0.contains(#""device":"cuda:0""#) }.isEmpty ? [] : ["cuda:0"])
            .union(records.filter { $0.contains(#""device":"cuda:1""#) }.isEmpty ? [] : ["cuda:1"])
        #expect(devices.count == 2, "\(records)")
        for name in ["a", "b", "c", "d"] {
            #expect(try Data(contentsOf: dir.appendingPathComponent("two/\(name)_out.png")) == a, "\(name) differs from the fp32 run")
        }

        // overflowing in fp32 as well: a failed file naming the network, on the emulator and on the CPU
        let broken = try Self.overflowingSRVGG(dir, first: 1e36, second: 1e6)
        for device in ["cuda", "cpu"] {
            let r = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("a.png").path, "-m", broken.path, "-o",
                                           dir.appendingPathComponent("broken-\(device)").path, "--device", device], environment: env)
            #expect(r.status == 1, "\(device): \(r.stderr)")
            #expect((r.stdout + r.stderr).contains("SRVGGNetCompact ×2:") && (r.stdout + r.stderr).contains("NaN or infinite"), "\(device): \(r.stderr)")
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("broken-\(device)/a_out.png").path))
        }
    }

    /// (fixture folder, input, [(network output file, fixture file)])
    static let fixtures: [(String, String, [(String, String)])] = [
        ("rrdbnet_x2", "input_1.npy", [("output.npy", "output_1.npy")]),
        ("srvgg_prelu_x2", "input_0.npy", [("output.npy", "output_0.npy")]),
        ("srvgg_prelu_x4", "input_0.npy", [("output.npy", "output_0.npy")]),
        ("srvgg_relu_x2", "input_0.npy", [("output.npy", "output_0.npy")]),
        ("gpen_s32", "input.npy", [("output.npy", "output.npy")]),
        ("parsenet", "input.npy", [("out_mask.npy", "out_mask.npy"), ("out_img.npy", "out_img.npy")]),
        ("retinaface_mnet", "input.npy", [("loc.npy", "loc.npy"), ("conf.npy", "conf.npy"), ("landms.npy", "landms.npy")]),
    ]

    /// `enhance forward --device cuda` on fixture `name`'s `input` with `extra` flags, 2 timed runs, outputs and
    /// `report.json` in a new temporary folder (the caller removes it): (result, fixture folder, output folder, report).
    static func forwardOnFixture(_ name: String, _ input: String, _ extra: [String], environment: [String: String]) throws
        -> (EnhanceBinary.Result, URL, URL, URL) {
        let c = Repository.root.appendingPathComponent("Tests/Fixtures/models/\(name)")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-fw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let report = out.appendingPathComponent("report.json")
        let r = try EnhanceBinary.run(["forward", "--device", "cuda"] + extra + ["--weights", c.appendingPathComponent("weights.pth").path,
                                       "--input", c.appendingPathComponent(input).path, "--output", out.path, "--runs", "2",
                                       "--report", report.path], environment: environment)
        return (r, c, out, report)
    }

    /// Expects every network output of a `forwardOnFixture` run within `tolerance` (relative L2, per output) of the fixture.
    static func expectOutputs(_ outputs: [(String, String)], in out: URL, match fixture: URL, _ label: String,
                              tolerance: (String) -> Double) throws {
        for (got, want) in outputs {
            let rel = try relativeL2(out.appendingPathComponent(got), fixture.appendingPathComponent(want))
            #expect(rel <= tolerance(got), "\(label) \(got): relative L2 error \(rel)")
        }
    }

    /// ‖a − b‖ / ‖b‖ of two .npy files (infinity when their sizes differ).
    static func relativeL2(_ got: URL, _ want: URL) throws -> Double {
        let a = try NPYArray(contentsOf: got).floats(), b = try NPYArray(contentsOf: want).floats()
        guard a.count == b.count else { return .infinity }
        var d2 = 0.0, r2 = 0.0
        for i in 0..<a.count { d2 += Double(a[i] - b[i]) * Double(a[i] - b[i]); r2 += Double(b[i]) * Double(b[i]) }
        return (d2 / max(r2, 1e-30)).squareRoot()
    }

    /// fp16 and tf32 tolerance (relative L2) per output: 1e-2, except RetinaFace's box and landmark regressions, where
    /// PyTorch's own `model.half()` is 3.6e-2 / 4.1e-2 off its fp32 output on this fixture (torch 2.13 CPU, measured
    /// with the reference model; ours: 3.6e-2 / 4.0e-2) and PyTorch with TF32-rounded convolution operands 3.1e-2 /
    /// 3.5e-2 (ours on the emulator, which rounds them so: 3.3e-2): the random-weight fixture, not the backend.
    static func reducedPrecisionTolerance(_ name: String, _ output: String) -> Double {
        name == "retinaface_mnet" && output != "conf.npy" ? 5e-2 : 1e-2
    }

    /// Every network through `enhance forward --device cuda` on the emulator matches the upstream PyTorch fixture:
    /// fp32 within 1e-4 relative (L2), tf32 and fp16 within `reducedPrecisionTolerance`, in both layouts; every plan
    /// has the precision's cuDNN math type (fp32: FMA, no TF32 — the emulator rounds operands to TF32 under any other,
    /// which would put fp32 past 1e-4; tf32: default; fp16: tensor ops); the report names the device and the layout
    /// and counts the memory.
    @Test(arguments: ["fp32", "tf32", "fp16"], ["nchw", "nhwc"]) func forwardOnCUDAMatchesTheFixtures(_ precision: String, _ layout: String) throws {
        let env = try Self.emulatorEnvironment()
        for (name, input, outputs) in Self.fixtures {
            let (r, c, out, report) = try Self.forwardOnFixture(name, input, ["--precision", precision, "--layout", layout], environment: env)
            defer { try? FileManager.default.removeItem(at: out) }
            #expect(r.status == 0, "\(name) \(precision): \(r.stderr)")
            guard r.status == 0 else { continue }
            try Self.expectOutputs(outputs, in: out, match: c, "\(name) \(precision) \(layout)") {
                precision == "fp32" ? 1e-4 : Self.reducedPrecisionTolerance(name, $0)
            }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
            #expect(json["device"] as? String == "cuda")
            #expect(json["precision"] as? String == precision)
            #expect(json["layout"] as? String == layout)
            #expect((json["seconds"] as? [Double])?.count == 2)
            let memory = try #require(json["memory"] as? [String: Int])
            #expect((memory["weight_bytes"] ?? 0) > 0 && (memory["allocated_peak_bytes"] ?? 0) >= (memory["live_peak_bytes"] ?? 0) + (memory["weight_bytes"] ?? 0))
            let plans = ((json["diagnostics"] as? [String]) ?? []).filter { $0.contains(": cuDNN fwd algo") || $0.contains(": cuDNN bwd-data algo") }
            let math = ["fp32": "3", "tf32": "0", "fp16": "1"][precision]!   // CUDNN_FMA_MATH, _DEFAULT_MATH, _TENSOR_OP_MATH
            #expect(!plans.isEmpty && plans.allSatisfy { $0.contains("math type \(math),") }, "\(name) \(precision): \(plans.prefix(3))")
        }
    }

    /// `--cudnn-benchmark`: cuDNN times its algorithms on a workspace of the whole limit (1 GiB), which goes back once
    /// they are timed; what the backend holds afterwards is what the chosen algorithms need (the emulator's 4 KiB), and
    /// the outputs still match the fixtures. Before, the 1 GiB stayed for the run and in every memory figure.
    @Test func cudnnBenchmarkGivesTheFindWorkspaceBack() throws {
        let env = try Self.emulatorEnvironment()
        for (name, input, outputs) in Self.fixtures where name == "rrdbnet_x2" {
            let (r, c, out, report) = try Self.forwardOnFixture(name, input, ["--cudnn-benchmark", "--verbose"], environment: env)
            defer { try? FileManager.default.removeItem(at: out) }
            #expect(r.status == 0, "\(name): \(r.stderr)")
            guard r.status == 0 else { continue }
            try Self.expectOutputs(outputs, in: out, match: c, "\(name) with --cudnn-benchmark") { _ in 1e-4 }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
            #expect((json["backend"] as? String)?.contains("benchmark") == true, "\(json["backend"] ?? "")")
            let memory = try #require(json["memory"] as? [String: Int])
            #expect(memory["workspace_peak_bytes"] == 4096, "\(name): \(memory)")
            #expect((memory["allocated_peak_bytes"] ?? 0) < 1 << 30, "\(name): \(memory)")
        }
    }

    /// `forward --cuda-graph`: one eager forward, the capture, then every timed run a graph replay — the outputs still
    /// match the upstream fixtures (fp32 within 1e-4) and the report says the graph ran; RetinaFace (host decoding) and
    /// the CPU are refused with a message.
    @Test func forwardWithACUDAGraphMatchesTheFixtures() throws {
        let env = try Self.emulatorEnvironment()
        for (name, input, outputs) in Self.fixtures where name != "retinaface_mnet" {
            let (r, c, out, report) = try Self.forwardOnFixture(name, input, ["--cuda-graph"], environment: env)
            defer { try? FileManager.default.removeItem(at: out) }
            #expect(r.status == 0, "\(name): \(r.stderr)")
            guard r.status == 0 else { continue }
            try Self.expectOutputs(outputs, in: out, match: c, "\(name) through the graph") { _ in 1e-4 }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
            #expect(json["cuda_graph"] as? Bool == true)
            #expect((json["diagnostics"] as? [String])?.contains { $0.hasPrefix("CUDA graph: forward captured") } == true, "\(name)")
        }
        let rf = Repository.root.appendingPathComponent("Tests/Fixtures/models/retinaface_mnet")
        let refused = try EnhanceBinary.run(["forward", "--device", "cuda", "--cuda-graph", "--weights", rf.appendingPathComponent("weights.pth").path,
                                             "--input", rf.appendingPathComponent("input.npy").path, "--output", "/tmp/unused-\(UUID().uuidString)"],
                                            environment: env)
        #expect(refused.status == 1 && refused.stderr.contains("--cuda-graph: the retinaface forward ends on the host"), "\(refused.stderr)")
        let sr = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2")
        let cpu = try EnhanceBinary.run(["forward", "--device", "cpu", "--cuda-graph", "--weights", sr.appendingPathComponent("weights.pth").path,
                                         "--input", sr.appendingPathComponent("input_0.npy").path, "--output", "/tmp/unused-\(UUID().uuidString)"])
        #expect(cpu.status == 1 && cpu.stderr.contains("--cuda-graph needs the cuda device"), "\(cpu.stderr)")
    }

    /// `forward --profile` (what device-check's rows add to show where a GPU forward's time goes): after the timed runs
    /// one more forward with CUDA events around every call. SRVGGNetCompact with num_conv 3 has 5 convolutions: 5 cuDNN
    /// calls, the fp32 NCHW input one copy up and the output one copy down; every row's seconds are non-negative and
    /// the rows together fit in the forward's wall time; the outputs are still the fixture's.
    @Test func forwardProfileTimesEveryCallOnTheGPU() throws {
        let (r, c, out, report) = try Self.forwardOnFixture("srvgg_prelu_x2", "input_0.npy", ["--profile"], environment: try Self.emulatorEnvironment())
        defer { try? FileManager.default.removeItem(at: out) }
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        try Self.expectOutputs([("output.npy", "output_0.npy")], in: out, match: c, "profiled srvgg") { _ in 1e-4 }
        let profile = try Self.profile(in: report)
        #expect(profile.calls(.convolution) == 5 && profile.names(.convolution).allSatisfy { $0.hasPrefix("cuDNN fwd algo ") }, "\(profile.entries)")
        // fp32 is TF32 off: every plan's math type is FMA, named in words
        #expect(profile.names(.convolution).allSatisfy { $0.contains("(FMA, no TF32)") }, "\(profile.names(.convolution))")
        #expect(profile.callsNamed("copy host → device") == 1 && profile.callsNamed("copy device → host") == 1, "\(profile.entries)")
        #expect(profile.callsNamed("enh_epilogue_f32") >= 1, "\(profile.entries)")
        #expect(profile.clock.hasPrefix("CUDA events"))
        #expect(r.stdout.contains("profile of one more forward (CUDA events") && r.stdout.contains("cuDNN fwd algo"), "\(r.stdout)")
    }

    /// The same on the CPU: oneDNN primitives, the own Winograd kernel and the backend's loops timed by the host clock;
    /// 5 convolutions.
    @Test func forwardProfileTimesEveryPrimitiveOnTheCPU() throws {
        let c = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x2")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cpu-profile-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let report = out.appendingPathComponent("report.json")
        let r = try EnhanceBinary.run(["forward", "--device", "cpu", "--profile", "--weights", c.appendingPathComponent("weights.pth").path,
                                       "--input", c.appendingPathComponent("input_0.npy").path, "--output", out.path, "--report", report.path])
        #expect(r.status == 0, "\(r.stderr)")
        guard r.status == 0 else { return }
        try Self.expectOutputs([("output.npy", "output_0.npy")], in: out, match: c, "profiled srvgg on the CPU") { _ in 1e-4 }
        let profile = try Self.profile(in: report)
        #expect(profile.calls(.convolution) == 5 && profile.names(.convolution).allSatisfy { $0.hasPrefix("conv2d: ") }, "\(profile.entries)")
        #expect(profile.clock.hasPrefix("host clock"))
        // the backend's own loops are rows too: the fixture's 4 PReLUs (unfused at a 12×10 map on either block size)
        #expect(profile.callsNamed("prelu: C loop") == 4, "\(profile.entries)")
        #expect(r.stdout.contains("profile of one more forward (host clock"), "\(r.stdout)")
    }

    /// The "profile" object of a `forward --report`: its rows, checked for sane seconds against its wall time.
    static func profile(in report: URL) throws -> (clock: String, entries: [[String: Any]], calls: (OpProfile.Kind) -> Int,
                                                    names: (OpProfile.Kind) -> [String], callsNamed: (String) -> Int) {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
        let p = try #require(json["profile"] as? [String: Any], "no profile in \(json.keys.sorted())")
        let entries = try #require(p["entries"] as? [[String: Any]])
        let wall = try #require(p["wall_s"] as? Double), timed = try #require(p["timed_s"] as? Double)
        let seconds = entries.compactMap { $0["seconds"] as? Double }
        #expect(seconds.count == entries.count && seconds.allSatisfy { $0 >= 0 }, "\(entries)")
        #expect(wall > 0 && timed <= wall * 1.01 + 1e-4 && abs(timed - seconds.reduce(0, +)) < 1e-9, "wall \(wall), timed \(timed)")
        func of(_ k: OpProfile.Kind) -> [[String: Any]] { entries.filter { $0["kind"] as? String == k.rawValue } }
        return ((p["clock"] as? String) ?? "", entries,
                { of($0).reduce(0) { $0 + (($1["calls"] as? Int) ?? 0) } },
                { of($0).compactMap { $0["name"] as? String } },
                { name in entries.filter { $0["name"] as? String == name }.reduce(0) { $0 + (($1["calls"] as? Int) ?? 0) } })
    }

    /// The image commands on cuda: `upscale` (tiled, 8-bit PNG) gives the CPU's pixels within one step, `detect` the
    /// CPU's faces (a real photo through the real MobileNet RetinaFace, when scripts/setup fetched them).
    @Test func upscaleAndDetectOnCUDAMatchTheCPU() throws {
        let env = try Self.emulatorEnvironment()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-img-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let photo = dir.appendingPathComponent("a.png")
        try ChainAndBatchCLITests.writePhoto(photo, size: 64, seed: 3)
        let model = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        var images: [[UInt8]] = []
        // cpu, cuda, and cuda with the 16 tiles (16 px, pad 10, 64 px image: padded sizes 26 and 36 → 4 groups of 4)
        // in batches of 3: an N=3 and an N=1 pass per group
        for (device, batch) in [("cpu", 1), ("cuda", 1), ("cuda", 3)] {
            let out = dir.appendingPathComponent("\(device)-\(batch)")
            let r = try EnhanceBinary.run(["upscale", photo.path, "-m", model, "-t", "16", "--tile-batch", String(batch), "--device", device,
                                           "-o", out.path, "--quiet"], environment: env)
            #expect(r.status == 0, "\(device): \(r.stderr)")
            let png = try ImageDecoder.decode(fileAt: out.appendingPathComponent("a_out.png"))
            guard case let .u8(bytes) = png.storage else { Issue.record("not an 8-bit PNG"); return }
            images.append(bytes)
        }
        #expect(images[0].count == images[1].count && images[0].count == 256 * 256 * 3)
        for (i, what) in [(1, "cuda"), (2, "cuda --tile-batch 3")] {
            let worst = zip(images[0], images[i]).map { abs(Int($0) - Int($1)) }.max() ?? 255
            #expect(worst <= 1, "upscale \(what) vs cpu: largest difference \(worst) steps")
        }

        let detector = Repository.assets.appendingPathComponent("RetinaFace-mnet025.safetensors")
        let face = Repository.assets.appendingPathComponent("astronaut.png")
        guard FileManager.default.fileExists(atPath: detector.path), FileManager.default.fileExists(atPath: face.path) else {
            Issue.record("scripts/setup did not fetch RetinaFace-mnet025 and astronaut.png"); return
        }
        var faces: [[[Double]]] = []
        for device in ["cpu", "cuda"] {
            let r = try EnhanceBinary.run(["detect", "--json", "--device", device, "--detector", detector.path, face.path], environment: env)
            #expect(r.status == 0, "\(device): \(r.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            let list = try #require(json["faces"] as? [[String: Any]])
            faces.append(list.compactMap { $0["box"] as? [Double] })
        }
        #expect(faces[0].count == 1 && faces[1].count == faces[0].count, "faces cpu \(faces[0]) cuda \(faces[1])")
        for (a, b) in zip(faces[0], faces[1]) {
            #expect(zip(a, b).allSatisfy { abs($0 - $1) < 0.5 }, "box cpu \(a) cuda \(b)")
        }
    }

    /// `--cuda-graph` in upscale and restore: every tile shape and the GPEN/parser inputs are recorded once (after one
    /// eager forward) and replayed from then on, with outputs identical to the eager run; off the GPU it is the
    /// one-line unsupported error (exit 69), and detect refuses it.
    @Test func graphReplayInUpscaleAndRestoreEqualsEager() throws {
        let env = try Self.emulatorEnvironment()
        let dir = try RestoreCLITests.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = dir.appendingPathComponent("in/photo.png")
        try FileManager.default.copyItem(at: photo, to: dir.appendingPathComponent("in/photo2.png"))
        let model = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        func captures(_ stderr: String) -> Int { stderr.components(separatedBy: "CUDA graph: forward captured").count - 1 }
        func bytes(_ url: URL) throws -> [UInt8] { try ImageDecoder.decode(fileAt: url).samples8 }

        // 64 px photo, 16 px tiles with pad 10: padded tiles of 26 and 36 px → 4 shapes, 16 tiles
        var up: [[UInt8]] = []
        for graph in [false, true] {
            let out = dir.appendingPathComponent("up-\(graph)")
            let r = try EnhanceBinary.run(["upscale", photo.path, "-m", model, "-t", "16", "--device", "cuda", "-o", out.path, "--quiet", "--verbose"]
                                          + (graph ? ["--cuda-graph"] : []), environment: env)
            #expect(r.status == 0, "\(r.stderr)")
            #expect(captures(r.stderr) == (graph ? 4 : 0), "\(r.stderr)")
            up.append(try bytes(out.appendingPathComponent("photo_out.png")))
        }
        #expect(up[0] == up[1], "upscale through replayed graphs differs from the eager run")

        // --image-batch 2 on the folder of two photos: their tiles share forwards (recorded with N = 2), same bytes
        let folder = dir.appendingPathComponent("up-merged")
        let merged = try EnhanceBinary.run(["upscale", dir.appendingPathComponent("in").path, "-m", model, "-t", "16", "--device", "cuda",
                                            "-o", folder.path, "--quiet", "--verbose", "--cuda-graph", "--image-batch", "2"], environment: env)
        #expect(merged.status == 0, "\(merged.stderr)")
        #expect(merged.stderr.contains("forward captured for input [2, 3, "), "no tile pass of two photos: \(merged.stderr)")
        for name in ["photo_out.png", "photo2_out.png"] {
            #expect(try bytes(folder.appendingPathComponent(name)) == up[0], "\(name) from merged passes differs")
        }

        var restored: [[[UInt8]]] = []
        for graph in [false, true] {
            let out = dir.appendingPathComponent("restore-\(graph)")
            let r = try EnhanceBinary.run(["restore", dir.appendingPathComponent("in").path, "-o", out.path, "--device", "cuda", "--verbose",
                                           "--gpen", dir.appendingPathComponent("gpen.safetensors").path,
                                           "--detector", dir.appendingPathComponent("retina.safetensors").path,
                                           "--parser", dir.appendingPathComponent("parse.safetensors").path] + (graph ? ["--cuda-graph"] : []),
                                          environment: env.merging(RestoreCLITests.env(dir)) { $1 })
            #expect(r.status == 0, "\(r.stderr)")
            // GPEN (one face per photo) and the parser: one recording each, the second photo replays both
            #expect(captures(r.stderr) == (graph ? 2 : 0), "\(r.stderr)")
            restored.append(try ["photo.png", "photo2.png"].map { try bytes(out.appendingPathComponent($0)) })
        }
        #expect(restored[0] == restored[1], "restore through replayed graphs differs from the eager run")

        let cpu = try EnhanceBinary.run(["upscale", photo.path, "-m", model, "--device", "cpu", "--cuda-graph", "-o", dir.appendingPathComponent("cpu").path])
        #expect(cpu.status == 69 && cpu.stderr.contains("--cuda-graph") && cpu.stderr.contains("cannot record a forward"), "\(cpu.stderr)")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("cpu").path))
        let detect = try EnhanceBinary.run(["detect", photo.path, "--cuda-graph"])
        #expect(detect.status == 64 && detect.stderr.contains("--cuda-graph"), "\(detect.stderr)")
    }

    /// A driver that records graphs but will not launch them (ENH_EMU_GRAPH_LAUNCH_FAILS): each tile shape's first
    /// replay fails, that shape runs eagerly from then on (said once per shape in --verbose), and the output is the
    /// eager run's, byte for byte.
    @Test func aGraphTheDriverWillNotReplayRunsEagerly() throws {
        let dir = try RestoreCLITests.workspace()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = dir.appendingPathComponent("in/photo.png")
        let model = Repository.root.appendingPathComponent("Tests/Fixtures/models/srvgg_prelu_x4/weights.pth").path
        var outputs: [[UInt8]] = []
        for failing in [false, true] {
            let env = try Self.emulatorEnvironment(failing ? ["ENH_EMU_GRAPH_LAUNCH_FAILS": "1"] : [:])
            let out = dir.appendingPathComponent("up-\(failing)")
            let r = try EnhanceBinary.run(["upscale", photo.path, "-m", model, "-t", "16", "--device", "cuda", "-o", out.path, "--quiet",
                                           "--verbose", "--cuda-graph"], environment: env)
            #expect(r.status == 0, "\(r.stderr)")
            guard r.status == 0 else { return }
            let fallbacks = r.stderr.components(separatedBy: "failed to replay").count - 1
            // 64 px, 16 px tiles: 4 padded tile shapes, each recorded once, each failing at its first replay
            #expect(fallbacks == (failing ? 4 : 0) && (!failing || r.stderr.contains("it runs eagerly from now on")), "\(r.stderr)")
            outputs.append(try ImageDecoder.decode(fileAt: out.appendingPathComponent("photo_out.png")).samples8)
        }
        #expect(outputs.count == 2 && outputs[0] == outputs[1], "the eager fallback changed the output")
    }

    /// A dense block's convolutions read channel views of the concatenation buffer (NHWC: pixel stride = its channel
    /// count; NCHW: image stride = its image). Should cuDNN refuse such a strided input (the emulator's
    /// ENH_EMU_DENSE_NHWC_ONLY, or ENH_EMU_DENSE_ONLY for either layout), the layer runs on a dense copy from then on,
    /// says so once per layer and shape, and the output is the same.
    @Test func aStridedViewInputCuDNNRefusesRunsOnADenseCopy() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cuda-dense-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        // RRDBNet ×4 with 16 features and growth 8: its views fall at channel 16, 24, 32, 40 (NHWC alignment 8)
        var rng = SyntheticCheckpoint.Random(seed: 7)
        var entries: [SyntheticCheckpoint.Entry] = []
        func conv(_ key: String, _ i: Int, _ o: Int) {
            entries.append(.init(name: key + ".weight", shape: [o, i, 3, 3], values: rng.normals(o * i * 9, 0, (1 / Double(i * 9)).squareRoot())))
            entries.append(.init(name: key + ".bias", shape: [o], values: rng.normals(o, 0, 0.05)))
        }
        let (nf, gc) = (16, 8)
        conv("conv_first", 3, nf)
        for r in 1...3 { for k in 1...5 { conv("body.0.rdb\(r).conv\(k)", nf + (k - 1) * gc, k == 5 ? nf : gc) } }
        for k in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] { conv(k, nf, nf) }
        conv("conv_last", nf, 3)
        let weights = dir.appendingPathComponent("rrdb.safetensors"), input = dir.appendingPathComponent("x.npy")
        try Data(SyntheticCheckpoint.safetensors(entries)).write(to: weights)
        try NPYArray(shape: [1, 3, 6, 7], floats: rng.normals(126, 0.5, 0.2)).write(to: input)

        var outputs: [[Float]] = []
        for (layout, refuse) in [("nchw", false), ("nhwc", false), ("nhwc", true), ("nchw", true)] {
            let out = dir.appendingPathComponent("\(layout)-\(refuse)"), report = out.appendingPathComponent("report.json")
            try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
            let env = try Self.emulatorEnvironment(refuse ? [layout == "nhwc" ? "ENH_EMU_DENSE_NHWC_ONLY" : "ENH_EMU_DENSE_ONLY": "1"] : [:])
            let r = try EnhanceBinary.run(["forward", "--device", "cuda", "--layout", layout, "--weights", weights.path, "--input", input.path,
                                           "--output", out.path, "--runs", "2", "--report", report.path], environment: env)
            #expect(r.status == 0, "\(layout) refuse \(refuse): \(r.stderr)")
            guard r.status == 0 else { return }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
            let fallbacks = ((json["diagnostics"] as? [String]) ?? []).filter { $0.contains("runs on a dense copy") }
            // conv2…conv5 of each of the 3 RDBs read a view: 12 layers, said once each (not again in the second run)
            #expect(fallbacks.count == (refuse ? 12 : 0), "\(layout) refuse \(refuse): \(fallbacks)")
            outputs.append(try NPYArray(contentsOf: out.appendingPathComponent("output.npy")).floats())
        }
        #expect(outputs[1] == outputs[2], "the dense-copy fallback changed the NHWC output")
        #expect(outputs[0] == outputs[3], "the dense-copy fallback changed the NCHW output")
        let d = zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? .infinity
        #expect(d < 1e-5, "NHWC vs NCHW: max |diff| \(d)")
    }

    /// A GPU runs a kernel's threads in no promised order. The emulator runs them in launch order unless
    /// ENH_EMU_THREAD_ORDER says "reverse" or "shuffle": every network fixture (fp32 NCHW and fp16 NHWC, which between
    /// them launch every kernel the networks use: epilogues, casts, layout copies, pixel shuffle, upfirdn, …) gives the
    /// same bytes in all three orders, so no kernel reads what another thread of the same launch writes.
    @Test func kernelsGiveTheSameBytesInAnyThreadOrder() throws {
        for (precision, layout) in [("fp32", "nchw"), ("fp16", "nhwc")] {
            for (name, input, outputs) in Self.fixtures {
                var bytes: [String: [Data]] = [:]
                for order in ["forward", "reverse", "shuffle"] {
                    let env = try Self.emulatorEnvironment(["ENH_EMU_THREAD_ORDER": order])
                    let (r, _, out, _) = try Self.forwardOnFixture(name, input, ["--precision", precision, "--layout", layout], environment: env)
                    defer { try? FileManager.default.removeItem(at: out) }
                    #expect(r.status == 0, "\(name) \(precision) \(order): \(r.stderr)")
                    guard r.status == 0 else { continue }
                    bytes[order] = try outputs.map { try Data(contentsOf: out.appendingPathComponent($0.0)) }
                }
                #expect(bytes.count == 3 && Set(bytes.values).count == 1, "\(name) \(precision) \(layout): outputs depend on the thread order")
            }
        }
    }

    /// cuDNN's heuristics may offer an algorithm its engine then refuses for the shape (or whose workspace does not
    /// fit): the plan moves to the next one offered, once per layer and shape, says so in the report, and the output
    /// still matches the fixture. GPEN covers both calls (forward convolutions, backward data for the transposed
    /// ones). When every algorithm is refused the run fails in one message naming the call and cuDNN's status.
    @Test func aRefusedCuDNNAlgorithmFallsToTheNextOffered() throws {
        // the emulator offers forward 1 (implicit precomputed GEMM), 0, 2 and backward-data 1, 0
        let env = try Self.emulatorEnvironment(["ENH_EMU_REFUSE_ALGO": "1"])
        for (name, input, outputs) in Self.fixtures where ["gpen_s32", "rrdbnet_x2"].contains(name) {
            let (r, c, out, report) = try Self.forwardOnFixture(name, input, [], environment: env)
            defer { try? FileManager.default.removeItem(at: out) }
            #expect(r.status == 0, "\(name): \(r.stderr)")
            guard r.status == 0 else { continue }
            try Self.expectOutputs(outputs, in: out, match: c, "\(name) with algo 1 refused") { _ in 1e-4 }
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any])
            let notes = (json["diagnostics"] as? [String]) ?? []
            let failed = notes.filter { $0.contains("cuDNN algo 1 failed") && $0.contains("trying the next one") }
            let plans = notes.filter { $0.contains(": cuDNN fwd algo") || $0.contains(": cuDNN bwd-data algo") }
            // every plan first chose algorithm 1 and moved on once (the second timed run reuses the plan)
            #expect(!failed.isEmpty && plans.count == 2 * failed.count, "\(name): \(failed.count) refusals, \(plans.count) plan lines")
            #expect(plans.filter { $0.contains("algo 1,") }.count == failed.count, "\(name): \(plans)")
            #expect(plans.contains { $0.contains("fwd algo 0,") })
            if name == "gpen_s32" { #expect(plans.contains { $0.contains("bwd-data algo 0,") }, "\(plans)") }
        }
        let none = try Self.emulatorEnvironment(["ENH_EMU_REFUSE_ALGO": "0,1,2"])
        let (r, _, out, _) = try Self.forwardOnFixture("rrdbnet_x2", "input_1.npy", [], environment: none)
        defer { try? FileManager.default.removeItem(at: out) }
        #expect(r.status != 0 && r.stderr.contains("cudnnConvolutionForward") && r.stderr.contains("CUDNN_STATUS_NOT_SUPPORTED"), "\(r.stderr)")
        #expect(!r.stderr.contains("Fatal error"), "\(r.stderr)")
    }
}
