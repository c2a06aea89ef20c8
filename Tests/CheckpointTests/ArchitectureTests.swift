import Foundation
import Testing
@testable import Checkpoint

/// Detection from key layouts of the released configurations (shapes only, built like the upstream constructors).
@Suite struct ArchitectureTests {
    /// GPEN FullGenerator keys and shapes (../shared/docs/gpen.md §2.1).
    static func gpen(size: Int, style: Int = 512, nMLP: Int = 8, cm: Int, narrow: Double) -> ShapeTable {
        func ch(_ r: Int) -> Int { r <= 32 ? Int(512 * narrow) : Int(Double(16384 / r) * Double(cm) * narrow) }
        var t: [(String, [Int])] = []
        for i in 1...nMLP { t += [("generator.style.\(i).weight", [style, style]), ("generator.style.\(i).bias", [style])] }
        t.append(("generator.input.input", [1, ch(4), 4, 4]))
        func styled(_ n: String, _ cin: Int, _ cout: Int, _ up: Bool) {
            t.append(("\(n).conv.weight", [1, cout, cin, 3, 3]))
            if up { t.append(("\(n).conv.blur.kernel", [4, 4])) }
            t += [("\(n).conv.modulation.weight", [cin, style]), ("\(n).conv.modulation.bias", [cin]),
                  ("\(n).noise.weight", [1]), ("\(n).activate.bias", [2 * cout])]
        }
        func rgb(_ n: String, _ cin: Int, _ up: Bool) {
            t.append(("\(n).bias", [1, 3, 1, 1]))
            if up { t.append(("\(n).upsample.kernel", [4, 4])) }
            t += [("\(n).conv.weight", [1, 3, cin, 1, 1]), ("\(n).conv.modulation.weight", [cin, style]), ("\(n).conv.modulation.bias", [cin])]
        }
        styled("generator.conv1", ch(4), ch(4), false)
        rgb("generator.to_rgb1", 2 * ch(4), false)
        var prev = ch(4), r = 8, j = 0
        while r <= size {
            styled("generator.convs.\(2 * j)", 2 * prev, ch(r), true)
            styled("generator.convs.\(2 * j + 1)", 2 * ch(r), ch(r), false)
            rgb("generator.to_rgbs.\(j)", 2 * ch(r), true)
            prev = ch(r); r *= 2; j += 1
        }
        t += [("ecd0.0.0.weight", [ch(size), 3, 1, 1]), ("ecd0.0.1.bias", [ch(size)])]
        var res = size, k = 1
        while res > 4 {
            t += [("ecd\(k).0.0.kernel", [4, 4]), ("ecd\(k).0.1.weight", [ch(res / 2), ch(res), 3, 3]), ("ecd\(k).0.2.bias", [ch(res / 2)])]
            res /= 2; k += 1
        }
        t += [("final_linear.0.weight", [style, ch(4) * 16]), ("final_linear.0.bias", [style])]
        return ShapeTable(t)
    }

    static func rrdb(inCh: Int, out: Int = 3, nf: Int = 64, blocks: Int, gc: Int = 32) -> ShapeTable {
        var t: [(String, [Int])] = [("conv_first.weight", [nf, inCh, 3, 3]), ("conv_first.bias", [nf])]
        for b in 0..<blocks {
            for r in 1...3 {
                for j in 1...5 {
                    let o = j == 5 ? nf : gc
                    t += [("body.\(b).rdb\(r).conv\(j).weight", [o, nf + gc * (j - 1), 3, 3]), ("body.\(b).rdb\(r).conv\(j).bias", [o])]
                }
            }
        }
        for n in ["conv_body", "conv_up1", "conv_up2", "conv_hr"] { t += [("\(n).weight", [nf, nf, 3, 3]), ("\(n).bias", [nf])] }
        t += [("conv_last.weight", [out, nf, 3, 3]), ("conv_last.bias", [out])]
        return ShapeTable(t)
    }

