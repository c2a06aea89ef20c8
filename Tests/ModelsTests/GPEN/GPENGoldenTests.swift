import Checkpoint
import Foundation
import Testing
import TensorCore
@testable import Models

/// GPEN FullGenerator parity with the upstream golden outputs (tiny config 64/32/2/cm1/narrow 0.0625).
struct GPENGoldenTests {
    static let dir = FaceModelsTestSupport.goldenDir("gpen_fullgenerator")
    static let available = FaceModelsTestSupport.goldenAvailable("gpen_fullgenerator")
    /// The golden case (if present) and the committed fixtures gpen_s32 and gpen_s64_cm2.
    static let cases = FaceModelsTestSupport.cases(golden: "gpen_fullgenerator", fixtures: ["gpen_s32", "gpen_s64_cm2"])

    static func load(_ be: any Backend, _ d: URL = dir) throws -> GPENGenerator {
        try GPENGenerator(contentsOf: d.appendingPathComponent("weights.pth"), backend: be)
    }

    @Test func committedFixturesPresent() { #expect(Self.cases.count >= 2) }

    @Test(.enabled(if: available, "needs ../shared/golden/gpen_fullgenerator"))
    func detectsConfiguration() throws {
        let g = try Self.load(ReferenceBackend())
        #expect(g.configuration == GPENConfiguration(size: 64, styleDim: 32, nMLP: 2, channelMultiplier: 1, narrow: 0.0625))
    }

    /// Raw output within 1e-4 max-abs (float64-vs-float32 noise upstream is ~1e-6).
    @Test(arguments: cases)
    func rawForwardMatchesReference(_ dir: URL) throws {
      for be in try FaceModelsTestSupport.backends() {
        let g = try Self.load(be, dir)
        let x = try FaceModelsTestSupport.host(FaceModelsTestSupport.npy(dir, "input"))
        let y = try be.download(g.forward(be.upload(x)))
        let want = try FaceModelsTestSupport.npy(dir, "output").floats()
        #expect(y.shape == x.shape)
        let (d, m) = FaceModelsTestSupport.maxAbsDiff(y.data, want)
        #expect(d <= 1e-4, "\(be.name): max |diff| \(d) (max |ref| \(m))")
      }
    }

    /// FaceGAN.process: uint8 BGR in → uint8 BGR out (truncation); ≤ 1 LSB only where the value sits on a boundary.
    @Test(arguments: cases)
    func faceGANProcessMatches(_ dir: URL) throws {
      for be in try FaceModelsTestSupport.backends() {
        let g = try Self.load(be, dir)
        let inBGR = try FaceModelsTestSupport.npy(dir, "facegan_in_bgr").uint8s()
        let t = try GPENGenerator.inputTensor(bgr: inBGR, width: g.size, height: g.size)
        let wantT = try FaceModelsTestSupport.npy(dir, "facegan_in_tensor").floats()
        #expect(t.data == wantT, "img2tensor must be bit-exact")
        let raw = try be.download(g.forward(be.upload(t)))
        let (d, _) = FaceModelsTestSupport.maxAbsDiff(raw.data, try FaceModelsTestSupport.npy(dir, "facegan_raw_out").floats())
        #expect(d <= 1e-4)
        let out = try g.restore(bgr: inBGR)
        let want = try FaceModelsTestSupport.npy(dir, "facegan_out_bgr").uint8s()
        let bd = FaceModelsTestSupport.byteDiff(out, want)
        // ≤ 1 LSB, and only on the few values within float noise of a truncation boundary (33 of 12288 in golden).
        #expect(bd.max <= 1 && bd.count <= want.count / 300, "\(bd.count) bytes differ, max \(bd.max)")
        // And exactly the upstream post-processing on the golden raw output.
        let post = try GPENGenerator.outputBGR(FaceModelsTestSupport.host(FaceModelsTestSupport.npy(dir, "facegan_raw_out")))
        #expect(post == want)
      }
    }

    @Test(.enabled(if: available, "needs ../shared/golden/gpen_fullgenerator"))
    func strictLoadNamesKeyAndShapes() throws {
        let ck = try CheckpointLoader.load(Self.dir.appendingPathComponent("weights.pth"))
        // Wrong configuration: a wider network expects other shapes.
        let wrong = GPENConfiguration(size: 64, styleDim: 32, nMLP: 2, channelMultiplier: 1, narrow: 0.125)
        #expect {
            _ = try GPENGenerator(stateDict: ck.stateDict, configuration: wrong, backend: ReferenceBackend())
        } throws: { e in
            guard case let CheckpointError.shapeMismatch(key, expected, actual) = e else { return false }
            return key == "ecd0.0.0.weight" && expected == [32, 3, 1, 1] && actual == [16, 3, 1, 1]
        }
        // Fewer mapping layers than stored: the unused keys are named.
        let fewer = GPENConfiguration(size: 64, styleDim: 32, nMLP: 1, channelMultiplier: 1, narrow: 0.0625)
        #expect {
            _ = try GPENGenerator(stateDict: ck.stateDict, configuration: fewer, backend: ReferenceBackend())
        } throws: { e in
            guard case let CheckpointError.unexpectedKeys(keys) = e else { return false }
            return keys == ["generator.style.2.weight", "generator.style.2.bias"]
        }
    }
}
