import Checkpoint
import Foundation
import ImageIO
import Models
import Testing
import TestSupport

/// `enhance detect` end to end: against GPEN's own detect() on real photos, and its per-file errors.
@Suite struct DetectCLITests {
    static let root = Repository.root
    static var assets: URL { Repository.assets }
    static let photos = ["t1.jpg", "astronaut.png", "obama.jpg", "biden.jpg"]
    static var realAssetsPresent: Bool {
        (photos + ["RetinaFace-mnet025.safetensors"]).allSatisfy { FileManager.default.fileExists(atPath: assets.appendingPathComponent($0).path) }
    }

    struct Face { var box: [Double]; var score: Double; var landmarks: [[Double]] }

    static func faces(_ object: [String: Any]) throws -> [Face] {
        let list = try #require(object["faces"] as? [[String: Any]])
        return try list.map { f in
            Face(box: try #require(f["box"] as? [Double]), score: try #require(f["score"] as? Double),
                 landmarks: try #require(f["landmarks"] as? [[Double]]))
        }
    }

    static func iou(_ a: [Double], _ b: [Double]) -> Double {
        let iw = max(0, min(a[2], b[2]) - max(a[0], b[0])), ih = max(0, min(a[3], b[3]) - max(a[1], b[1]))
        let inter = iw * ih
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    }

    /// The real MobileNet-0.25 RetinaFace (scripts/setup) on the offline photos, against the numbers GPEN's detect()
    /// gave with the same weights in PyTorch (scripts/reference/make_detect_reference.py →
    /// Tests/Fixtures/faces/detect_reference.json): same face count, IoU ≥ 0.9 per face, landmarks within 2 px.
    @Test(.enabled(if: realAssetsPresent, "needs the offline photos and RetinaFace-mnet025 (scripts/setup)"))
    func matchesGPENsDetectorOnRealPhotos() throws {
        let refData = try Data(contentsOf: Self.root.appendingPathComponent("Tests/Fixtures/faces/detect_reference.json"))
        let ref = try #require(try JSONSerialization.jsonObject(with: refData) as? [String: Any])
        let refImages = try #require(ref["images"] as? [String: [String: Any]])
        let r = try EnhanceBinary.run(["detect", "--json", "--threads", "2",
                                       "--detector", Self.assets.appendingPathComponent("RetinaFace-mnet025.safetensors").path]
                                      + Self.photos.map { Self.assets.appendingPathComponent($0).path })
        #expect(r.status == 0, "stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == Self.photos.count)
        var total = 0
        for (name, line) in zip(Self.photos, lines) {
            let got = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect((got["input"] as? String)?.hasSuffix(name) == true)
            let want = try #require(refImages[name], "\(name) missing from the reference")
            #expect(got["width"] as? Int == want["width"] as? Int && got["height"] as? Int == want["height"] as? Int, "\(name)")
            let g = try Self.faces(got), w = try Self.faces(want)
            #expect(g.count == w.count, "\(name): \(g.count) faces, GPEN's detect() \(w.count)")
            total += w.count
            for wf in w {
                let best = try #require(g.max { Self.iou($0.box, wf.box) < Self.iou($1.box, wf.box) }, "\(name)")
                let iou = Self.iou(best.box, wf.box)
                #expect(iou >= 0.9, "\(name): face \(wf.box) best IoU \(iou)")
                for (p, q) in zip(best.landmarks, wf.landmarks) {
                    let d = ((p[0] - q[0]) * (p[0] - q[0]) + (p[1] - q[1]) * (p[1] - q[1])).squareRoot()
                    #expect(d <= 2, "\(name): landmark \(p) vs \(q) (\(d) px)")
                }
                // GPEN's detect() divides the score by the detection downscale (images over 1500 px); ours does not.
                let downscale = want["downscale"] as? Double ?? 1
                #expect(abs(best.score - min(1, wf.score * downscale)) < 1e-3 && best.score <= 1, "\(name): score \(best.score) vs \(wf.score)")
            }
        }
        #expect(total >= 4)   // t1.jpg has several faces; the portraits one each
    }

    /// Per-file errors: a truncated PNG is named on stderr and the run goes on (exit 1), a file that is not an image
    /// is reported and skipped, the good image gets its JSON line and its annotated copy, no input is touched. The
    /// detector is found by name in the models folder as `restore` finds it.
    @Test func badFilesAreNamedAndTheRestGoesOn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("detect-cli-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let inDir = dir.appendingPathComponent("in"), models = dir.appendingPathComponent("models")
        for d in [inDir, models] { try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true) }
        try Data(SyntheticCheckpoint.safetensors(SyntheticCheckpoint.retinaFace(RetinaFaceConfiguration(backbone: .mobilenet025, outChannel: 64))))
            .write(to: models.appendingPathComponent("RetinaFace-mnet025.safetensors"))
        try ChainAndBatchCLITests.writePhoto(inDir.appendingPathComponent("a.png"), size: 48, seed: 1)
        let good = try Data(contentsOf: inDir.appendingPathComponent("a.png"))
        try good.prefix(good.count / 2).write(to: inDir.appendingPathComponent("b.png"))
        try Data("not an image".utf8).write(to: inDir.appendingPathComponent("c.png"))
        let before = try ChainAndBatchCLITests.files(inDir).map { try Data(contentsOf: inDir.appendingPathComponent($0)) }
        let out = dir.appendingPathComponent("out")
        let r = try EnhanceBinary.run(["detect", inDir.path, "--json", "-o", out.path, "--threshold", "0.5"],
                                      environment: ["ENHANCE_MODELS_DIR": models.path, "ENHANCE_ASSETS": models.path], directory: dir)
        #expect(r.status == 1, "stdout: \(r.stdout) stderr: \(r.stderr)")
        let lines = r.stdout.split(separator: "\n")
        #expect(lines.count == 1)
        let obj = try #require(try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
        #expect((obj["input"] as? String)?.hasSuffix("a.png") == true && obj["width"] as? Int == 48 && obj["faces"] is [Any])
        #expect(r.stderr.contains("b.png:"), "\(r.stderr)")
        #expect(r.stderr.contains("c.png: not a PNG, JPEG or WebP image"), "\(r.stderr)")
        #expect(ChainAndBatchCLITests.files(out) == ["a_faces.png"])
        let drawn = try ImageDecoder.decode(fileAt: out.appendingPathComponent("a_faces.png"))
        #expect(drawn.width == 48 && drawn.height == 48)
        #expect(try ChainAndBatchCLITests.files(inDir).map { try Data(contentsOf: inDir.appendingPathComponent($0)) } == before)

        // The table form, one file; a missing input is a setup error (exit 2) naming it.
        let t = try EnhanceBinary.run(["detect", inDir.appendingPathComponent("a.png").path],
                                      environment: ["ENHANCE_MODELS_DIR": models.path, "ENHANCE_ASSETS": models.path], directory: dir)
        #expect(t.status == 0, "\(t.stderr)")
        #expect(t.stdout.contains("a.png: 48×48, ") && t.stdout.contains(" face"))
        let m = try EnhanceBinary.run(["detect", dir.appendingPathComponent("missing.png").path],
                                      environment: ["ENHANCE_MODELS_DIR": models.path, "ENHANCE_ASSETS": models.path], directory: dir)
        #expect(m.status == 2 && m.stderr.contains("missing.png"), "\(m.stderr)")
        // Without a detector anywhere: exit 2 and the lookup is explained.
        let n = try EnhanceBinary.run(["detect", inDir.appendingPathComponent("a.png").path],
                                      environment: ["ENHANCE_MODELS_DIR": inDir.path, "ENHANCE_ASSETS": inDir.path], directory: dir)
        #expect(n.status == 2 && n.stderr.contains("no detector"), "\(n.stderr)")
    }
}