    @Test func releasedGPENConfigurationsAreInferred() {
        // ../shared/docs/gpen.md §1.1: BFR-256 cm 1 narrow 0.5; 512/1024/2048 cm 2 narrow 1; all style 512, n_mlp 8.
        for (size, cm, narrow) in [(256, 1, 0.5), (512, 2, 1.0), (1024, 2, 1.0), (2048, 2, 1.0), (64, 1, 0.0625)] {
            let table = Self.gpen(size: size, cm: cm, narrow: narrow)
            #expect(ArchitectureDetector.detect(table) == .gpen(GPENConfiguration(
                size: size, styleDim: 512, nMLP: 8, channelMultiplier: cm, narrow: narrow)), "GPEN \(size)")
        }
        // key counts of ../shared/docs/gpen.md §1.2 (state_dict keys): 144 / 163 / 182 / 201
        #expect([256, 512, 1024, 2048].map { Self.gpen(size: $0, cm: $0 == 256 ? 1 : 2, narrow: $0 == 256 ? 0.5 : 1).keys.count } == [144, 163, 182, 201])
    }

    @Test func rrdbNetScaleComesFromConvFirstInputChannels() {
        for (inCh, scale) in [(3, 4), (12, 2), (48, 1)] {
            #expect(ArchitectureDetector.detect(Self.rrdb(inCh: inCh, blocks: 2)) == .rrdbNet(RRDBNetConfiguration(
                numInCh: 3, numOutCh: 3, scale: scale, numFeat: 64, numBlock: 2, numGrowCh: 32)))
        }
        #expect(ArchitectureDetector.detect(Self.rrdb(inCh: 5, blocks: 1)) == .unrecognised(firstKeys: Array(Self.rrdb(inCh: 5, blocks: 1).keys.prefix(8))))
    }

    @Test func srvggWithoutPReLUAndUnknownFiles() {
        var t: [(String, [Int])] = [("body.0.weight", [16, 3, 3, 3]), ("body.0.bias", [16])]
        t += [("body.2.weight", [16, 16, 3, 3]), ("body.2.bias", [16]), ("body.4.weight", [12, 16, 3, 3]), ("body.4.bias", [12])]
        #expect(ArchitectureDetector.detect(ShapeTable(t)) == .srvggNet(SRVGGNetConfiguration(
            numInCh: 3, numOutCh: 3, numFeat: 16, numConv: 1, upscale: 2, actType: "relu")))
        let other = ShapeTable([("fc.weight", [10, 4]), ("fc.bias", [10])])
        #expect(ArchitectureDetector.detect(other) == .unrecognised(firstKeys: ["fc.weight", "fc.bias"]))
        #expect(ArchitectureDetector.detect(ShapeTable([])) == .unrecognised(firstKeys: []))
    }

    @Test func configurationJSONUsesSnakeCase() throws {
        let a = DetectedArchitecture.gpen(GPENConfiguration(size: 512, styleDim: 512, nMLP: 8, channelMultiplier: 2, narrow: 1))
        let json = try #require(a.configurationJSON())
        #expect(json == #"{"channel_multiplier":2,"n_mlp":8,"narrow":1,"size":512,"style_dim":512}"#)
        #expect(DetectedArchitecture.unrecognised(firstKeys: ["x"]).configurationJSON() == nil)
    }

    @Test(arguments: ["model", "trunk"])
    func oldESRGANKeyLayoutsAreRenamed(layout: String) throws {
        // nf 4, gc 2, 2 blocks, x4, written with the old key names; saved as safetensors and loaded back.
        let table = Self.rrdb(inCh: 3, nf: 4, blocks: 2, gc: 2)
        func old(_ k: String) -> String {
            let (module, param) = (String(k[..<k.lastIndex(of: ".")!]), String(k[k.index(after: k.lastIndex(of: ".")!)...]))
            let fixed = layout == "model"
                ? ["conv_first": "model.0", "conv_body": "model.1.sub.2", "conv_up1": "model.3", "conv_up2": "model.6", "conv_hr": "model.8", "conv_last": "model.10"]
                : ["conv_first": "conv_first", "conv_body": "trunk_conv", "conv_up1": "upconv1", "conv_up2": "upconv2", "conv_hr": "HRconv", "conv_last": "conv_last"]
            if let f = fixed[module] { return "\(f).\(param)" }
            let p = module.split(separator: ".") // body.I.rdbR.convJ
            let rdb = "RDB" + p[2].dropFirst(3)
            return layout == "model" ? "model.1.sub.\(p[1]).\(rdb).\(p[3]).0.\(param)" : "RRDB_trunk.\(p[1]).\(rdb).\(p[3]).\(param)"
        }
        let file = SafeTensorsWriter.bytes(table.keys.sorted().map { k in
            (old(k), table[k]!, (0..<table[k]!.reduce(1, *)).map { Float($0) })
        })
        let ck = try CheckpointLoader.load(bytes: file)
        #expect(ck.metadata["key_layout"] != nil)
        #expect(Set(ck.stateDict.keys) == Set(table.keys))
        #expect(ArchitectureDetector.detect(ck.stateDict) == .rrdbNet(RRDBNetConfiguration(
            numInCh: 3, numOutCh: 3, scale: 4, numFeat: 4, numBlock: 2, numGrowCh: 2)))
    }
}
