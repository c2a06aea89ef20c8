import Checkpoint
import Foundation
import Testing
import TensorCore
@testable import Models

/// ParseNet (reduced config) parity with upstream: raw heads and the FaceParse 0/255 mask.
struct ParseNetGoldenTests {
    static let dir = FaceModelsTestSupport.goldenDir("parsenet")
    static let available = FaceModelsTestSupport.goldenAvailable("parsenet")
    typealias S = FaceModelsTestSupport

    /// The golden case (if present) and the committed fixture parsenet (32×32, min_feat 8, base 8).
    static let cases = S.cases(golden: "parsenet", fixtures: ["parsenet"])

    @Test(arguments: cases)
    func forwardAndMaskMatch(_ dir: URL) throws {
      for be in try S.backends() {
        let net = try ParseNet(contentsOf: dir.appendingPathComponent("weights.pth"), backend: be)
        #expect(net.configuration.parsingCh == 19)
        let a = try S.npy(dir, "image_bgr")
        let img = try a.uint8s()
        let (w, h) = (a.shape[1], a.shape[0])
        let x = try ParseNet.inputTensor(bgr: img, width: w, height: h)
        #expect(x.data == (try S.npy(dir, "input").floats()), "img2tensor must be bit-exact")
        let (m, i) = try net.forward(be.upload(x))
        let mh = try be.download(m), ih = try be.download(i)
        let (dm, rm) = S.maxAbsDiff(mh.data, try S.npy(dir, "out_mask").floats())
        let (di, ri) = S.maxAbsDiff(ih.data, try S.npy(dir, "out_img").floats())
        #expect(dm <= 1e-3 * max(1, rm), "\(be.name) out_mask max |diff| \(dm)")
        #expect(di <= 1e-3 * max(1, ri), "\(be.name) out_img max |diff| \(di)")
        // Mask: classes 0, 14, 18 → 0, others → 255 (the golden margin between colours is 0.0118, so exact).
        let classes = ParseNet.argmax(mh)
        let mask = classes.map { [0, 14, 18].contains($0) ? UInt8(0) : UInt8(255) }
        #expect(mask == (try S.npy(dir, "mask_uint8").uint8s()))
        #expect(try net.parse(bgr: img, width: w, height: h) == classes)
      }
    }

    @Test(arguments: cases)
    func strictLoadErrors(_ dir: URL) throws {
        let ck = try CheckpointLoader.load(dir.appendingPathComponent("weights.pth"))
        guard case var .parseNet(cfg) = ArchitectureDetector.detect(ck.stateDict) else { Issue.record("not detected"); return }
        let depth = cfg.resDepth
        cfg.resDepth = depth - 1
        #expect { _ = try ParseNet(stateDict: ck.stateDict, configuration: cfg, backend: ReferenceBackend()) } throws: { e in
            guard case let CheckpointError.unexpectedKeys(keys) = e else { return false }
            return keys.first == "body.\(depth - 1).conv1.conv2d.weight"
        }
        cfg.resDepth = depth + 1
        #expect { _ = try ParseNet(stateDict: ck.stateDict, configuration: cfg, backend: ReferenceBackend()) } throws: { e in
            (e as? CheckpointError) == .missingKey("body.\(depth).conv1.conv2d.weight")
        }
        let be = ReferenceBackend()
        let net = try ParseNet(stateDict: ck.stateDict, backend: be)
        let odd = (1 << net.configuration.downSteps) * 2 + 1
        #expect(throws: FaceModelError.self) { _ = try net.forward(be.zeros(TensorShape(n: 1, c: 3, h: odd, w: odd))) }
    }
}
