import Foundation
import Testing
import TestSupport

/// `--device`: auto/cpu/reference work, cuda (not in this build) is a one-line error with exit status 69, and
/// `enhance info` lists the devices.
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
            let r = try EnhanceBinary.run(cmd + ["--device", "cuda"])
            #expect(r.status == 69, "\(cmd[0]): \(r.stderr)")
            #expect(r.stderr.contains("device cuda") && r.stderr.contains("no CUDA backend"), "\(r.stderr)")
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
        #expect(both.status == 64 && both.stderr.contains("--device or --backend"), "\(both.stderr)")
    }

    @Test func infoListsTheDevices() throws {
        let r = try EnhanceBinary.run(["info"])
        #expect(r.status == 0)
        let line = try #require(r.stdout.split(separator: "\n").first { $0.hasPrefix("devices:") })
        #expect(line.contains("cpu (oneDNN") && line.contains("reference (plain Swift") && line.contains("cuda (unavailable: "), "\(line)")
    }
}
