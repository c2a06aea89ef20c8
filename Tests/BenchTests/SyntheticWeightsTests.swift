import Checkpoint
import Models
import TensorCore
import Foundation
import Testing
@testable import Bench

@Suite struct SyntheticWeightsTests {
    func params(_ t: [SyntheticTensor]) -> Int { t.filter(\.learnable).reduce(0) { $0 + $1.count } }

    @Test func layoutsMatchTheReleasedModels() throws {
        // Parameter and key counts measured from the original code (../shared/docs/gpen.md §1.2, §4.1, §5; realesrgan.md §1.2).
        let g512 = try SyntheticWeights.gpen(size: 512)
        #expect(g512.count == 163 && params(g512) == 71_005_223)
        #expect(g512.filter { !$0.learnable }.reduce(0) { $0 + $1.count } == 336)
        let g256 = try SyntheticWeights.gpen(size: 256, channelMultiplier: 1, narrow: 0.5)
        #expect(g256.count == 144 && params(g256) == 18_879_010)
        let r50 = SyntheticWeights.retinaFaceR50()
        #expect(r50.count == 456 && params(r50) == 27_293_600)
        #expect(r50.filter { $0.key.hasPrefix("body.") }.count == 318)
        let parse = SyntheticWeights.parseNet()
        #expect(parse.count == 238 && params(parse) == 21_303_254)
        let x2 = try SyntheticWeights.rrdbNet(scale: 2, blocks: 23)
        #expect(x2.count == 702 && params(x2) == 16_703_171)
        #expect(params(try SyntheticWeights.rrdbNet(scale: 4, blocks: 23)) == 16_697_987)
        #expect(Set(g512.map(\.key)).count == g512.count)
        #expect(throws: BenchError.self) { try SyntheticWeights.gpen(size: 300) }
    }

    @Test func writtenFilesLoadAndAreDetected() throws {
        let dir = try tempDir("weights")
        defer { try? FileManager.default.removeItem(at: dir) }
        let gpenURL = dir.appendingPathComponent("tiny-gpen.safetensors")
        let tiny = try SyntheticWeights.gpen(size: 256, channelMultiplier: 1, narrow: 0.0625)
        try SyntheticWeights.writeSafetensors(tiny, to: gpenURL, metadata: ["synthetic": "true"])
        let loaded = try CheckpointLoader.load(gpenURL)
        #expect(loaded.format == .safetensors)
        #expect(loaded.stateDict.count == tiny.count)
        #expect(loaded.metadata["synthetic"] == "true")
        guard case .gpen(let cfg) = ArchitectureDetector.detect(loaded.stateDict) else {
            Issue.record("not detected as GPEN: \(ArchitectureDetector.detect(loaded.stateDict))")
            return
        }
        #expect(cfg.size == 256)
        // Buffers hold the exact FIR kernels; learnable noise is seeded and reproducible.
        let k = loaded.stateDict["ecd1.0.0.kernel"]!.floats()
        #expect(abs(k[5] - 9.0 / 64) < 1e-7)
        let up = loaded.stateDict["generator.convs.0.conv.blur.kernel"]!.floats()
        #expect(abs(up[0] - 4.0 / 64) < 1e-7)
        let again = dir.appendingPathComponent("again.safetensors")
        try SyntheticWeights.writeSafetensors(tiny, to: again, metadata: ["synthetic": "true"])
        #expect(try Data(contentsOf: gpenURL) == Data(contentsOf: again))

        let rrdbURL = dir.appendingPathComponent("x2.safetensors")
        try SyntheticWeights.writeSafetensors(try SyntheticWeights.rrdbNet(scale: 2, blocks: 1), to: rrdbURL, metadata: [:])
        guard case .rrdbNet(let rc) = ArchitectureDetector.detect(try CheckpointLoader.load(rrdbURL).stateDict) else {
            Issue.record("x2 layout not detected as RRDBNet")
            return
        }
        #expect(rc.scale == 2 && rc.numBlock == 1)
    }
}

