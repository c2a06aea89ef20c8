import Foundation
import Testing
@testable import Checkpoint

/// The golden weights.pth files of ../shared/golden (original upstream code) load bit for bit and are recognised.
@Suite(.enabled(if: Paths.hasGolden, "needs ../shared/golden (or ENHANCE_GOLDEN); absent in this checkout"))
struct GoldenTests {
    static let cases = ["rrdbnet_x4", "rrdbnet_x2", "srvgg_x4", "gpen_fullgenerator", "retinaface_mnet", "parsenet"]

    func config(_ c: String) throws -> [String: Any] {
        let j = try readJSON(Paths.golden.appendingPathComponent("\(c)/config.json")) as! [String: Any]
        return j["config"] as! [String: Any]
    }

    func decode<T: Decodable>(_ type: T.Type, _ c: String) throws -> T {
        let data = try JSONSerialization.data(withJSONObject: try config(c))
        return try JSONDecoder().decode(T.self, from: data)
    }

    @Test(arguments: cases)
    func weightsLoadBitForBit(name: String) throws {
        let digests = try readJSON(Paths.fixture("golden_digests.json")) as! [String: [[Any]]]
        let expected = try #require(digests[name])
        let ck = try CheckpointLoader.load(Paths.golden.appendingPathComponent("\(name)/weights.pth"))
        #expect(ck.format == .pytorchZip)
        // RetinaFace files carry a `module.` prefix that the loader strips.
        let names = expected.map { n -> String in
            let k = n[0] as! String
            return ck.strippedModulePrefix && k.hasPrefix("module.") ? String(k.dropFirst(7)) : k
        }
        let sameKeys = ck.stateDict.keys == names
        #expect(sameKeys, "key order differs from the file")
        for (e, name) in zip(expected, names) {
            let t = try #require(ck.stateDict[name])
            #expect(t.dtype.rawValue == e[1] as? String)
            #expect(t.shape == e[2] as? [Int])
            #expect(fnv1a64(t.rawBytes()) == e[3] as? String, "\(e[0]) differs")
        }
    }

    @Test func wrappersAndPrefixesMatchTheReleasedLayouts() throws {
        for c in ["rrdbnet_x4", "rrdbnet_x2", "srvgg_x4"] {
            #expect(try CheckpointLoader.load(Paths.golden.appendingPathComponent("\(c)/weights.pth")).wrapper == "params_ema")
        }
        let rf = try CheckpointLoader.load(Paths.golden.appendingPathComponent("retinaface_mnet/weights.pth"))
        #expect(rf.strippedModulePrefix && rf.wrapper == nil)
        #expect(rf.stateDict.keys.first?.hasPrefix("module.") == false)
    }

    @Test func architecturesAndConfigurationsMatchConfigJSON() throws {
        func detect(_ c: String) throws -> DetectedArchitecture {
            ArchitectureDetector.detect(try CheckpointLoader.load(Paths.golden.appendingPathComponent("\(c)/weights.pth")).stateDict)
        }
        #expect(try detect("rrdbnet_x4") == .rrdbNet(try decode(RRDBNetConfiguration.self, "rrdbnet_x4")))
        #expect(try detect("rrdbnet_x2") == .rrdbNet(try decode(RRDBNetConfiguration.self, "rrdbnet_x2")))
        #expect(try detect("srvgg_x4") == .srvggNet(try decode(SRVGGNetConfiguration.self, "srvgg_x4")))
        #expect(try detect("gpen_fullgenerator") == .gpen(try decode(GPENConfiguration.self, "gpen_fullgenerator")))
        let rcfg = try config("retinaface_mnet")
        let inner = rcfg["cfg"] as! [String: Any]
        #expect(try detect("retinaface_mnet") == .retinaFace(RetinaFaceConfiguration(
            backbone: RetinaFaceConfiguration.Backbone(rawValue: rcfg["cfg_name"] as! String)!, outChannel: inner["out_channel"] as! Int)))
        let p = try config("parsenet")
        guard case let .parseNet(pc) = try detect("parsenet") else { Issue.record("ParseNet not recognised"); return }
        let downs = Int(log2(Double(p["in_size"] as! Int) / Double(p["min_feat_size"] as! Int)))
        let ups = Int(log2(Double(p["out_size"] as! Int) / Double(p["min_feat_size"] as! Int)))
        let range = p["ch_range"] as! [Int]
        #expect(pc.baseCh == p["base_ch"] as! Int && pc.parsingCh == p["parsing_ch"] as! Int && pc.resDepth == p["res_depth"] as! Int)
        #expect(pc.downSteps == downs && pc.upSteps == ups)
        #expect(pc.normType == p["norm_type"] as! String && pc.reluType == p["relu_type"] as! String)
        #expect(pc.chRange[1] == range[1] && pc.chRange[0] >= range[0])
    }
}

/// The real MTCNN legacy (pre-1.6) pickles from facenet-pytorch.
@Suite(.enabled(if: Paths.hasMTCNN, "needs .cache/assets/mtcnn-*.pt (scripts/setup fetches them)"))
struct MTCNNTests {
    @Test(arguments: [("pnet", 6632), ("rnet", 100_178), ("onet", 389_040)])
    func legacyFileLoads(net: String, params: Int) throws {
        let ck = try CheckpointLoader.load(Paths.asset("mtcnn-\(net).pt"))
        #expect(ck.format == .pytorchLegacy)
        #expect(ck.stateDict.parameterCount == params)
        let digests = try readJSON(Paths.fixture("golden_digests.json")) as! [String: [[Any]]]
        let expected = try #require(digests["mtcnn-\(net)"])
        // RetinaFace files carry a `module.` prefix that the loader strips.
        let names = expected.map { n -> String in
            let k = n[0] as! String
            return ck.strippedModulePrefix && k.hasPrefix("module.") ? String(k.dropFirst(7)) : k
        }
        let sameKeys = ck.stateDict.keys == names
        #expect(sameKeys, "key order differs from the file")
        for (e, name) in zip(expected, names) {
            let t = try #require(ck.stateDict[name])
            #expect(t.shape == e[2] as? [Int])
            #expect(fnv1a64(t.rawBytes()) == e[3] as? String)
        }
        #expect(ck.stateDict["conv1.weight"]?.shape.count == 4)
        #expect(ArchitectureDetector.detect(ck.stateDict) == .unrecognised(firstKeys: Array(ck.stateDict.keys.prefix(8))))
    }
}
