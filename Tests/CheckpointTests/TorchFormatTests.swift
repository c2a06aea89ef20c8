import Foundation
import Testing
@testable import Checkpoint

@Suite struct TorchFormatTests {
    let expected = try! readJSON(Paths.fixture("mixed_expected.json")) as! [String: Any]
    let order = ["conv.weight", "conv.bias", "half.weight", "bf16.weight", "double.weight", "bn.running_mean",
                 "bn.num_batches_tracked", "long.index", "bytes.mask", "bool.mask", "view.base", "view.transposed",
                 "view.slice", "view.column", "empty"]

    @Test func zipFormatLoadsEveryDtypeAndViewBitForBit() throws {
        let ck = try CheckpointLoader.load(Paths.fixture("mixed_zip.pth"))
        #expect(ck.format == .pytorchZip)
        #expect(ck.wrapper == "params_ema")
        #expect(!ck.strippedModulePrefix)
        #expect(ck.stateDict.keys == order)
        expectMatches(ck.stateDict, expected, keys: order)
        let tr = try #require(ck.stateDict["view.transposed"])
        #expect(!tr.isContiguous)
        #expect(tr.strides == [1, 6])
        let sl = try #require(ck.stateDict["view.slice"])
        #expect(sl.storageOffset == 8)
        #expect(ck.stateDict["bn.num_batches_tracked"]?.shape == [])
    }

    @Test func legacyFormatLoadsTheSameValues() throws {
        let ck = try CheckpointLoader.load(Paths.fixture("mixed_legacy.pth"))
        #expect(ck.format == .pytorchLegacy)
        #expect(ck.wrapper == "params_ema")
        #expect(ck.stateDict.keys == order)
        expectMatches(ck.stateDict, expected, keys: order)
    }

    @Test func deflatedZipEntriesAreInflated() throws {
        let ck = try CheckpointLoader.load(Paths.fixture("mixed_deflated.pth"))
        #expect(ck.format == .pytorchZip)
        expectMatches(ck.stateDict, expected, keys: order)
    }

    @Test func modulePrefixIsStripped() throws {
        let ck = try CheckpointLoader.load(Paths.fixture("mixed_module_zip.pth"))
        #expect(ck.wrapper == nil)
        #expect(ck.strippedModulePrefix)
        #expect(ck.stateDict.keys == order)
        expectMatches(ck.stateDict, expected, keys: order)
    }

    @Test func safetensorsLoadsWithMetadata() throws {
        let ck = try CheckpointLoader.load(Paths.fixture("mixed.safetensors"))
        #expect(ck.format == .safetensors)
        #expect(ck.metadata["source"] == "checkpoint_fixtures.py")
        let keys = order.filter { !$0.hasPrefix("view.") || $0 == "view.base" }
        #expect(Set(ck.stateDict.keys) == Set(keys))
        expectMatches(ck.stateDict, expected, keys: keys)
    }

    @Test(arguments: ["malicious_zip.pth", "malicious_legacy.pth"])
    func maliciousPickleIsRefusedAndNothingRuns(name: String) throws {
        let marker = "/tmp/enhance_checkpoint_malicious_marker"
        try? FileManager.default.removeItem(atPath: marker)
        #expect(throws: CheckpointError.forbiddenGlobal("posix.system", path: Paths.fixture(name).path)) {
            _ = try CheckpointLoader.load(Paths.fixture(name))
        }
        #expect(!FileManager.default.fileExists(atPath: marker), "the payload ran")
    }

    @Test func moduleClassesAreForbidden() throws {
        do {
            _ = try CheckpointLoader.load(Paths.fixture("forbidden_class.pth"))
            Issue.record("loaded a pickled nn.Module")
        } catch let CheckpointError.forbiddenGlobal(name, path) {
            #expect(path.hasSuffix("forbidden_class.pth"))
            #expect(name == "torch.nn.modules.activation.ReLU")
        }
    }

    @Test func absurdLegacyStorageSizeIsRejectedWithoutAllocating() throws {
        do {
            _ = try CheckpointLoader.load(Paths.fixture("absurd_legacy.pth"))
            Issue.record("accepted a storage of 2^60 elements")
        } catch let CheckpointError.corrupt(path, reason) {
            #expect(path.hasSuffix("absurd_legacy.pth"))
            #expect(reason.contains("1152921504606846976"))
        }
    }

    @Test func nonCheckpointFilesGiveAClearError() throws {
        let png = Paths.root.appendingPathComponent("README.md")
        #expect(throws: CheckpointError.self) { _ = try CheckpointLoader.load(png) }
        #expect(throws: CheckpointError.self) { _ = try CheckpointLoader.load(bytes: []) }
        #expect(throws: CheckpointError.self) { _ = try CheckpointLoader.load(URL(fileURLWithPath: "/nonexistent/x.pth")) }
        #expect(throws: CheckpointError.self) { _ = try CheckpointLoader.load(Paths.fixtures) }
    }

    @Test func halfUpcastIsExactForAllBitPatterns() {
        #if arch(x86_64) || arch(arm64)
        for b in 0...UInt16.max {
            let mine = halfToFloat(b), ref = Float(Float16(bitPattern: b))
            if ref.isNaN { #expect(mine.isNaN) } else { #expect(mine.bitPattern == ref.bitPattern, "half 0x\(String(b, radix: 16))") }
        }
        #endif
    }
}