extension SyntheticWeightsTests {
    /// The pass-through x2plus layout keeps the image: a constant input comes out as the same constant (away from
    /// the zero-padded border the tent blurs darken), and the layout is still the released one.
    @Test func passThroughRRDBNetCarriesTheImage() throws {
        let t = try SyntheticWeights.rrdbNet(scale: 2, blocks: 2, passThrough: true)
        #expect(t.map(\.key) == (try SyntheticWeights.rrdbNet(scale: 2, blocks: 2)).map(\.key))
        let dir = try tempDir("passthrough")
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x2.safetensors")
        try SyntheticWeights.writeSafetensors(t, to: url, metadata: [:])
        let be = ReferenceBackend()
        let net = try RRDBNet(configuration: RRDBNetConfiguration(numInCh: 3, numOutCh: 3, scale: 2, numFeat: 64, numBlock: 2, numGrowCh: 32),
                              weights: CheckpointLoader.load(url).stateDict, backend: be)
        let n = 16
        var x = [Float](repeating: 0, count: 3 * n * n)
        for c in 0..<3 { for i in 0..<(n * n) { x[c * n * n + i] = [0.2, 0.5, 0.8][c] } }
        let y = try be.download(net.forward(be.upload(shape: TensorShape(n: 1, c: 3, h: n, w: n), data: x)))
        let m = 2 * n
        #expect(y.shape == [1, 3, m, m])
        for c in 0..<3 {
            for yy in 6..<(m - 6) {
                for xx in 6..<(m - 6) {
                    let v = y.data[c * m * m + yy * m + xx]
                    #expect(abs(v - [0.2, 0.5, 0.8][c]) < 1e-5, "channel \(c) at \(yy),\(xx): \(v)")
                    if abs(v - [0.2, 0.5, 0.8][c]) >= 1e-5 { return }
                }
            }
        }
    }
}

@Suite struct SceneTests {
    @Test func degradationsAreDeterministic() throws {
        let clean = try pattern(64, 64)
        for kind in SceneKind.allCases {
            let a = try kind.degrade(clean), b = try kind.degrade(clean)
            #expect(a == b)
            if kind == .side || kind == .jpeg || kind == .motion { #expect(a != clean) }
        }
    }

    @Test(.enabled(if: haveSceneAssets, "needs the photos in .cache/assets (scripts/setup)"))
    func scenesAreMadeTwiceWithTheSameBytes() throws {
        let d1 = try tempDir("scenes1"), d2 = try tempDir("scenes2")
        defer { try? FileManager.default.removeItem(at: d1); try? FileManager.default.removeItem(at: d2) }
        let a = try Scenes.generate(assets: assetsDir, into: d1)
        let b = try Scenes.generate(assets: assetsDir, into: d2)
        #expect(a.map(\.name) == ["frontal", "side", "jpeg", "motion", "group"])
        for (x, y) in zip(a, b) {
            #expect(try Data(contentsOf: URL(fileURLWithPath: x.path)) == Data(contentsOf: URL(fileURLWithPath: y.path)))
            #expect(try Data(contentsOf: URL(fileURLWithPath: x.cleanPath!)) == Data(contentsOf: URL(fileURLWithPath: y.cleanPath!)))
            let img = try RGBImage(contentsOf: URL(fileURLWithPath: x.path))
            #expect(img.width == 512 && img.height == 512)
            let q = try Quality.score(output: img, reference: RGBImage(contentsOf: URL(fileURLWithPath: x.cleanPath!)))
            if x.name == "frontal" || x.name == "group" { #expect(q.psnr == .infinity) } else { #expect(q.psnr < 40) }
        }
    }

    @Test func userFolderListsImagesWithoutReferences() throws {
        let dir = try tempDir("user")
        defer { try? FileManager.default.removeItem(at: dir) }
        try pattern(8, 8).write(to: dir.appendingPathComponent("b.png"))
        try pattern(8, 8).write(to: dir.appendingPathComponent("a.jpg"))
        try Data("x".utf8).write(to: dir.appendingPathComponent("notes.txt"))
        let inputs = try Scenes.userImages(in: dir)
        #expect(inputs.map(\.name) == ["a", "b"] && inputs.allSatisfy { $0.cleanPath == nil })
        #expect(throws: BenchError.self) { try Scenes.userImages(in: dir.appendingPathComponent("missing")) }
    }
}
