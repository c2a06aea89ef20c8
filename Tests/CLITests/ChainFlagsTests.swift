import ArgumentParser
import Foundation
import Pipeline
import Testing
@testable import EnhanceCLI

/// `chain` declares no flag of its own for its stages: it takes `UpscaleModelFlags` and `RestoreModelFlags`, the
/// groups `upscale` and `restore` use, and builds its stages from them with the same methods. Here every flag of both
/// groups, set away from its default, parses in `chain` to the same stage configuration as in the single commands,
/// and `chain --help` lists each of them.
@Suite struct ChainFlagsTests {
    static let upscaleArgs = ["-n", "realesr-general-x4v3", "-s", "3", "-t", "64", "--tile-pad", "7", "--pre-pad", "2",
                              "--alpha-upsampler", "bilinear", "-dn", "0.3", "--max-memory", "1G"]
    static let restoreArgs = ["--gpen", "g.pth", "--detector", "d.pth", "--parser", "p.pth", "--size", "512", "--alpha", "0.6",
                              "--mask", "rect", "--aligned", "--only-center-face", "--save-faces", "--color-match",
                              "--bg-upsampler", "bilinear", "--upscale", "3", "--face-batch", "4"]

    @Test func everyStageFlagMeansTheSameInChain() throws {
        let chain = try Chain.parse(["in.png"] + Self.upscaleArgs + Self.restoreArgs + ["--threads", "1", "--no-winograd"])
        let up = try Upscale.parse(["in.png"] + Self.upscaleArgs)
        let rs = try Restore.parse(["in.png"] + Self.restoreArgs)

        let a = try chain.upscale.upscaleOptions(), b = try up.model.upscaleOptions()
        #expect(a == b)
        #expect(a.tile == 64 && a.tilePad == 7 && a.prePad == 2 && a.outscale == 3 && a.alphaUpsampler == .bilinear && a.maxMemory == 1 << 30)
        #expect(chain.upscale.modelName == "realesr-general-x4v3" && chain.upscale.denoiseStrength == 0.3)
        #expect(try chain.upscale.configuration().modelNames == ["realesr-general-x4v3", "realesr-general-wdn-x4v3"])
        #expect(try chain.upscale.configuration() == up.model.configuration())
        #expect(chain.restore.configuration == rs.model.configuration)

        let r = chain.restore.restoreOptions
        #expect(r == rs.model.restoreOptions)
        #expect(r.alpha == 0.6 && r.mask == .rect && r.aligned && r.onlyCenterFace && r.colorMatch && r.upscale == 3 && r.faceBatch == 4)
        for (x, y) in [(chain.restore.gpen, rs.model.gpen), (chain.restore.detector ?? "", rs.model.detector ?? ""),
                       (chain.restore.parser ?? "", rs.model.parser ?? ""), (chain.restore.size, rs.model.size),
                       (chain.restore.bgUpsampler, rs.model.bgUpsampler)] {
            #expect(x == y && !x.isEmpty)
        }
        #expect(chain.restore.saveFaces && rs.model.saveFaces)
        #expect(chain.engine.threads == 1 && chain.engine.noWinograd)
    }

    @Test func chainHelpListsEveryUpscaleAndRestoreFlag() {
        let help = Chain.helpMessage(columns: 400)
        for flag in (Self.upscaleArgs + Self.restoreArgs).filter({ $0.hasPrefix("-") && Double($0) == nil }) {
            #expect(help.contains(flag), "chain --help lacks \(flag)")
        }
        for flag in ["--model-path", "--model-name", "--download", "--models-dir", "--threads", "--verbose"] {
            #expect(help.contains(flag), "chain --help lacks \(flag)")
        }
        // The same help text as the single commands (one declaration).
        let upHelp = Upscale.helpMessage(columns: 400), rsHelp = Restore.helpMessage(columns: 400)
        for line in ["Context pixels around each tile.", "Faces per GPEN pass (same results up to float rounding; more memory)."] {
            #expect(help.contains(line) && (upHelp.contains(line) || rsHelp.contains(line)))
        }
        // Bad values are rejected in chain as in the single commands.
        #expect(throws: (any Error).self) { _ = try Chain.parse(["in.png", "--gpen", "g", "--alpha", "2"]) }
        #expect(throws: (any Error).self) { _ = try Chain.parse(["in.png", "--gpen", "g", "-t", "-1"]) }
    }
}
