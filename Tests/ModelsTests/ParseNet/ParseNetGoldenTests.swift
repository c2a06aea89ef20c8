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

    @Test(.enabled(if: available, "needs ../shared/golden/parsenet"))
    func forwardAndMaskMatch() throws {
      for be in try S.backends() {
        let net = try ParseNet(contentsOf: Self.dir.appendingPathComponent("weights.pth"), backend: be)
        #expect(net.configuration.downSteps == 4 && net.configuration.resDepth == 2 && net.configuration.parsingCh == 19)
        let img = try S.npy(Self.dir, "image_bgr").uint8s()
        let x = try ParseNet.inputTensor(bgr: img, width: 64, height: 64)
        #expect(x.data == (try S.npy(Self.dir, "input").floats()), "img2tensor must be bit-exact")
        let (m, i) = try net.forward(be.upload(x))
        let mh = try be.download(m), ih = try be.download(i)
        let (dm, rm) = S.maxAbsDiff(mh.data, try S.npy(Self.dir, "out_mask").floats())
        let (di, ri) = S.maxAbsDiff(ih.data, try S.npy(Self.dir, "out_img").floats())
        #expect(dm <= 1e-3 * max(1, rm), "\(be.name) out_mask max |diff| \(dm)")
        #expect(di <= 1e-3 * max(1, ri), "\(be.name) out_img max |diff| \(di)")
        // Mask: classes 0, 14, 18 → 0, others → 255 (the golden margin between colours is 0.0118, so exact).
        let classes = ParseNet.argmax(mh)
        let mask = classes.map { [0, 14, 18].contains($0) ? UInt8(0) : UInt8(255) }
        #expect(mask == (try S.npy(Self.dir, "mask_uint8").uint8s()))
        #expect(try net.parse(bgr: img, width: 64, height: 64) == classes)
      }
    }

    @Test(.enabled(if: available, "needs ../shared/golden/parsenet"))
    func strictLoadErrors() throws {
        let ck = try CheckpointLoader.load(Self.dir.appendingPathComponent("weights.pth"))
        guard case var .parseNet(cfg) = ArchitectureDetector.detect(ck.stateDict) else { Issue.record("not detected"); return }
        cfg.resDepth = 1
        #expect(throws: CheckpointError.self) { _ = try ParseNet(stateDict: ck.stateDict, configuration: cfg, backend: ReferenceBackend()) }
        cfg.resDepth = 3
        #expect { _ = try ParseNet(stateDict: ck.stateDict, configuration: cfg, backend: ReferenceBackend()) } throws: { e in
            (e as? CheckpointError) == .missingKey("body.2.conv1.conv2d.weight")
        }
        let net = try ParseNet(stateDict: ck.stateDict, backend: ReferenceBackend())
        #expect(throws: FaceModelError.self) { _ = try net.forward(ReferenceBackend().zeros(TensorShape(n: 1, c: 3, h: 40, w: 40))) }
    }
}
